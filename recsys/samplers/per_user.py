"""User-based sampling: users uniform with replacement, then positives from each user's list.

This is the sampling unit of the PLD code's standard training ("Origin"): a step draws ``B``
users uniformly *with replacement* from all users, and for each one a positive uniformly from
the user's train items and a negative uniformly from the items outside them. Unlike
:class:`~recsys.samplers.uniform.UniformSampler` (every train pair once per epoch), heavy users
are not sampled more often than light ones.

An epoch has ``|train|`` samples in ``ceil(|train| / batch_size)`` batches, the same number of
samples as the uniform sampler over the same train set (PLD's code uses the train size before
noise injection; we keep the epochs of every method on one train set equal instead).

The helpers :func:`draw_users` and :func:`draw_pool` are shared with the PLD sampler. Batches
are drawn lazily, one per training step.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

import torch
from pydantic import Field
from torch import Tensor

from recsys.config import StrictModel
from recsys.errors import DataError
from recsys.samplers.base import Probe
from recsys.samplers.uniform import sample_negatives
from recsys.spec import DataSpec
from recsys.types import Batch


class UserConfig(StrictModel):
    """User-based sampler settings."""

    n_negatives: int = Field(default=1, ge=1)
    """Negatives per positive (``N`` in ``Batch.neg_items (B, N)``)."""


def batch_sizes(spec: DataSpec, batch_size: int) -> list[int]:
    """Sizes of an epoch's batches: ``|train|`` samples in chunks of ``batch_size``."""
    n = len(spec.train)
    if n == 0:
        raise DataError(f"dataset {spec.name!r}: the train split is empty")
    return [min(batch_size, n - start) for start in range(0, n, batch_size)]


def draw_users(spec: DataSpec, size: int, generator: torch.Generator) -> Tensor:
    """``(size,)`` users uniform with replacement among the users with a train item."""
    active = spec.users_with_train()
    pick = torch.randint(active.numel(), (size,), generator=generator)
    return active.index_select(0, pick)


def draw_pool(spec: DataSpec, users: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """``(B, k)`` indices into ``spec.train``: ``k`` train rows of each user.

    Without replacement when the user has at least ``k`` train rows, with replacement
    otherwise (PLD's candidate pool). Sampling ``k`` of ``n`` without replacement is done by
    ranks: the ``j``-th draw is a uniform rank ``r`` among the ``n - j`` rows not yet drawn,
    mapped to a position by stepping over the earlier draws in ascending order, so each
    ordered ``k``-subset has probability ``1 / (n (n-1) ... (n-k+1))``. The loop is over the
    ``k`` pool slots, vectorised over users.
    """
    indptr, order = spec.train_csr()
    start = indptr.index_select(0, users)
    deg = indptr.index_select(0, users + 1) - start
    distinct = deg >= k
    u = torch.rand((users.numel(), k), generator=generator, dtype=torch.float64)
    slot = torch.arange(k, dtype=torch.int64)
    span = torch.where(distinct[:, None], deg[:, None] - slot, deg[:, None])
    ranks = torch.minimum((u * span).long(), span - 1)
    picks = ranks[:, :1].clone()
    for j in range(1, k):
        value = ranks[:, j].clone()
        earlier = torch.sort(picks, dim=1).values
        for m in range(j):
            value += (distinct & (value >= earlier[:, m])).long()
        picks = torch.cat([picks, value[:, None]], dim=1)
    return order.index_select(0, (start[:, None] + picks).flatten()).view(-1, k)


class PerUserSampler(ABC):
    """The epoch loop of the user-based samplers: ``|train|`` samples in lazily drawn batches.

    Subclasses define :meth:`batch`; :meth:`start_epoch` says which probe (if any) the epoch's
    batches use.
    """

    def epoch(
        self,
        spec: DataSpec,
        batch_size: int,
        generator: torch.Generator,
        probe: Probe | None = None,
        epoch: int = 1,
    ) -> Iterator[Batch]:
        """Yield the batches of one epoch, each drawn after the previous training step."""
        probe = self.start_epoch(probe, epoch)
        for size in batch_sizes(spec, batch_size):
            yield self.batch(spec, size, generator, probe)

    def start_epoch(self, probe: Probe | None, epoch: int) -> Probe | None:
        """Reset per-epoch state; return the probe the epoch's batches use (default: none)."""
        return None

    @abstractmethod
    def batch(
        self, spec: DataSpec, size: int, generator: torch.Generator, probe: Probe | None
    ) -> Batch:
        """One batch of ``size`` samples, drawn after the previous training step."""


class UserSampler(PerUserSampler):
    """Users uniform with replacement, one uniform positive and uniform negatives each."""

    Config = UserConfig

    def __init__(self, cfg: UserConfig | None = None) -> None:
        self.cfg = cfg if cfg is not None else UserConfig()

    def batch(
        self, spec: DataSpec, size: int, generator: torch.Generator, probe: Probe | None
    ) -> Batch:
        """``size`` users, a uniform positive each, ``n_negatives`` negatives (CPU tensors)."""
        n_neg = self.cfg.n_negatives
        users = draw_users(spec, size, generator)
        rows = draw_pool(spec, users, 1, generator).squeeze(1)
        pos = spec.train.items.index_select(0, rows)
        neg = sample_negatives(spec, users.repeat_interleave(n_neg), generator)
        return Batch(users, pos, neg.view(size, n_neg))
