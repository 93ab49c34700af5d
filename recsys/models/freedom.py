"""FREEDOM (Zhou et al., ACM MM 2023): a frozen item-item graph and a degree-pruned LightGCN."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from recsys.data.graph import build_graph, layer_sum
from recsys.models.base import Model, Scorer, dot_scorer, follow
from recsys.models.modality import ItemGraphConfig, item_graph_inputs
from recsys.spec import DataSpec
from recsys.types import Batch, Interactions, ModelOutput


class FREEDOMConfig(ItemGraphConfig):
    """FREEDOM settings (defaults: MMRec's ``FREEDOM.yaml``; grid dropout {0.8, 0.9}, reg
    {0, 1e-5, 1e-4, 1e-3})."""

    dim: int = Field(default=64, ge=1)
    ui_layers: int = Field(default=2, ge=0)
    """LightGCN layers on the (pruned) user-item graph, mean readout."""
    mm_layers: int = Field(default=1, ge=0)
    """Propagation steps of the item ID embeddings on the frozen item-item graph."""
    dropout: float = Field(default=0.8, ge=0.0, lt=1.0)
    """Share ``p`` of user-item edges pruned each epoch (degree-sensitive)."""
    reg_weight: float = Field(default=1e-4, ge=0.0)
    """Weight ``λ`` of the modality BPR terms."""


class FREEDOM(Model):
    """FREEDOM as MMRec's ``freedom.py`` computes it.

    * Item-item graph ``A_mm``: per modality, cosine top-k of the raw features (self
      included), ``D^-1/2 A D^-1/2`` with row degrees, weighted sum over modalities; built once
      from the data and frozen (:meth:`recsys.spec.DataSpec.modality_graph`).
    * Each epoch (:meth:`start_epoch`) keeps ``(1 - dropout)`` of the train edges, drawn
      without replacement with probability ``∝ 1/sqrt(d_u d_i)`` (exact, by Gumbel top-k), and
      renormalises the kept graph. Evaluation uses the full graph.
    * ``items = LightGCN_items + A_mm^{mm_layers} Q`` where ``Q`` are the free item ID
      embeddings and LightGCN runs on ``[P; Q]`` with a mean readout; users are LightGCN's.
    * ``aux``: ``reg_weight * Σ_m BPR(u; T_m f_{m,i}, T_m f_{m,j})`` with ``T_m`` a linear map
      of modality ``m``'s raw features to ``d`` (MMRec's ``mf_v_loss + mf_t_loss``), where the
      BPR is ``-mean log σ(s_pos - s_neg)``.
    """

    Config = FREEDOMConfig

    def __init__(self, cfg: FREEDOMConfig, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        self.cfg: FREEDOMConfig = cfg
        self.inputs, self._mm_adj = item_graph_inputs(spec, cfg, "freedom")
        self.user_emb = nn.Parameter(torch.empty(spec.n_users, cfg.dim))
        self.item_emb = nn.Parameter(torch.empty(spec.n_items, cfg.dim))
        nn.init.xavier_uniform_(self.user_emb)
        nn.init.xavier_uniform_(self.item_emb)
        self.project = nn.ModuleList(nn.Linear(d, cfg.dim) for d in self.inputs.dims)
        self._full_adj = spec.graph.adj
        self._train = spec.train
        degree = spec.graph.degree
        users, items = spec.graph.edge_index
        one_way = users < spec.n_users
        self._edges = torch.stack([users[one_way], items[one_way] - spec.n_users])
        self._edge_logw = -0.5 * (degree[users[one_way]].log() + degree[items[one_way]].log())
        self._pruned: Tensor | None = None

    def start_epoch(self, epoch: int) -> None:
        """Draw this epoch's pruned graph (global torch RNG)."""
        if self.cfg.dropout <= 0:
            self._pruned = None
            return
        n_edges = self._edges.shape[1]
        keep = max(1, int(n_edges * (1.0 - self.cfg.dropout)))
        gumbel = -torch.log(-torch.log(torch.rand(n_edges).clamp_min(1e-20)))
        chosen = torch.topk(self._edge_logw + gumbel, keep).indices
        kept = Interactions(self._edges[0, chosen], self._edges[1, chosen])
        self._pruned = build_graph(kept, self.n_users, self.n_items).adj

    def propagate_all(self, adj: Tensor) -> tuple[Tensor, Tensor]:
        """Final user and item embeddings on the user-item graph ``adj``."""
        h = self.item_emb
        mm_adj = self._mm_adj = follow(self._mm_adj, self.user_emb)
        for _ in range(self.cfg.mm_layers):
            h = torch.sparse.mm(mm_adj, h)
        x = torch.cat([self.user_emb, self.item_emb])
        if self.cfg.ui_layers > 0:
            x = layer_sum(adj, x, self.cfg.ui_layers) / (self.cfg.ui_layers + 1)
        users, items = torch.split(x, [self.n_users, self.n_items])
        return users, items + h

    def forward(self, batch: Batch) -> ModelOutput:
        if self.training and self._pruned is not None:
            adj = self._pruned = follow(self._pruned, self.user_emb)
        else:
            adj = self._full_adj = follow(self._full_adj, self.user_emb)
        users, items = self.propagate_all(adj)
        u = users.index_select(0, batch.users)
        item_idx = torch.cat([batch.pos_items.unsqueeze(1), batch.neg_items], dim=1)
        b, n1 = item_idx.shape
        vecs = items.index_select(0, item_idx.reshape(-1)).view(b, n1, -1)
        scores = (u.unsqueeze(1) * vecs).sum(-1)
        vectors = {"user": u, "pos": vecs[:, 0], "neg": vecs[:, 1:]}
        aux: dict[str, Tensor] = {}
        if self.cfg.reg_weight > 0:
            unique, inverse = torch.unique(item_idx.reshape(-1), return_inverse=True)
            modal = u.new_zeros(())
            for m, project in enumerate(self.project):
                feats = project(self.inputs.filled(m, unique)).index_select(0, inverse)
                s = (u.unsqueeze(1) * feats.view(b, n1, -1)).sum(-1)
                modal = modal + F.softplus(s[:, 1:] - s[:, :1]).mean()
            aux["modality_bpr"] = self.cfg.reg_weight * modal
        ego_items = self.item_emb.index_select(0, item_idx.reshape(-1)).view(b, n1, -1)
        ego = {
            "user": self.user_emb.index_select(0, batch.users),
            "pos": ego_items[:, 0],
            "neg": ego_items[:, 1:],
        }
        return ModelOutput(scores[:, 0], scores[:, 1:], reg=ego, extra=vectors, aux=aux)

    def _final(self) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            self._full_adj = follow(self._full_adj, self.user_emb)
            return self.propagate_all(self._full_adj)

    def scorer(self) -> Scorer:
        return dot_scorer(*self._final())

    def embeddings(self) -> tuple[Tensor, Tensor] | None:
        return self._final()
