"""Small typed containers shared by data, models, losses, samplers and evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

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

    def to(self, device: torch.device | str) -> Batch:
        if self.users.device == torch.device(device):
            return self
        return Batch(
            self.users.to(device, non_blocking=True),
            self.pos_items.to(device, non_blocking=True),
            self.neg_items.to(device, non_blocking=True),
        )


@dataclass
class ModelOutput:
    """What a model's forward returns for the losses.

    Attributes:
        pos_scores: ``(B,)`` scores of (user, positive item).
        neg_scores: ``(B, N)`` scores of (user, negative item).
        reg: named tensors whose squared L2 norm the losses may regularise (layer-0, "ego",
            embeddings of the batch, LightGCN's convention), e.g. ``{"user": (B, d), ...}``.
        extra: further outputs that losses read. Every recommender here fills
            ``user (B, d)``, ``pos (B, d)`` and ``neg (B, N, d)``: the vectors whose dot product
            is the score (alignment/uniformity normalise them). Multimodal models may add
            ``pos_content (B, c)`` / ``neg_content (B, N, c)``: item content vectors whose cosine
            calibrates the uniformity (CM3's fused modality vector).
        aux: the model's own loss terms (e.g. FREEDOM's modality BPR, already weighted); the
            training loop adds them to the losses' terms.
    """

    pos_scores: Tensor
    neg_scores: Tensor
    reg: dict[str, Tensor] = field(default_factory=dict)
    extra: dict[str, Tensor] = field(default_factory=dict)
    aux: dict[str, Tensor] = field(default_factory=dict)


MissingPolicy = Literal["learned", "mean", "zero"]


@dataclass(frozen=True)
class ItemFeatures:
    """One item modality, aligned with ``item_idx``.

    Attributes:
        name: the modality's name in the data config (``text``, ``kg``, ...).
        values: ``(n_items, d)`` float32. Rows of missing items hold zeros (policies
            ``learned`` and ``zero``) or the mean of the present rows (``mean``).
        missing: ``(n_items,)`` bool, True where the item has no value for this modality.
        policy: what models do with missing rows: ``learned`` (a trainable placeholder vector
            replaces them), ``mean`` or ``zero`` (the stored values are used as they are).
        source: where the values came from (for messages and the data card).
    """

    name: str
    values: Tensor
    missing: Tensor
    policy: MissingPolicy = "learned"
    source: str = ""

    @property
    def dim(self) -> int:
        return int(self.values.shape[1])

    @property
    def n_missing(self) -> int:
        return int(self.missing.sum())


@dataclass(frozen=True)
class TaskBatch:
    """A batch of labelled multi-task samples (see :mod:`recsys.data.multitask.tensors`).

    Attributes:
        users, items: ``(B,)`` user / item indices (``-1`` where the dataset has none).
        sparse: ``(B, F_r)`` the samples' own categorical codes.
        dense: ``(B, D_r)`` the samples' own dense values.
        history: ``(B, n_behaviours, L)`` item index + 1 per behaviour, 0 = padding.
        labels: ``(B, K)`` float32 0/1; mask: ``(B, K)`` bool (label defined).
    """

    users: Tensor
    items: Tensor
    sparse: Tensor
    dense: Tensor
    history: Tensor
    labels: Tensor
    mask: Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: torch.device | str) -> TaskBatch:
        if self.labels.device == torch.device(device):
            return self
        return TaskBatch(
            *(
                t.to(device, non_blocking=True)
                for t in (
                    self.users,
                    self.items,
                    self.sparse,
                    self.dense,
                    self.history,
                    self.labels,
                    self.mask,
                )
            )
        )


@dataclass
class TaskOutput:
    """What a multi-task model's forward returns.

    Attributes:
        logits: ``(B, K)`` one logit per task; ``σ(logit)`` is the task's probability.
        aux: the model's own loss terms (added by the training loop).
        extra: further outputs (e.g. gate weights) for diagnostics.
    """

    logits: Tensor
    aux: dict[str, Tensor] = field(default_factory=dict)
    extra: dict[str, Tensor] = field(default_factory=dict)
