"""Per-task evaluation of multi-task models: AUC, GAUC and LogLoss on a split's samples.

For each task only the samples whose label is defined count (the mask). GAUC groups samples
by user (datasets with users; NaN otherwise): the mean of per-user AUCs weighted by the
user's number of labelled samples, over users with both classes (see
:func:`recsys.eval.auc.group_auc`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recsys.data.multitask.tensors import MultiTaskData, take_batch
from recsys.errors import RecsysError
from recsys.eval.auc import auc, group_auc, log_loss
from recsys.models.base import Model, eval_mode, model_device

TASK_METRICS = ("auc", "gauc", "logloss")
"""The per-task metrics, reported as ``<task>/<metric>``."""


@dataclass(frozen=True)
class TaskPredictions:
    """A split's predicted probabilities and labels.

    Attributes:
        probs: ``(N, K)`` float64 σ(logit) per task.
        labels: ``(N, K)`` float32; mask: ``(N, K)`` bool; users: ``(N,)`` (``-1``: none).
    """

    probs: np.ndarray
    labels: np.ndarray
    mask: np.ndarray
    users: np.ndarray


def predict(
    model: Model, data: MultiTaskData, split: str, batch_size: int = 8192
) -> TaskPredictions:
    """Probabilities of every sample of ``split`` (eval mode, no gradients).

    Raises:
        RecsysError: the model returned non-finite logits.
    """
    rows = data.rows[split]
    device = model_device(model)
    out = []
    with torch.no_grad(), eval_mode(model):
        for start in range(0, len(rows), batch_size):
            idx = torch.arange(start, min(start + batch_size, len(rows)))
            logits = model(take_batch(data, rows, idx).to(device)).logits
            out.append(torch.sigmoid(logits.double()).cpu())
    probs = torch.cat(out).numpy() if out else np.zeros((0, data.n_tasks))
    if not np.isfinite(probs).all():
        raise RecsysError(f"the model returned non-finite scores on the {split} samples")
    return TaskPredictions(probs, rows.labels.numpy(), rows.mask.numpy(), rows.users.numpy())


def task_metrics(pred: TaskPredictions, tasks: tuple[str, ...]) -> dict[str, float]:
    """``<task>/auc``, ``<task>/gauc``, ``<task>/logloss`` for every task, and the unweighted
    means over tasks ``mean/auc``, ``mean/gauc`` (a monitor that weighs every task alike)."""
    out: dict[str, float] = {}
    has_users = bool(pred.users.size) and bool((pred.users >= 0).all())
    for k, task in enumerate(tasks):
        m = pred.mask[:, k]
        p, y = pred.probs[m, k], pred.labels[m, k]
        out[f"{task}/auc"] = auc(p, y) if y.size else float("nan")
        out[f"{task}/gauc"] = (
            group_auc(p, y, pred.users[m]).value if has_users and y.size else float("nan")
        )
        out[f"{task}/logloss"] = log_loss(p, y) if y.size else float("nan")
    for name in ("auc", "gauc"):
        out[f"mean/{name}"] = float(np.mean([out[f"{t}/{name}"] for t in tasks]))
    return out


def evaluate_tasks(
    model: Model, data: MultiTaskData, split: str
) -> tuple[dict[str, float], TaskPredictions]:
    """The per-task metrics of ``split`` and the predictions they came from."""
    pred = predict(model, data, split)
    return task_metrics(pred, data.tasks), pred
