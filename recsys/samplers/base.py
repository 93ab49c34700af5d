"""The sampler interface.

A sampler is built as ``Sampler(cfg)``; ``epoch(spec, batch_size, generator, score_fn)`` yields
the :class:`~recsys.types.Batch` es of one epoch. All randomness comes from ``generator`` (whose
state the training loop checkpoints), so an epoch is reproducible from the generator state.
``score_fn`` maps ``(B,)`` users to ``(B, n_items)`` scores of the current model under
``no_grad``; samplers that do not need it (uniform) ignore it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import ClassVar, Protocol

import torch
from torch import Tensor

from recsys.config import StrictModel
from recsys.spec import DataSpec
from recsys.types import Batch

ScoreFn = Callable[[Tensor], Tensor]


class Sampler(Protocol):
    """What the training loop needs from a sampler."""

    Config: ClassVar[type[StrictModel]]

    def epoch(
        self,
        spec: DataSpec,
        batch_size: int,
        generator: torch.Generator,
        score_fn: ScoreFn | None = None,
    ) -> Iterator[Batch]: ...
