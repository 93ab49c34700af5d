"""Uniform negative sampling over the items a user has not interacted with in train."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from pydantic import Field
from torch import Tensor

from recsys.config import StrictModel
from recsys.errors import DataError
from recsys.samplers.base import Probe
from recsys.spec import DataSpec
from recsys.types import Batch

REJECTION_ROUNDS = 8
"""Rejection rounds before the remaining draws switch to exact inverse-rank sampling."""


class UniformConfig(StrictModel):
    """Uniform sampler settings."""

    n_negatives: int = Field(default=1, ge=1)
    """Negatives per positive pair (``N`` in ``Batch.neg_items (B, N)``)."""


class UniformSampler:
    """Every train pair once per epoch, in a random order, with uniform negatives.

    An epoch is ``ceil(|train| / batch_size)`` batches over a random permutation of the train
    pairs. Each negative is uniform over the items that are not the user's train positives:
    draws are rejected by a ``searchsorted`` lookup in ``spec.train_keys()`` and only the
    rejected entries are redrawn. Entries still rejected after :data:`REJECTION_ROUNDS` rounds
    (users who have nearly every item) are drawn exactly: a uniform rank ``r`` among the
    user's non-positives is mapped to the ``r``-th non-positive item, which is the same
    distribution without the wait. The whole epoch is sampled up front (vectorised).
    """

    Config = UniformConfig

    def __init__(self, cfg: UniformConfig | None = None) -> None:
        self.cfg = cfg if cfg is not None else UniformConfig()

    def epoch(
        self,
        spec: DataSpec,
        batch_size: int,
        generator: torch.Generator,
        probe: Probe | None = None,
        epoch: int = 1,
    ) -> Iterator[Batch]:
        """Yield the batches of one epoch (CPU tensors; ``probe`` and ``epoch`` are unused)."""
        n = len(spec.train)
        if n == 0:
            raise DataError(f"dataset {spec.name!r}: the train split is empty")
        order = torch.randperm(n, generator=generator)
        users = spec.train.users.index_select(0, order)
        pos = spec.train.items.index_select(0, order)
        neg = sample_negatives(spec, users.repeat_interleave(self.cfg.n_negatives), generator).view(
            n, self.cfg.n_negatives
        )
        return _batches(users, pos, neg, batch_size)


def _batches(users: Tensor, pos: Tensor, neg: Tensor, batch_size: int) -> Iterator[Batch]:
    for start in range(0, users.numel(), batch_size):
        stop = start + batch_size
        yield Batch(users[start:stop], pos[start:stop], neg[start:stop])


def sample_negatives(spec: DataSpec, users: Tensor, generator: torch.Generator) -> Tensor:
    """One item per entry of ``users``, uniform over that user's non-positive train items.

    Args:
        spec: the dataset (``train_keys()`` gives the sorted ``user * n_items + item`` keys).
        users: ``(M,)`` int64 user indices.
        generator: the source of randomness.

    Returns:
        ``(M,)`` int64 item indices, none of them a train positive of its user.
    """
    n_items = spec.n_items
    keys = spec.train_keys()
    items = torch.randint(n_items, users.shape, generator=generator, dtype=torch.int64)
    todo = _positive_mask(keys, users * n_items + items)
    idx = todo.nonzero().squeeze(1)
    for _ in range(REJECTION_ROUNDS):
        if idx.numel() == 0:
            return items
        redraw = torch.randint(n_items, idx.shape, generator=generator, dtype=torch.int64)
        items[idx] = redraw
        idx = idx[_positive_mask(keys, users[idx] * n_items + redraw)]
    if idx.numel():
        items[idx] = _exact_negatives(spec, users[idx], generator)
    return items


def _positive_mask(keys: Tensor, query: Tensor) -> Tensor:
    """``(M,)`` bool: which ``query`` keys are in the sorted ``keys``."""
    if keys.numel() == 0:
        return torch.zeros_like(query, dtype=torch.bool)
    pos = torch.searchsorted(keys, query).clamp_(max=keys.numel() - 1)
    return keys.index_select(0, pos) == query


def _exact_negatives(spec: DataSpec, users: Tensor, generator: torch.Generator) -> Tensor:
    """Uniform non-positive items by inverse rank (no rejection).

    For user ``u`` with sorted positives ``p_0 < p_1 < ...``, ``p_j - j`` counts the
    non-positives below ``p_j``; the ``r``-th non-positive is ``r + #{j : p_j - j <= r}``.
    Adding ``u * n_items`` keeps the adjusted keys globally sorted, so one ``searchsorted``
    answers every user at once.
    """
    n_items = spec.n_items
    keys = torch.unique_consecutive(spec.train_keys())
    key_users = torch.div(keys, n_items, rounding_mode="floor")
    starts = torch.searchsorted(keys, users * n_items)
    ends = torch.searchsorted(keys, (users + 1) * n_items)
    free = n_items - (ends - starts)
    if bool((free <= 0).any()):
        user = int(users[free <= 0][0])
        raise DataError(
            f"dataset {spec.name!r}: user {spec.user_ids[user]!r} (index {user}) has every "
            "item in train; no negative can be sampled"
        )
    first = torch.searchsorted(keys, key_users * n_items)
    adjusted = keys - (torch.arange(keys.numel()) - first)
    ranks = (torch.rand(users.shape, generator=generator, dtype=torch.float64) * free).long()
    ranks = torch.minimum(ranks, free - 1)
    below = torch.searchsorted(adjusted, users * n_items + ranks, right=True) - starts
    return ranks + below
