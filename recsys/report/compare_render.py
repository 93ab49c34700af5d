"""Tables, figure and protocol card of the compare report (:mod:`recsys.report.compare`).

The results table has one row per method: ``method | seeds | <metric> ... | <metric> p (holm)
...`` with cells ``mean ± std`` (``—`` for the std of one seed), the best mean per metric in
bold, and the Holm-corrected p of the paired test against the baseline, ``*`` when below
:data:`ALPHA`. A second table lists the paired tests in full (Δ, d_z, p, Holm p, users).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import polars as pl

from recsys.report.build import eval_protocol_lines
from recsys.report.denoise_render import TableBlock
from recsys.report.runs_loader import RunRecord
from recsys.report.text_format import fmt_setting, join_values, split_rule

ALPHA = 0.05
"""Holm-corrected p below which a p cell is marked ``*``."""

NO_STD = "—"
"""Shown for the standard deviation of a single seed."""

FIGURE_NAME = "compare_means.png"


def results_block(
    summary: pl.DataFrame,
    tests: pl.DataFrame,
    metrics: tuple[str, ...],
    order: list[str],
    baseline: str,
) -> TableBlock:
    """The methods × metrics table (see the module docstring)."""
    cells = {(r["method"], r["metric"]): r for r in summary.iter_rows(named=True)}
    p_holm = {(r["method"], r["metric"]): r["p_holm"] for r in tests.iter_rows(named=True)}
    with_tests = tests.height > 0
    best = {m: max(cells[(name, m)]["mean"] for name in order) for m in metrics}
    rows, bold = [], set()
    for i, name in enumerate(order):
        row = [name, str(cells[(name, metrics[0])]["n"])]
        for j, metric in enumerate(metrics, start=2):
            r = cells[(name, metric)]
            std = NO_STD if r["std"] is None else f"{r['std']:.4f}"
            row.append(f"{r['mean']:.4f} ± {std}")
            if math.isclose(r["mean"], best[metric], rel_tol=1e-9, abs_tol=1e-12):
                bold.add((i, j))  # ties (up to rounding error) are all bold
        if with_tests:
            for metric in metrics:
                if name == baseline:
                    row.append("baseline")
                    continue
                q = float(p_holm[(name, metric)])
                row.append(f"{q:.2g}" + ("*" if q < ALPHA else ""))
        rows.append(row)
    header = ["method", "seeds", *metrics]
    header += [f"{m} p (holm)" for m in metrics] if with_tests else []
    legend = (
        "Test metrics: mean ± sample std (ddof 1) over seeds, — for one seed; best mean per "
        "metric in bold."
    )
    if with_tests:
        k = len(order) - 1
        legend += (
            f" p (holm): two-sided paired t-test of per-user values (each user averaged over a "
            f"method's seeds) against {baseline} on the users both evaluated, Holm-corrected "
            f"over the {k} comparison{'s' if k != 1 else ''} of each metric; "
            f"* p (holm) < {ALPHA:g}."
        )
    return TableBlock("Methods", header, rows, frozenset(bold), (legend,))


def tests_block(
    tests: pl.DataFrame, order: list[str], metrics: tuple[str, ...], baseline: str
) -> TableBlock:
    """The paired tests in full: one row per (method ≠ baseline, metric)."""
    by_key = {(r["method"], r["metric"]): r for r in tests.iter_rows(named=True)}
    rows = [
        [
            name,
            metric,
            f"{r['delta']:+.4f}",
            f"{r['effect_dz']:+.3f}",
            f"{r['p']:.2g}",
            f"{r['p_holm']:.2g}" + ("*" if r["p_holm"] < ALPHA else ""),
            str(r["users"]),
        ]
        for name in order
        for metric in metrics
        if (r := by_key.get((name, metric))) is not None
    ]
    note = (
        f"Δ = mean over paired users of (method − {baseline}), each user's value averaged over "
        "the seeds; d_z = Δ / sd of the differences; p: paired t-test; Holm p over the methods "
        "of one metric."
    )
    return TableBlock(
        f"Paired tests against {baseline}",
        ["method", "metric", "Δ", "d_z", "p", "Holm p", "users"],
        rows,
        frozenset(),
        (note,),
    )


def means_png(
    summary: pl.DataFrame,
    values: pl.DataFrame,
    metrics: tuple[str, ...],
    order: list[str],
) -> bytes:
    """One panel per metric: each method's mean with ± std error bars (none for one seed)
    and its seeds' values as small dots. ``values`` holds ``method, metric, seed, value``.
    Returns PNG bytes (deterministic for the same inputs)."""
    width = max(3.6, 0.55 * len(order) + 1.6)
    fig, axes = plt.subplots(1, len(metrics), figsize=(width * len(metrics), 3.8), squeeze=False)
    x = np.arange(len(order), dtype=np.float64)
    for ax, metric in zip(axes[0], metrics, strict=True):
        cells = {r["method"]: r for r in summary.filter(pl.col("metric") == metric).to_dicts()}
        means = np.array([cells[m]["mean"] for m in order], dtype=np.float64)
        stds = np.array([cells[m]["std"] or 0.0 for m in order], dtype=np.float64)
        ax.errorbar(x, means, yerr=stds, fmt="o", color="C0", capsize=4, label="mean ± std")
        seeds = values.filter(pl.col("metric") == metric)
        for i, name in enumerate(order):
            ys = seeds.filter(pl.col("method") == name)["value"].to_numpy()
            label = "seeds" if i == 0 else None
            ax.scatter(np.full(len(ys), x[i] + 0.18), ys, s=9, color="0.55", zorder=3, label=label)
        rotate = len(order) > 3
        ax.set_xticks(x, order, rotation=30 if rotate else 0, ha="right" if rotate else "center")
        ax.set_xlim(-0.6, len(order) - 0.4)
        ax.set_title(f"test {metric}")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def protocol_card(
    methods: Sequence[tuple[str, Sequence[RunRecord]]],
    protocol: Mapping[str, Any],
    metrics: tuple[str, ...],
    baseline: str,
    statistics: str | None = None,
) -> list[tuple[str, str]]:
    """Data, split and evaluation protocol, each method's setup and the statistics used
    (``statistics``: the report's own description; default the compare report's)."""
    records = [rec for _, runs in methods for rec in runs]
    first = records[0]
    data = first.config.get("data", {})
    card: list[tuple[str, str]] = [
        ("dataset", f"{data.get('name')} (source {data.get('source', {}).get('path')})"),
        ("data hash", str(protocol.get("data hash (dataset and split)"))),
        ("cleaning", fmt_setting(data.get("clean"))),
        ("split", fmt_setting(data.get("split"))),
        ("split rule", split_rule(first.results.get("data", {}).get("protocol", {}))),
        *eval_protocol_lines(first.config.get("eval", {})),
        ("users evaluated (test)", join_values(r.results.get("test_users") for r in records)),
        ("ties", "broken by lower item index"),
        (
            "metrics",
            f"test {', '.join(metrics)} from results.json; per-user values from "
            "per_user_test.parquet",
        ),
    ]
    for name, runs in methods:
        cfg = runs[0].config
        train = cfg.get("train", {})
        losses = [fmt_setting(x) for x in cfg.get("losses", []) or [] if isinstance(x, Mapping)]
        card.append(
            (
                f"method: {name}",
                f"model {fmt_setting(cfg.get('model'))}; losses {'; '.join(losses) or 'none'}; "
                f"sampler {fmt_setting(cfg.get('sampler'))}; epochs ≤ {train.get('epochs')}, "
                f"lr {train.get('lr')}, batch {train.get('batch_size')}; seeds "
                f"{join_values(r.config.get('seed', 0) for r in runs)}",
            )
        )
    card += [
        (
            "statistics",
            statistics
            or f"mean ± sample std (ddof 1) over seeds; paired t-test of per-user values "
            f"(averaged over seeds) against {baseline} on the users both evaluated; Holm over "
            "the methods of each metric; d_z = mean difference / sd",
        ),
        (
            "row order",
            "first appearance; an ablation <base>-no-<x> follows its base method when reported",
        ),
    ]
    return card
