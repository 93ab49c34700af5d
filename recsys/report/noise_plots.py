"""Figures for noisy-feedback experiments: a metric against the noise ratio, and per-epoch
noise-detection diagnostics read from the runs' histories (``metrics.jsonl``).

A *history* is a run's list of epoch rows; diagnostics are averaged over the histories of one
line (its seeds) epoch by epoch, over the runs that logged that epoch (runs that stopped early
drop out of the later epochs).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib.ticker import MaxNLocator

from recsys.report.plots import _png

History = Sequence[Mapping[str, Any]]
Panels = Mapping[str, Mapping[str, Sequence[History]]]
"""Panel title → line label → the histories (one per seed) averaged into that line."""

AUROC_KEYS = ("noise/auroc_global", "noise/auroc_user")
PLD_SHARE_KEYS = ("pld/noise_share", "pld/pool_noise_share")


def epoch_mean(histories: Sequence[History], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Epochs and the mean of ``key`` over ``histories`` at each epoch (finite values only)."""
    pts = [
        (float(row["epoch"]), float(row[key]))
        for hist in histories
        for row in hist
        if row.get(key) is not None and "epoch" in row and math.isfinite(float(row[key]))
    ]
    if not pts:
        return np.empty(0), np.empty(0)
    frame = pl.DataFrame(pts, schema=["epoch", "value"], orient="row")
    means = frame.group_by("epoch").agg(pl.col("value").mean()).sort("epoch")
    return means["epoch"].to_numpy(), means["value"].to_numpy()


def has_any(histories: Sequence[History], keys: Sequence[str]) -> bool:
    """Whether any row of any history holds one of ``keys``."""
    return any(key in row for hist in histories for row in hist for key in keys)


def noise_auroc_png(panels: Panels, order: Sequence[str] = ()) -> bytes | None:
    """Noise-detection AUROC per epoch: global ranking (solid) and within users (dashed).

    One line pair per label, mean over its seeds; a label's colour is its position in
    ``order`` (else in its panel). None when no history has the keys.
    """
    return _epoch_pairs_png(
        panels, AUROC_KEYS, ("global", "per user"), "noise-detection AUROC", order
    )


def pld_share_png(panels: Panels, order: Sequence[str] = ()) -> bytes | None:
    """PLD's share of noisy positives among those sampled (solid) and in the candidate pool
    (dashed), per epoch, as :func:`noise_auroc_png` draws lines. None when no history has
    the keys."""
    return _epoch_pairs_png(panels, PLD_SHARE_KEYS, ("sampled", "pool"), "noise share", order)


def _epoch_pairs_png(
    panels: Panels,
    keys: tuple[str, str],
    names: tuple[str, str],
    ylabel: str,
    order: Sequence[str],
) -> bytes | None:
    drawn = {
        title: lines
        for title, lines in panels.items()
        if any(has_any(hists, keys) for hists in lines.values())
    }
    if not drawn:
        return None
    fig, axes = _grid(len(drawn), 5.0, 3.4)
    for ax, (title, lines) in zip(axes, drawn.items(), strict=False):
        for i, (label, hists) in enumerate(lines.items()):
            color = f"C{(list(order).index(label) if label in order else i) % 10}"
            for key, name, style in zip(keys, names, ("-", "--"), strict=True):
                epochs, values = epoch_mean(hists, key)
                if len(epochs):
                    ax.plot(epochs, values, style, color=color, label=f"{label}: {name}")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _finish(fig, axes, len(drawn))


def metric_vs_noise_png(summary: pl.DataFrame, metric: str, methods: Sequence[str]) -> bytes:
    """``metric`` against the noise ratio ρ, one panel per (dataset, model), one line per
    method; error bars are the standard deviation over seeds (none for a single seed).

    Args:
        summary: rows with ``dataset, model, method, noise, metric, mean, std``
            (see :func:`recsys.report.denoise_stats.seed_summary`).
        metric: which ``metric`` rows to draw.
        methods: line order (and colour order).
    """
    rows = summary.filter(pl.col("metric") == metric)
    groups = rows.select("dataset", "model").unique(maintain_order=True).rows()
    fig, axes = _grid(max(len(groups), 1), 4.6, 3.4)
    for ax, (dataset, model) in zip(axes, groups, strict=False):
        panel = rows.filter((pl.col("dataset") == dataset) & (pl.col("model") == model))
        for i, method in enumerate(methods):
            line = panel.filter(pl.col("method") == method).sort("noise")
            if line.height == 0:
                continue
            ax.errorbar(
                line["noise"].to_numpy(),
                line["mean"].to_numpy(),
                yerr=line["std"].fill_null(0.0).to_numpy(),
                marker="o",
                capsize=3,
                color=f"C{i % 10}",
                label=method,
            )
        ax.set_xticks(sorted(set(panel["noise"].to_list())))
        ax.set_xlabel("injected noise ratio ρ")
        ax.set_ylabel(f"test {metric}")
        ax.set_title(f"{dataset} · {model}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _finish(fig, axes, len(groups))


def _grid(n: int, width: float, height: float) -> tuple[plt.Figure, list[Any]]:
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    return fig, [ax for row in axes for ax in row]


def _finish(fig: plt.Figure, axes: list[Any], used: int) -> bytes:
    for ax in axes[used:]:
        ax.set_visible(False)
    fig.tight_layout()
    return _png(fig)
