"""Statistics of the multi-task report: per-task paired AUC tests against a baseline.

For a method, a task and a seed, DeLong's test compares its test AUC with the baseline's run
of the same seed on the same labelled test samples (``pred_test.parquet`` of both runs). The
seeds' z statistics are combined by Stouffer's rule ``z = Σ_s z_s / √S`` (the seeds are
independent replications of the same comparison), ``p = 2(1 − Φ(|z|))``; Holm's correction
runs over every (method, task) comparison of the report.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from scipy import stats

from recsys.errors import RecsysError
from recsys.eval.auc import delong_test
from recsys.report.compare import Method
from recsys.report.tables import holm

TEST_SCHEMA = {
    "method": pl.String,
    "task": pl.String,
    "delta_auc": pl.Float64,
    "z": pl.Float64,
    "p": pl.Float64,
    "p_holm": pl.Float64,
    "seeds": pl.Int64,
    "seeds_better": pl.Int64,
    "seeds_worse": pl.Int64,
}


def _predictions(run_dir: Path, task: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(row, p, y)`` of the labelled test samples of ``task``."""
    path = run_dir / "pred_test.parquet"
    if not path.is_file():
        raise RecsysError(f"{run_dir}: no pred_test.parquet (not a multi-task run?)")
    frame = pl.read_parquet(path).filter(pl.col(f"m_{task}"))
    return (
        frame["row"].to_numpy(),
        frame[f"p_{task}"].to_numpy(),
        frame[f"y_{task}"].to_numpy(),
    )


def _pairs(method: Method, base: Method) -> list[tuple[Path, Path]]:
    """Runs of ``method`` and ``base`` with the same seed (by seed value)."""
    base_by_seed = dict(zip(base.seeds, (r.dir for r in base.runs), strict=True))
    pairs = [(r.dir, base_by_seed[s]) for r, s in zip(method.runs, method.seeds, strict=True)
             if s in base_by_seed]  # fmt: skip
    if not pairs:
        raise RecsysError(
            f"multitask report: {method.name} (seeds {method.seeds}) shares no seed with the "
            f"baseline {base.name} (seeds {base.seeds})"
        )
    return pairs


def delong_tests(methods: list[Method], baseline: str, tasks: tuple[str, ...]) -> pl.DataFrame:
    """One row per (method ≠ baseline, task): :data:`TEST_SCHEMA` (see the module docstring).

    Raises:
        RecsysError: runs without predictions, or two runs whose labelled samples differ.
    """
    base = next(m for m in methods if m.name == baseline)
    rows: list[dict[str, Any]] = []
    for method in methods:
        if method.name == baseline:
            continue
        for task in tasks:
            zs, deltas = [], []
            for ours, theirs in _pairs(method, base):
                row_a, p_a, y_a = _predictions(ours, task)
                row_b, p_b, y_b = _predictions(theirs, task)
                if not (np.array_equal(row_a, row_b) and np.array_equal(y_a, y_b)):
                    raise RecsysError(
                        f"multitask report: {ours.name} and {theirs.name} have different "
                        f"{task!r} test samples; they cannot be paired"
                    )
                test = delong_test(p_a, p_b, y_a)
                zs.append(test.z)
                deltas.append(test.diff)
            z = float(np.sum(zs) / math.sqrt(len(zs)))
            rows.append(
                {
                    "method": method.name,
                    "task": task,
                    "delta_auc": float(np.mean(deltas)),
                    "z": z,
                    "p": float(2 * stats.norm.sf(abs(z))) if math.isfinite(z) else 0.0,
                    "seeds": len(zs),
                    "seeds_better": int(sum(d > 0 for d in deltas)),
                    "seeds_worse": int(sum(d < 0 for d in deltas)),
                }
            )
    adjusted = holm([r["p"] for r in rows]) if rows else []
    for r, q in zip(rows, adjusted, strict=True):
        r["p_holm"] = q
    return pl.DataFrame(rows, schema=TEST_SCHEMA)
