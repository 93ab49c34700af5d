"""The L2 term on a batch's ego embeddings, shared by every loss (LightGCN's convention)."""

from __future__ import annotations

import torch
from torch import Tensor

from recsys.types import ModelOutput


def l2_reg(out: ModelOutput, weight: float) -> Tensor | None:
    """``weight * Σ_t ||out.reg[t]||² / 2 / B`` over every tensor of ``out.reg``.

    ``B = out.pos_scores.shape[0]`` is the number of positives in the batch. This is
    LightGCN-PyTorch's convention: ``getEmbedding`` returns the ego (layer-0) embeddings of the
    batch, ``bpr_loss`` takes ``(1/2)(||u0||² + ||p0||² + ||n0||²) / len(users)`` and
    ``BPRLoss.stageOne`` multiplies it by ``decay``. With ``N`` negatives per positive the squared
    norm covers all ``B·N`` negative embeddings and is still divided by ``B``.

    Args:
        out: the model's output; its ``reg`` dict holds the tensors to regularise.
        weight: the term's weight (``decay``).

    Returns:
        A scalar tensor, or ``None`` when ``weight`` is 0 or ``out.reg`` is empty (the caller then
        omits the term).
    """
    if not weight or not out.reg:
        return None
    sq = torch.stack([t.square().sum() for t in out.reg.values()]).sum()
    return sq * (weight / 2.0 / out.pos_scores.shape[0])
