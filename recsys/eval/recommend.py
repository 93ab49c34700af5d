"""Top-K recommendation lists for export (train items excluded, deterministic ties).

Scores are computed in the evaluator's fixed blocks (``SCORE_BLOCK`` users, the last block
padded), so a user's list does not depend on which other users are asked for.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from recsys.eval.protocol import SCORE_BLOCK, _own_scores, _rows_and_items
from recsys.eval.topk import topk
from recsys.models.base import Model, eval_mode, model_device
from recsys.spec import DataSpec


@torch.no_grad()
def recommend_topk(
    model: Model, spec: DataSpec, users: Tensor, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` item indices and scores for ``users``, masking each user's train items.

    Returns:
        ``(items (U, k) int64, scores (U, k) float32)`` as numpy arrays.
    """
    with eval_mode(model):
        scorer = model.scorer_for("test")
        device = model_device(model)
        keys = spec.train_keys().to(device)
        k = min(k, spec.n_items)
        items_out, scores_out = [], []
        for start in range(0, len(users), SCORE_BLOCK):
            u = users[start : start + SCORE_BLOCK].to(device)
            n = len(u)
            padded = torch.cat([u, u[:1].expand(SCORE_BLOCK - n)]) if n < SCORE_BLOCK else u
            scores = _own_scores(scorer(padded), spec.n_items)[:n]
            rows, items = _rows_and_items(keys, u, spec.n_items)
            scores[rows, items] = -torch.inf
            vals, idx = topk(scores, k)
            items_out.append(idx.cpu())
            scores_out.append(vals.cpu())
        return torch.cat(items_out).numpy(), torch.cat(scores_out).numpy()
