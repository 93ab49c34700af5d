"""Top-K recommendation lists for export (train items excluded, deterministic ties)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from recsys.eval.topk import topk
from recsys.models.base import Model
from recsys.spec import DataSpec


@torch.no_grad()
def recommend_topk(
    model: Model, spec: DataSpec, users: Tensor, k: int, block: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` item indices and scores for ``users``, masking each user's train items.

    Returns:
        ``(items (U, k) int64, scores (U, k) float32)`` as numpy arrays.
    """
    was_training = model.training
    model.eval()
    try:
        scorer = model.scorer()
        keys = spec.train_keys()
        k = min(k, spec.n_items)
        items_out, scores_out = [], []
        for start in range(0, len(users), block):
            u = users[start : start + block]
            scores = scorer(u.to(_device(model))).float()
            lo = torch.searchsorted(keys, u * spec.n_items)
            hi = torch.searchsorted(keys, (u + 1) * spec.n_items)
            counts = hi - lo
            rows = torch.repeat_interleave(torch.arange(len(u)), counts)
            starts = torch.repeat_interleave(lo - (torch.cumsum(counts, 0) - counts), counts)
            flat = keys[torch.arange(int(counts.sum())) + starts] - u[rows] * spec.n_items
            scores[rows.to(scores.device), flat.to(scores.device)] = -torch.inf
            vals, idx = topk(scores, k)
            items_out.append(idx.cpu())
            scores_out.append(vals.cpu())
        return torch.cat(items_out).numpy(), torch.cat(scores_out).numpy()
    finally:
        model.train(was_training)


def _device(model: Model) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")
