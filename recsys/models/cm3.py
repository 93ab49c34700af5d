"""CM3 (Zhou, Wang, Shen, 2025): multimodal channels, spherical fusion, calibrated uniformity.

The architecture follows the official code (``enoche/CM3``, ``src/models/cm3.py``) and
generalises its two modalities to ``M``: ``M`` modality channels plus one fused channel.
Train it with the ``calibrated_uniformity`` loss (CM3's objective); the model exposes the
fused vectors of the batch's items as ``extra["pos_content"]`` / ``extra["neg_content"]``,
whose cosines calibrate the item uniformity.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from recsys.data.graph import layer_sum
from recsys.models.base import Model, Scorer, dot_scorer, follow
from recsys.models.fusion import expected_mix, fuse, sample_mix
from recsys.models.modality import ItemGraphConfig, item_graph_inputs
from recsys.spec import DataSpec
from recsys.types import Batch, ModelOutput


class CM3Config(ItemGraphConfig):
    """CM3 settings (defaults: the official ``CM3.yaml``; grid ui_layers {3, 4}, alpha
    {0.1, 0.5, 0.9}; the loss's gamma {0.5, 0.9} and max_sim {0.8, 1.0})."""

    dim: int = Field(default=64, ge=1)
    """Size ``d`` of each channel (the representation has ``(M + 1) d`` entries)."""
    ui_layers: int = Field(default=3, ge=0)
    """LightGCN layers on the user-item graph; the readout is the SUM over layers 0..L."""
    mm_layers: int = Field(default=1, ge=0)
    """Steps on the item-item graph in the residual ``H + A_mm^n H``."""
    fusion: Literal["dirichlet", "bezier"] = "dirichlet"
    """``bezier``: the paper's spherical Bézier (De Casteljau over slerp, λ ~ Beta(α, α) per
    item). ``dirichlet``: the spherical weighted mean with Dirichlet(α) weights, symmetric in
    the modalities. Both are the official slerp at M = 2."""
    alpha: float = Field(default=0.5, gt=0.0)
    """Concentration of the per-item mix drawn on every training forward pass."""
    eval_mix: Literal["expected", "last"] = "expected"
    """Evaluation fusion: the expected mix (λ = 0.5 / equal weights), or ``last``: the mix
    drawn in the last training forward pass (the official code's behaviour)."""


class CM3(Model):
    """CM3 with ``M`` modalities.

    * Item modality channel ``m``: ``h_m = W2 LeakyReLU(W1 f_m + b)`` (``d_m → 4d → d``, no
      bias on ``W2``); users have a free ``P_m``. Fused channel: users ``P_id``, items
      ``mix = fuse(normalize(L_m f_m) for m)`` on the unit sphere (``L_m`` Xavier-normal linear
      maps to ``d``). Items have no free ID embedding.
    * ``X = [norm([P_1; h_1]) ‖ … ‖ norm([P_M; h_M]) ‖ norm([P_id; mix])]`` (each channel
      row-normalised), propagated ``E = Σ_{l=0..L} Â^l X`` on the train graph.
    * Users: a per-user softmax over the ``M + 1`` channels (parameter ``Θ (U, M+1, 1)``)
      scales each channel. Items: ``I + A_mm^{mm_layers} I`` with the frozen modality kNN graph.
    * Score: the dot product of the un-normalised representations.
    """

    Config = CM3Config

    def __init__(self, cfg: CM3Config, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        self.cfg: CM3Config = cfg
        self.inputs, self._mm_adj = item_graph_inputs(spec, cfg, "cm3")
        m, d = len(self.inputs), cfg.dim
        self.n_modalities = m
        self.encoders = nn.ModuleList(
            nn.Sequential(nn.Linear(dm, 4 * d), nn.LeakyReLU(), nn.Linear(4 * d, d, bias=False))
            for dm in self.inputs.dims
        )
        self.fusion_maps = nn.ModuleList(nn.Linear(dm, d) for dm in self.inputs.dims)
        for layer in self.fusion_maps:
            assert isinstance(layer, nn.Linear)
            nn.init.xavier_normal_(layer.weight)
        self.user_modal = nn.Parameter(torch.empty(m + 1, spec.n_users, d))
        for c in range(m + 1):
            nn.init.xavier_normal_(self.user_modal.data[c])
        self.user_attention = nn.Parameter(torch.empty(spec.n_users, m + 1, 1))
        nn.init.xavier_normal_(self.user_attention)
        # The mix of the last training forward pass: λ (I,) or weights (I, M); saved with the
        # weights so eval_mix = "last" survives a checkpoint.
        self.last_mix: Tensor
        self.register_buffer("last_mix", expected_mix(cfg.fusion, spec.n_items, m, device=None))
        self._adj = spec.graph.adj

    def _mix(self) -> Tensor:
        m, n = self.n_modalities, self.n_items
        if self.training:
            mix: Tensor = sample_mix(
                self.cfg.fusion, n, m, self.cfg.alpha, device=self.last_mix.device
            )
            self.last_mix.copy_(mix)
            return mix
        if self.cfg.eval_mix == "last":
            return self.last_mix
        return expected_mix(self.cfg.fusion, n, m, device=self.last_mix.device)

    def represent(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(users (U, (M+1)d), items (I, (M+1)d), fused item vectors (I, d))``."""
        feats = self.inputs.all_filled()
        points = torch.stack(
            [F.normalize(lin(f), dim=-1) for lin, f in zip(self.fusion_maps, feats, strict=True)]
        )
        mix = fuse(self.cfg.fusion, points, self._mix())
        items = [enc(f) for enc, f in zip(self.encoders, feats, strict=True)] + [mix]
        channels = [
            F.normalize(torch.cat([self.user_modal[c], items[c]]), dim=-1)
            for c in range(self.n_modalities + 1)
        ]
        x = torch.cat(channels, dim=1)
        if self.cfg.ui_layers > 0:
            adj = self._adj = follow(self._adj, self.user_modal)
            x = layer_sum(adj, x, self.cfg.ui_layers)
        users, item_rep = torch.split(x, [self.n_users, self.n_items])
        weights = torch.softmax(self.user_attention, dim=1)
        users = (users.view(self.n_users, self.n_modalities + 1, -1) * weights).flatten(1)
        h = item_rep
        mm_adj = self._mm_adj = follow(self._mm_adj, self.user_modal)
        for _ in range(self.cfg.mm_layers):
            h = torch.sparse.mm(mm_adj, h)
        if self.cfg.mm_layers > 0:
            item_rep = item_rep + h
        return users, item_rep, mix

    def forward(self, batch: Batch) -> ModelOutput:
        """Scores of a batch from one full forward pass (fresh mix per item).

        ``extra``: the batch's user/positive/negative representations and the fused vectors
        of its items (``pos_content``, ``neg_content``). ``reg`` is empty: CM3 has no L2 term.
        """
        users, items, mix = self.represent()
        u = users.index_select(0, batch.users)
        item_idx = torch.cat([batch.pos_items.unsqueeze(1), batch.neg_items], dim=1)
        b, n1 = item_idx.shape
        flat = item_idx.reshape(-1)
        vecs = items.index_select(0, flat).view(b, n1, -1)
        content = mix.index_select(0, flat).view(b, n1, -1)
        scores = (u.unsqueeze(1) * vecs).sum(-1)
        extra = {
            "user": u,
            "pos": vecs[:, 0],
            "neg": vecs[:, 1:],
            "pos_content": content[:, 0],
            "neg_content": content[:, 1:],
        }
        return ModelOutput(scores[:, 0], scores[:, 1:], extra=extra)

    def _final(self) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            users, items, _ = self.represent()
        return users, items

    def scorer(self) -> Scorer:
        return dot_scorer(*self._final())

    def embeddings(self) -> tuple[Tensor, Tensor] | None:
        return self._final()
