"""The loss interface.

A loss is built as ``Loss(cfg)`` and called ``loss(batch, out) -> {term: scalar tensor}``.
Named terms let the training loop log each one; it minimises their sum.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from torch import Tensor

from recsys.config import StrictModel
from recsys.types import Batch, ModelOutput


class Loss(Protocol):
    """What the training loop needs from a loss."""

    Config: ClassVar[type[StrictModel]]

    def __call__(self, batch: Batch, out: ModelOutput) -> dict[str, Tensor]: ...
