"""Figures of the standard report: metric vs K and training curves, per method (seed means)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from recsys.report.compare import Method
from recsys.report.noise_plots import epoch_mean
from recsys.report.plots import _png


def metric_vs_k_png(methods: Sequence[Method], families: Sequence[str]) -> bytes:
    """One panel per metric family: the test metric at each K, one line per method (the mean
    over its seeds). Returns PNG bytes."""
    fig, axes = plt.subplots(1, len(families), figsize=(4.2 * len(families), 3.4), squeeze=False)
    for ax, family in zip(axes[0], families, strict=True):
        for m in methods:
            ks = sorted(
                {
                    int(k.split("@")[1])
                    for r in m.runs
                    for k in r.results["test"]
                    if k.startswith(f"{family}@")
                }
            )
            means = [np.mean([r.results["test"][f"{family}@{k}"] for r in m.runs]) for k in ks]
            if ks:
                ax.plot(ks, means, marker="o", label=m.name)
        ax.set_xlabel("K")
        ax.set_title(f"test {family}@K")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    return _png(fig)


def training_curves_png(methods: Sequence[Method], monitor: str) -> bytes | None:
    """Two panels per epoch, means over each method's seeds: the training loss and each named
    loss term, and the validation ``monitor``. None when no run trained for 2+ epochs."""
    histories = {m.name: [r.history() for r in m.runs] for m in methods}
    colours = {name: f"C{i % 10}" for i, name in enumerate(histories)}  # as in metric_vs_k
    trained = {n: h for n, h in histories.items() if any(len(x) > 1 for x in h)}
    if not trained:
        return None
    fig, (loss_ax, valid_ax) = plt.subplots(1, 2, figsize=(10, 3.4))
    for name, hs in trained.items():
        color = colours[name]
        epochs, values = epoch_mean(hs, "loss")
        if len(epochs):
            loss_ax.plot(epochs, values, color=color, label=f"{name} loss")
        terms = sorted({k for h in hs for row in h for k in row if k.startswith("loss/")})
        for style, term in zip(("--", ":", "-."), terms, strict=False):
            epochs, values = epoch_mean(hs, term)
            if len(epochs) and term != "loss/total":
                loss_ax.plot(
                    epochs,
                    values,
                    color=color,
                    linestyle=style,
                    alpha=0.7,
                    label=f"{name} {term[5:]}",
                )
        epochs, values = epoch_mean(hs, f"valid/{monitor}")
        if len(epochs):
            valid_ax.plot(epochs, values, color=color, label=name)
    loss_ax.set_xlabel("epoch")
    loss_ax.set_title("training loss (terms dashed)")
    loss_ax.set_yscale("log")
    loss_ax.grid(alpha=0.3)
    if loss_ax.get_legend_handles_labels()[0]:
        loss_ax.legend(fontsize=7)
    valid_ax.set_xlabel("epoch")
    valid_ax.set_title(f"validation {monitor}")
    valid_ax.grid(alpha=0.3)
    if valid_ax.get_legend_handles_labels()[0]:
        valid_ax.legend(fontsize=8)
    return _png(fig)
