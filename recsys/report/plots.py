"""Report figures (matplotlib, headless)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from recsys.report.runs_loader import RunRecord


def metric_vs_k_png(
    records: list[RunRecord], metrics: tuple[str, ...], split: str = "test"
) -> bytes:
    """One panel per metric: the metric at each K, one line per run. Returns PNG bytes."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for rec in records:
            pts = sorted(
                (int(name.split("@")[1]), value)
                for name, value in rec.results[split].items()
                if name.startswith(f"{metric}@")
            )
            if pts:
                ax.plot([k for k, _ in pts], [v for _, v in pts], marker="o", label=rec.label)
        ax.set_xlabel("K")
        ax.set_title(f"{split} {metric}@K")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def training_curves_png(records: list[RunRecord], monitor: str) -> bytes | None:
    """Validation ``monitor`` per epoch for every trained run, or None if no run has epochs."""
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    drawn = False
    key = f"valid/{monitor}"
    for rec in records:
        pts = [(row["epoch"], row[key]) for row in rec.history() if key in row]
        if len(pts) > 1:
            ax.plot([e for e, _ in pts], [v for _, v in pts], label=rec.label)
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("epoch")
    ax.set_title(f"validation {monitor}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
