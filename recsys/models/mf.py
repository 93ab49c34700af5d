"""Matrix factorisation: score(u, i) = <p_u, q_i>."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor, nn

from recsys.config import StrictModel
from recsys.models.base import Model, Scorer
from recsys.spec import DataSpec
from recsys.types import Batch, ModelOutput


class MFConfig(StrictModel):
    """Matrix-factorisation settings."""

    dim: int = Field(default=64, ge=1)
    """Embedding dimension ``d``."""
    init_std: float = 0.1
    """Embeddings start as N(0, init_std²), LightGCN-PyTorch's initialisation (std 0.1)."""


class MF(Model):
    """Dot-product matrix factorisation (BPR-MF when trained with the BPR loss).

    Embeddings are plain ``(n, d)`` parameters read with ``index_select``: its backward is an
    ``index_add`` into a dense gradient, measured ~1.3x faster per step on CPU than
    ``nn.Embedding``'s sort-based backward.
    """

    Config = MFConfig

    def __init__(self, cfg: MFConfig, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        self.user_emb = nn.Parameter(torch.empty(spec.n_users, cfg.dim))
        self.item_emb = nn.Parameter(torch.empty(spec.n_items, cfg.dim))
        nn.init.normal_(self.user_emb, std=cfg.init_std)
        nn.init.normal_(self.item_emb, std=cfg.init_std)

    def forward(self, batch: Batch) -> ModelOutput:
        """Scores of a batch.

        Returns:
            ``pos_scores (B,)``, ``neg_scores (B, N)`` and ``reg`` = the batch's embeddings
            ``{"user": (B, d), "pos": (B, d), "neg": (B, N, d)}``.
        """
        return score_batch(self.user_emb, self.item_emb, self.user_emb, self.item_emb, batch)

    def scorer(self) -> Scorer:
        users_w, items_w = self.user_emb.detach(), self.item_emb.detach()

        def score(users: Tensor) -> Tensor:
            return users_w.index_select(0, users) @ items_w.T

        return score

    def embeddings(self) -> tuple[Tensor, Tensor] | None:
        return self.user_emb.detach(), self.item_emb.detach()


def score_batch(
    users_final: Tensor, items_final: Tensor, users_ego: Tensor, items_ego: Tensor, batch: Batch
) -> ModelOutput:
    """Dot-product scores of a batch from (final) embeddings; ``reg`` from the ego embeddings.

    The scoring vectors go to ``extra`` (``user``, ``pos``, ``neg``) for alignment/uniformity.

    Args:
        users_final, items_final: ``(n_users, d)``, ``(n_items, d)`` embeddings that score.
        users_ego, items_ego: the layer-0 parameters regularised (the same tensors for MF).
        batch: users ``(B,)``, positives ``(B,)``, negatives ``(B, N)``.
    """
    b, n = batch.neg_items.shape
    # One gather and one product for positives and negatives: column 0 is the positive.
    item_idx = torch.cat([batch.pos_items.unsqueeze(1), batch.neg_items], dim=1).reshape(-1)
    u = users_final.index_select(0, batch.users)
    items = items_final.index_select(0, item_idx).view(b, n + 1, -1)
    if torch.is_grad_enabled():
        scores = (u.unsqueeze(1) * items).sum(-1)
    else:
        # Scoring without gradients (PLD's candidate pools, B x (1 + k) pairs per step): a
        # batched GEMM avoids the (B, n+1, d) product; measured ~3x faster on CPU there, while
        # with autograd the broadcast product trains ~20% faster than bmm's backward.
        scores = torch.bmm(items, u.unsqueeze(2)).squeeze(2)
    vectors = {"user": u, "pos": items[:, 0], "neg": items[:, 1:]}
    if users_final is users_ego and items_final is items_ego:
        reg = dict(vectors)
    else:
        ego = items_ego.index_select(0, item_idx).view(b, n + 1, -1)
        reg = {"user": users_ego.index_select(0, batch.users), "pos": ego[:, 0], "neg": ego[:, 1:]}
    return ModelOutput(scores[:, 0], scores[:, 1:], reg, extra=vectors)
