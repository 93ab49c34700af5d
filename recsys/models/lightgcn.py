"""LightGCN (He et al., SIGIR 2020): linear propagation on the normalised bipartite graph."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor, nn

from recsys.config import StrictModel
from recsys.data.graph import layer_sum
from recsys.models.base import Model, Scorer, dot_scorer
from recsys.models.mf import score_batch
from recsys.spec import DataSpec
from recsys.types import Batch, ModelOutput


class LightGCNConfig(StrictModel):
    """LightGCN settings (defaults: the paper's 3 layers, dim 64)."""

    dim: int = Field(default=64, ge=1)
    """Embedding dimension ``d``."""
    layers: int = Field(default=3, ge=0)
    """Propagation layers ``L`` (0 is plain MF)."""
    init_std: float = Field(default=0.1, gt=0)
    """Ego embeddings start as N(0, init_std²), as LightGCN-PyTorch does (normal, std 0.1)."""


class LightGCN(Model):
    """LightGCN: ``E_final = 1/(L+1) Σ_{l=0..L} Â^l E_0`` with ``Â = D^-1/2 A D^-1/2``.

    The whole graph is propagated once per forward (as in LightGCN-PyTorch's ``computer``), with
    :func:`recsys.data.graph.propagate` (backward ``Â @ grad``). The losses regularise the
    layer-0 ("ego") embeddings of the batch. The adjacency is not a buffer (it stays out of the
    state dict); it follows the parameters' device on first use.
    """

    Config = LightGCNConfig

    def __init__(self, cfg: LightGCNConfig, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        self.layers = cfg.layers
        self.user_emb = nn.Parameter(torch.empty(spec.n_users, cfg.dim))
        self.item_emb = nn.Parameter(torch.empty(spec.n_items, cfg.dim))
        nn.init.normal_(self.user_emb, std=cfg.init_std)
        nn.init.normal_(self.item_emb, std=cfg.init_std)
        self._adj = spec.graph.adj

    def _adjacency(self, like: Tensor) -> Tensor:
        if self._adj.device != like.device or self._adj.dtype != like.dtype:
            self._adj = self._adj.to(device=like.device, dtype=like.dtype)
        return self._adj

    def propagate_all(self) -> tuple[Tensor, Tensor]:
        """Final embeddings ``(n_users, d)``, ``(n_items, d)`` (differentiable)."""
        x = torch.cat([self.user_emb, self.item_emb])
        if self.layers > 0:
            x = layer_sum(self._adjacency(x), x, self.layers) * (1.0 / (self.layers + 1))
        users, items = torch.split(x, [self.n_users, self.n_items])
        return users, items

    def forward(self, batch: Batch) -> ModelOutput:
        """Scores of a batch from the propagated embeddings.

        Returns:
            ``pos_scores (B,)``, ``neg_scores (B, N)`` and ``reg`` = the batch's ego embeddings
            ``{"user": (B, d), "pos": (B, d), "neg": (B, N, d)}``.
        """
        users, items = self.propagate_all()
        return score_batch(users, items, self.user_emb, self.item_emb, batch)

    def scorer(self) -> Scorer:
        with torch.no_grad():
            return dot_scorer(*self.propagate_all())

    def embeddings(self) -> tuple[Tensor, Tensor] | None:
        with torch.no_grad():
            return self.propagate_all()
