"""Load finished runs for reporting and check that they can be compared."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from recsys.errors import RecsysError
from recsys.runs import DONE, read_json, status


@dataclass(frozen=True)
class RunRecord:
    """What a report needs from one finished run."""

    dir: Path
    config: dict[str, Any]
    manifest: dict[str, Any]
    results: dict[str, Any]

    @property
    def label(self) -> str:
        """``<experiment name>`` plus the model seed when it is not 0."""
        seed = self.config.get("seed", 0)
        name = str(self.config.get("name", self.dir.name))
        return name if seed == 0 else f"{name} (seed {seed})"

    def per_user(self, split: str = "test") -> pl.DataFrame:
        return pl.read_parquet(self.dir / f"per_user_{split}.parquet")

    def history(self) -> list[dict[str, Any]]:
        import json

        path = self.dir / "metrics.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def expand_run_paths(paths: list[Path]) -> list[Path]:
    """Run directories named directly, or every finished run inside a directory of runs."""
    out: list[Path] = []
    for p in paths:
        if (p / "manifest.json").is_file():
            out.append(p)
        elif p.is_dir():
            found = sorted(d.parent for d in p.glob("*/manifest.json"))
            if not found:
                raise RecsysError(f"{p}: neither a run directory nor a directory of runs")
            out.extend(found)
        else:
            raise RecsysError(f"{p}: no such run directory")
    return out


def load_runs(paths: list[Path]) -> list[RunRecord]:
    """Load finished runs; an unfinished one is an error naming it."""
    records = []
    for d in expand_run_paths(paths):
        if status(d) != DONE:
            raise RecsysError(f"{d}: run is not finished (train it to the end first)")
        records.append(
            RunRecord(
                d,
                read_json(d / "config.json"),
                read_json(d / "manifest.json"),
                read_json(d / "results.json"),
            )
        )
    if not records:
        raise RecsysError("no runs to report")
    return records


PROTOCOL_KEYS = ("ks", "idcg", "average", "test_mask")


def comparable_protocol(records: list[RunRecord]) -> dict[str, Any]:
    """The shared protocol of ``records``; refuses runs on different splits or conventions.

    Raises:
        RecsysError: naming the first difference (data hash/split, K set, masking, NDCG
            convention or averaging) and the two runs that differ.
    """
    first = records[0]
    ref = _protocol(first)
    for rec in records[1:]:
        other = _protocol(rec)
        for key, value in ref.items():
            if other[key] != value:
                raise RecsysError(
                    f"runs cannot be compared: {key} differs: {first.dir.name} has {value!r}, "
                    f"{rec.dir.name} has {other[key]!r}"
                )
    return ref


def _protocol(rec: RunRecord) -> dict[str, Any]:
    ev = rec.config.get("eval", {})
    data = rec.config.get("data", {})
    return {
        "data hash (dataset and split)": rec.manifest.get("data_hash"),
        "split": data.get("split"),
        "cleaning": data.get("clean"),
        **{key: ev.get(key) for key in PROTOCOL_KEYS},
    }


def per_user_metrics(rec: RunRecord, metrics: tuple[str, ...], split: str = "test") -> pl.DataFrame:
    """``user_idx`` and ``metrics`` from the run's ``per_user_<split>.parquet``.

    Raises:
        RecsysError: the file or a metric column is missing.
    """
    path = rec.dir / f"per_user_{split}.parquet"
    if not path.is_file():
        raise RecsysError(f"{rec.dir}: no per_user_{split}.parquet for the paired tests")
    frame = pl.read_parquet(path)
    missing = [m for m in ("user_idx", *metrics) if m not in frame.columns]
    if missing:
        raise RecsysError(f"{path}: missing columns {missing} (has {frame.columns})")
    return frame.select("user_idx", *metrics)


def seed_config(rec: RunRecord, keys: tuple[str, ...]) -> dict[str, Any]:
    """The config sections ``keys`` that seeds of one method must share (``train.device``
    excepted: the same experiment may run on another device)."""
    cfg = {key: rec.config.get(key) for key in keys}
    train = cfg.get("train")
    if isinstance(train, dict):
        cfg["train"] = {k: v for k, v in train.items() if k != "device"}
    return cfg


def first_difference(a: Any, b: Any, prefix: str = "") -> str | None:
    """The dotted key of the first difference between two JSON-like values, or None.

    Dict keys are visited in sorted order; lists of equal length element-wise (index as key).
    """
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            found = first_difference(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else key)
            if found is not None:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = first_difference(x, y, f"{prefix}.{i}")
            if found is not None:
                return found
        return None
    return None if a == b else prefix
