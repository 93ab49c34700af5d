"""Run directories: identity, manifest, status and listing.

A run lives in ``runs/<name>-<hash8>/`` where the hash covers the resolved experiment config
(model seed included) and the prepared data's hash. Files:

* ``config.json``: the resolved experiment config;
* ``manifest.json``: versions, git revision, device, seeds, data hash, status, timings;
* ``metrics.jsonl``: one line per epoch (loss terms, seconds, validation metrics);
* ``checkpoint.pt``: the last finished epoch (resume); ``model.pt``: the final weights;
* ``results.json``: validation and test metrics and the evaluation protocol;
* ``per_user_valid.parquet`` / ``per_user_test.parquet``: per-user metrics;
* ``topk_test.parquet``: the test top-K lists with original ids.
"""

from __future__ import annotations

import json
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from recsys.hashing import hash_obj

DONE = "done"
RUNNING = "running"


def run_id(name: str, resolved_config: dict[str, Any], data_hash: str) -> str:
    """``<name>-<8 hex>`` from the resolved config and the data hash."""
    return f"{name}-{hash_obj({'config': resolved_config, 'data': data_hash})[:8]}"


def git_revision() -> str | None:
    """The git revision of the source tree this package runs from, if any."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def versions() -> dict[str, str]:
    """Versions of Python and the packages that decide the numbers."""
    out = {"python": platform.python_version()}
    for pkg in ("recsys", "torch", "numpy", "scipy", "polars", "torch-geometric"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "absent"
    return out


def new_manifest(
    run: str, device: str, seeds: dict[str, int], data_hash: str, base_dir: Path
) -> dict[str, Any]:
    """The manifest written when a run starts."""
    return {
        "run": run,
        "status": RUNNING,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": versions(),
        "git_revision": git_revision(),
        "host": platform.node(),
        "device": device,
        "seeds": seeds,
        "data_hash": data_hash,
        "base_dir": str(base_dir),
    }


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def status(run_dir: Path) -> str | None:
    """``done``, ``running`` (unfinished: will resume) or None when there is no run."""
    manifest = run_dir / "manifest.json"
    if not manifest.is_file():
        return None
    return str(read_json(manifest).get("status", RUNNING))


def list_runs(runs_dir: Path) -> list[dict[str, Any]]:
    """One summary dict per run directory under ``runs_dir`` (newest first)."""
    rows = []
    for d in sorted(runs_dir.glob("*/manifest.json")):
        manifest = read_json(d)
        run_dir = d.parent
        row: dict[str, Any] = {
            "run": run_dir.name,
            "status": manifest.get("status"),
            "started": manifest.get("started"),
            "device": manifest.get("device"),
        }
        results = run_dir / "results.json"
        if results.is_file():
            res = read_json(results)
            row["test"] = res.get("test", {})
            row["best_epoch"] = res.get("best_epoch")
        rows.append(row)
    rows.sort(key=lambda r: r.get("started") or "", reverse=True)
    return rows
