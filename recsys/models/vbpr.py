"""VBPR (He & McAuley, AAAI 2016), in the form MMRec implements it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from recsys.config import StrictModel
from recsys.models.base import Model, Scorer, dot_scorer
from recsys.models.modality import ModalityInputs, select_modalities
from recsys.spec import DataSpec
from recsys.types import Batch, ModelOutput


class VBPRConfig(StrictModel):
    """VBPR settings (MMRec: d = 64, no dropout)."""

    dim: int = Field(default=64, ge=1)
    """Size ``d`` of the item ID part and of the projected content part (users have ``2d``)."""
    modalities: list[str] = Field(default_factory=list)
    """Modalities whose features are concatenated (empty: every modality of the data)."""
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Dropout on the user and item vectors while training."""


class VBPR(Model):
    """``score(u, i) = p_u · [q_i ‖ E f_i]`` with ``f_i`` the concatenated modality features.

    The user vector ``p_u`` has ``2d`` entries, the item vector is its free ``d``-dim ID
    embedding concatenated with a linear projection ``E`` (with bias) of the item's raw
    features to ``d``: MMRec's VBPR, equivalent to the paper's ``γ_u·γ_i + θ_u·(E f_i)``
    without the bias terms ``α + β_u + β_i + β'·f_i``. Trained with BPR; MMRec regularises the
    batch's final vectors, which is what ``reg`` holds. Xavier-uniform initialisation.
    """

    Config = VBPRConfig

    def __init__(self, cfg: VBPRConfig, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        self.inputs = ModalityInputs(select_modalities(spec, cfg.modalities, [], "vbpr"))
        self.dropout = cfg.dropout
        self.user_emb = nn.Parameter(torch.empty(spec.n_users, 2 * cfg.dim))
        self.item_emb = nn.Parameter(torch.empty(spec.n_items, cfg.dim))
        nn.init.xavier_uniform_(self.user_emb)
        nn.init.xavier_uniform_(self.item_emb)
        self.project = nn.Linear(sum(self.inputs.dims), cfg.dim)
        nn.init.xavier_uniform_(self.project.weight)

    def item_vectors(self, items: Tensor | None = None) -> Tensor:
        """``[q_i ‖ E f_i]`` of ``items`` (all items when None)."""
        ids = self.item_emb if items is None else self.item_emb.index_select(0, items)
        content = self.project(torch.cat(self.inputs.all_filled(items), dim=-1))
        return torch.cat([ids, content], dim=-1)

    def forward(self, batch: Batch) -> ModelOutput:
        """Scores of a batch; only the batch's items are projected.

        Returns:
            ``pos_scores (B,)``, ``neg_scores (B, N)``; ``reg`` and ``extra`` hold the batch's
            user ``(B, 2d)``, positive ``(B, 2d)`` and negative ``(B, N, 2d)`` vectors.
        """
        b, n = batch.neg_items.shape
        item_idx = torch.cat([batch.pos_items.unsqueeze(1), batch.neg_items], dim=1).reshape(-1)
        unique, inverse = torch.unique(item_idx, return_inverse=True)
        items = self.item_vectors(unique).index_select(0, inverse).view(b, n + 1, -1)
        u = self.user_emb.index_select(0, batch.users)
        if self.training and self.dropout > 0:
            u, items = F.dropout(u, self.dropout), F.dropout(items, self.dropout)
        scores = (u.unsqueeze(1) * items).sum(-1)
        vectors = {"user": u, "pos": items[:, 0], "neg": items[:, 1:]}
        return ModelOutput(scores[:, 0], scores[:, 1:], reg=dict(vectors), extra=vectors)

    def scorer(self) -> Scorer:
        with torch.no_grad():
            return dot_scorer(self.user_emb, self.item_vectors())

    def embeddings(self) -> tuple[Tensor, Tensor] | None:
        with torch.no_grad():
            return self.user_emb.detach(), self.item_vectors()
