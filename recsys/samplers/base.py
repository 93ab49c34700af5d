"""The sampler interface.

A sampler is built as ``Sampler(cfg)``; ``epoch(spec, batch_size, generator, probe, epoch)``
yields the :class:`~recsys.types.Batch` es (or, for multi-task
samples, :class:`~recsys.types.TaskBatch` es) of one epoch. All randomness comes from
``generator`` (whose state the training loop checkpoints), so an epoch is reproducible from
the generator state. Batches are drawn lazily: a batch is built after the previous one's
optimizer step, so a sampler that asks ``probe`` for scores sees the current parameters.

``probe`` (given by the training loop; samplers that do not need it ignore it) scores with the
model's current parameters under ``no_grad``:

* ``probe.scores(users)``: ``(B,)`` users → ``(B, n_items)`` scores;
* ``probe.pair_scores(users, pos, neg)``: ``(M,)`` users, ``(M,)`` positives and ``(M, N)``
  negatives → ``(pos_scores (M,), neg_scores (M, N))`` through the model's ``forward`` (so any
  model that scores pairs works, LightGCN included).

A sampler may define ``stats() -> dict[str, float]``: the loop adds it to the epoch's history
row after the epoch (e.g. PLD's share of noisy positives among those it selected).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, Protocol

import torch
from torch import Tensor

from recsys.config import StrictModel
from recsys.spec import DataSpec
from recsys.types import Batch, TaskBatch


class Probe(Protocol):
    """The current model's scores under ``no_grad`` (results on the model's device)."""

    def scores(self, users: Tensor) -> Tensor: ...

    def pair_scores(self, users: Tensor, pos: Tensor, neg: Tensor) -> tuple[Tensor, Tensor]: ...


class Sampler(Protocol):
    """What the training loop needs from a sampler."""

    Config: ClassVar[type[StrictModel]]

    def epoch(
        self,
        spec: DataSpec,
        batch_size: int,
        generator: torch.Generator,
        probe: Probe | None = None,
        epoch: int = 1,
    ) -> Iterator[Batch | TaskBatch]: ...
