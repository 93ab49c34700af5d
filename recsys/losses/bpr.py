"""Bayesian personalised ranking (Rendle et al., 2009) with LightGCN's L2 convention."""

from __future__ import annotations

import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from recsys.config import StrictModel
from recsys.losses.l2 import l2_reg
from recsys.types import Batch, ModelOutput


class BPRConfig(StrictModel):
    """BPR settings."""

    reg_weight: float = Field(default=1e-4, ge=0.0)
    """Weight of the L2 term on the batch's ego embeddings (LightGCN's ``decay``)."""


class BPR:
    """``bpr = mean_{b,n} softplus(s_neg[b, n] - s_pos[b])`` (= ``-log σ(s_pos - s_neg)``).

    ``reg = reg_weight * Σ_t ||out.reg[t]||² / 2 / B`` over every tensor of ``out.reg`` (the
    batch's layer-0 user, positive and negative embeddings), which is LightGCN-PyTorch's
    convention: ``getEmbedding`` returns the ego embeddings of the batch, ``bpr_loss`` takes
    ``(1/2)(||u0||² + ||p0||² + ||n0||²) / len(users)`` and ``BPRLoss.stageOne`` multiplies it
    by ``decay`` (1e-4) before adding it to the mean softplus. With ``N`` negatives the squared
    norm covers all ``B·N`` negative embeddings and is still divided by ``B``. A zero weight
    drops the term.
    """

    Config = BPRConfig

    def __init__(self, cfg: BPRConfig | None = None) -> None:
        self.cfg = cfg if cfg is not None else BPRConfig()

    def __call__(self, batch: Batch, out: ModelOutput) -> dict[str, Tensor]:
        """Loss terms of a batch: ``{"bpr": scalar, "reg": scalar}`` (``reg`` only if weighted)."""
        diff = out.neg_scores - out.pos_scores.unsqueeze(-1)
        terms = {"bpr": F.softplus(diff).mean()}
        reg = l2_reg(out, self.cfg.reg_weight)
        if reg is not None:
            terms["reg"] = reg
        return terms
