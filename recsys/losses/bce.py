"""Pointwise binary cross-entropy on the sampled positives and negatives."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from recsys.config import StrictModel
from recsys.losses.l2 import l2_reg
from recsys.types import Batch, ModelOutput


def pointwise_bce(out: ModelOutput) -> tuple[Tensor, Tensor]:
    """Per-sample BCE with logits over the ``B·(1+N)`` samples of a batch, and their labels.

    A positive score ``s`` (label 1) costs ``-log σ(s) = softplus(-s)``; a negative score
    (label 0) costs ``-log(1 - σ(s)) = softplus(s)``.

    Returns:
        ``(losses, labels)``, both ``(B·(1+N),)`` in the scores' dtype: the ``B·N`` negatives
        first (row-major over ``out.neg_scores``), then the ``B`` positives. Labels are 0.0 / 1.0.
    """
    neg = out.neg_scores.reshape(-1)
    pos = out.pos_scores.reshape(-1)
    losses = torch.cat([F.softplus(neg), F.softplus(-pos)])
    labels = torch.cat([torch.zeros_like(neg), torch.ones_like(pos)])
    return losses, labels


class BCEConfig(StrictModel):
    """Pointwise BCE settings."""

    reg_weight: float = Field(default=1e-4, ge=0.0)
    """Weight of the L2 term on the ego embeddings (see :func:`~recsys.losses.l2.l2_reg`)."""


class BCE:
    """Pointwise binary cross-entropy: each positive and each sampled negative is one sample.

    ``bce = (Σ_b softplus(-s_pos[b]) + Σ_{b,n} softplus(s_neg[b, n])) / (B·(1+N))``, the mean
    BCE with logits over all ``B·(1+N)`` samples (positives labelled 1, negatives 0).

    ``reg`` is :func:`~recsys.losses.l2.l2_reg` with ``reg_weight`` (omitted when 0).
    """

    Config = BCEConfig

    def __init__(self, cfg: BCEConfig | None = None) -> None:
        self.cfg = cfg if cfg is not None else BCEConfig()

    def __call__(self, batch: Batch, out: ModelOutput) -> dict[str, Tensor]:
        """Loss terms of a batch: ``{"bce": scalar, "reg": scalar}`` (``reg`` only if weighted)."""
        losses, _ = pointwise_bce(out)
        terms = {"bce": losses.mean()}
        reg = l2_reg(out, self.cfg.reg_weight)
        if reg is not None:
            terms["reg"] = reg
        return terms
