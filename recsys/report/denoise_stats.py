"""Statistics of a denoising benchmark: means over seeds and paired per-user tests.

* **Seed summary.** For each cell (dataset, model, method, ρ) and metric: the mean over the
  cell's runs of the run's test value (``results.json``), the sample standard deviation
  (``ddof = 1``; null for one run) and the number of runs ``n``.
* **Paired test.** For a method and the baseline method at the same (dataset, model, ρ): each
  user's per-user test metric is averaged over the method's seeds, likewise for the baseline,
  and the users present in both are paired. With differences ``d_u = x_u - y_u``:
  ``Δ = mean(d)``, ``d_z = mean(d) / sd(d)`` (``ddof = 1``; 0 when ``sd = 0``), and ``p`` is
  the two-sided paired t-test (``scipy.stats.ttest_rel``; 1 when every ``d_u = 0`` or fewer
  than two users pair). Holm's correction runs over the comparisons of one table, i.e. every
  (method, ρ) against the baseline for one (dataset, model, metric).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from scipy import stats

from recsys.errors import RecsysError
from recsys.report.denoise_runs import DenoiseRun
from recsys.report.runs_loader import per_user_metrics
from recsys.report.tables import holm

KEYS = ["dataset", "model", "method", "noise"]


def seed_summary(
    runs: list[DenoiseRun], metrics: tuple[str, ...], split: str = "test"
) -> pl.DataFrame:
    """One row per (dataset, model, method, noise, metric): ``mean, std, n, seeds``.

    Raises:
        RecsysError: a run whose ``results.json`` lacks a metric.
    """
    rows = []
    for run in runs:
        values = run.record.results.get(split, {})
        for metric in metrics:
            if metric not in values:
                raise RecsysError(
                    f"{run.record.dir}: results.json has no {split} {metric!r} "
                    f"(has {sorted(values)})"
                )
            rows.append(
                {
                    "dataset": run.dataset,
                    "model": run.model,
                    "method": run.method,
                    "noise": run.noise,
                    "metric": metric,
                    "seed": run.seed,
                    "value": float(values[metric]),
                }
            )
    frame = pl.DataFrame(
        rows,
        schema={
            "dataset": pl.String,
            "model": pl.String,
            "method": pl.String,
            "noise": pl.Float64,
            "metric": pl.String,
            "seed": pl.Int64,
            "value": pl.Float64,
        },
    )
    return (
        frame.group_by([*KEYS, "metric"], maintain_order=True)
        .agg(
            pl.col("value").mean().alias("mean"),
            pl.col("value").std(ddof=1).alias("std"),
            pl.len().cast(pl.Int64).alias("n"),
            pl.col("seed").sort().cast(pl.String).str.join(" ").alias("seeds"),
        )
        .sort(["dataset", "model", "metric", "method", "noise"], maintain_order=True)
    )


def paired_test(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """``(Δ, d_z, p)`` for paired samples ``x`` (method) and ``y`` (baseline)."""
    diff = np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64)
    if len(diff) == 0:
        return float("nan"), 0.0, 1.0
    delta = float(diff.mean())
    sd = float(diff.std(ddof=1)) if len(diff) > 1 else 0.0
    dz = delta / sd if sd > 0 else 0.0
    if len(diff) < 2 or not np.any(diff != 0):
        return delta, dz, 1.0
    return delta, dz, float(stats.ttest_rel(x, y).pvalue)


def seed_mean_per_user(frames: list[pl.DataFrame], metric: str) -> pl.DataFrame:
    """``user_idx, <metric>``: each user's metric averaged over the runs (frames) that
    evaluated the user."""
    stacked = pl.concat([f.select("user_idx", pl.col(metric).cast(pl.Float64)) for f in frames])
    return stacked.group_by("user_idx").agg(pl.col(metric).mean()).sort("user_idx")


def paired_tests(
    runs: list[DenoiseRun], baseline: str, metrics: tuple[str, ...], split: str = "test"
) -> pl.DataFrame:
    """One row per (dataset, model, method ≠ baseline, ρ with a baseline cell, metric):
    ``delta, effect_dz, p, p_holm, users`` (see the module docstring).

    Raises:
        RecsysError: a run without ``per_user_<split>.parquet`` or without a metric column.
    """
    frames = {run.record.dir: per_user_metrics(run.record, metrics, split) for run in runs}
    cells: dict[tuple[str, str, str, float], list[Path]] = {}
    for run in runs:
        cells.setdefault(run.cell, []).append(run.record.dir)
    rows = []
    for metric in metrics:
        tables: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for (dataset, model, method, noise), dirs in cells.items():
            base_dirs = cells.get((dataset, model, baseline, noise))
            if method == baseline or base_dirs is None:
                continue
            ours = seed_mean_per_user([frames[d] for d in dirs], metric)
            base = seed_mean_per_user([frames[d] for d in base_dirs], metric)
            joined = ours.join(base.rename({metric: "base"}), on="user_idx", how="inner")
            delta, dz, p = paired_test(joined[metric].to_numpy(), joined["base"].to_numpy())
            tables.setdefault((dataset, model), []).append(
                {
                    "dataset": dataset,
                    "model": model,
                    "method": method,
                    "noise": noise,
                    "metric": metric,
                    "delta": delta,
                    "effect_dz": dz,
                    "p": p,
                    "users": joined.height,
                }
            )
        for comparisons in tables.values():
            adjusted = holm([float(c["p"]) for c in comparisons])
            for c, p_holm in zip(comparisons, adjusted, strict=True):
                rows.append({**c, "p_holm": p_holm})
    schema = {
        "dataset": pl.String,
        "model": pl.String,
        "method": pl.String,
        "noise": pl.Float64,
        "metric": pl.String,
        "delta": pl.Float64,
        "effect_dz": pl.Float64,
        "p": pl.Float64,
        "users": pl.Int64,
        "p_holm": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema)
