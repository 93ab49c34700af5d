"""The loss interface.

A loss is built as ``Loss(cfg)`` and called ``loss(batch, out) -> {term: scalar tensor}``.
Named terms let the training loop log each one; it minimises their sum.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from torch import Tensor

from recsys.config import StrictModel


class Loss(Protocol):
    """What the training loop needs from a loss."""

    Config: ClassVar[type[StrictModel]]

    def __call__(self, batch: Any, out: Any) -> dict[str, Tensor]:
        """``batch``: a :class:`~recsys.types.Batch` (pairs) or
        :class:`~recsys.types.TaskBatch` (multi-task samples); ``out``: the model's
        :class:`~recsys.types.ModelOutput` or :class:`~recsys.types.TaskOutput`."""
        ...
