"""Result tables: runs × metrics@K with paired tests against a baseline."""

from __future__ import annotations

import numpy as np

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
