"""Result tables: runs × metrics@K with paired tests against a baseline."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
from scipy import stats

from recsys.report.runs_loader import RunRecord


def metric_columns(records: list[RunRecord], split: str = "test") -> list[str]:
    """``metric@K`` names present in every run, ordered by metric then K."""
    common = set(records[0].results[split])
    for rec in records[1:]:
        common &= set(rec.results[split])

    order = ("recall", "ndcg", "precision", "hit", "mrr", "map")

    def key(name: str) -> tuple[int, str, int]:
        metric, _, k = name.partition("@")
        return (order.index(metric) if metric in order else len(order), metric, int(k or 0))

    return sorted(common, key=key)


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    m = len(pvalues)
    order = np.argsort(pvalues, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[idx]))
        adjusted[idx] = running
    return adjusted.tolist()


def results_table(
    records: list[RunRecord], baseline: RunRecord | None, split: str = "test"
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Runs × metrics table, plus paired t-tests of the primary metric against ``baseline``.

    The primary metric is the largest-K NDCG. The test pairs each evaluated user's value in
    the run with the same user's value in the baseline; p-values are Holm-corrected over all
    comparisons in the table.
    """
    cols = metric_columns(records, split)
    rows = [{"run": r.label, **{c: float(r.results[split][c]) for c in cols}} for r in records]
    table = pl.DataFrame(rows)
    ndcg = [c for c in cols if c.startswith("ndcg@")]
    primary = max(ndcg, key=lambda c: int(c.split("@")[1])) if ndcg else cols[0]
    tests: dict[str, Any] = {"metric": primary, "baseline": None, "rows": {}}
    if baseline is None:
        return table, tests
    tests["baseline"] = baseline.label
    base = baseline.per_user(split).select("user_idx", pl.col(primary).alias("base"))
    raw: dict[str, tuple[float, float, int]] = {}
    for rec in records:
        if rec.dir == baseline.dir:
            continue
        joined = rec.per_user(split).select("user_idx", primary).join(base, on="user_idx")
        a = joined[primary].to_numpy()
        b = joined["base"].to_numpy()
        diff = a - b
        p = float(stats.ttest_rel(a, b).pvalue) if np.any(diff != 0) else 1.0
        sd = float(diff.std(ddof=1)) if len(diff) > 1 else 0.0
        raw[rec.label] = (p, float(diff.mean() / sd) if sd > 0 else 0.0, len(diff))
    adjusted = holm([v[0] for v in raw.values()])
    for (label, (p, d, n)), p_holm in zip(raw.items(), adjusted, strict=True):
        tests["rows"][label] = {"p": p, "p_holm": p_holm, "effect_dz": d, "users": n}
    return table, tests
