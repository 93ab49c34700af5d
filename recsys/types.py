"""Small typed containers shared by data, models, losses, samplers and evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass(frozen=True)
class Interactions:
    """(user_idx, item_idx) pairs as int64 tensors of equal length ``n``."""

    users: Tensor
    items: Tensor

    def __len__(self) -> int:
        return int(self.users.numel())

    def to(self, device: torch.device | str) -> Interactions:
        return Interactions(self.users.to(device), self.items.to(device))


@dataclass(frozen=True)
class Batch:
    """A training batch.

    Attributes:
        users: ``(B,)`` user indices.
        pos_items: ``(B,)`` positive item indices.
        neg_items: ``(B, N)`` negative item indices (``N`` negatives per positive).
    """

    users: Tensor
    pos_items: Tensor
    neg_items: Tensor

    def __len__(self) -> int:
        return int(self.users.numel())


@dataclass
class ModelOutput:
    """What a model's forward returns for the losses.

    Attributes:
        pos_scores: ``(B,)`` scores of (user, positive item).
        neg_scores: ``(B, N)`` scores of (user, negative item).
        reg: named tensors whose squared L2 norm the losses may regularise (layer-0, "ego",
            embeddings of the batch, LightGCN's convention), e.g. ``{"user": (B, d), ...}``.
        extra: any further outputs a specific loss needs (e.g. final embeddings).
    """

    pos_scores: Tensor
    neg_scores: Tensor
    reg: dict[str, Tensor] = field(default_factory=dict)
    extra: dict[str, Tensor] = field(default_factory=dict)
