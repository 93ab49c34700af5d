"""Shuffled mini-batches of labelled multi-task samples (pointwise training)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import torch

from recsys.config import StrictModel
from recsys.data.multitask.tensors import take_batch
from recsys.errors import ConfigError
from recsys.samplers.base import Probe
from recsys.spec import DataSpec
from recsys.types import TaskBatch


class TaskRowsConfig(StrictModel):
    """No settings: each epoch is one pass over the train samples in a fresh random order."""


class TaskRowSampler:
    """Each epoch: a permutation of the train samples (from the loop's generator), cut into
    ``batch_size`` batches (the last one may be smaller)."""

    Config = TaskRowsConfig
    task_model: ClassVar[bool] = True

    def __init__(self, cfg: TaskRowsConfig | None = None) -> None:
        self.cfg = cfg if cfg is not None else TaskRowsConfig()

    def epoch(
        self,
        spec: DataSpec,
        batch_size: int,
        generator: torch.Generator,
        probe: Probe | None = None,
        epoch: int = 1,
    ) -> Iterator[TaskBatch]:
        data = spec.multitask
        if data is None:
            raise ConfigError(
                f"sampler 'task-rows' needs multi-task samples; data {spec.name!r} has no "
                "[multitask] table"
            )
        rows = data.rows["train"]
        order = torch.randperm(len(rows), generator=generator)
        for start in range(0, len(rows), batch_size):
            yield take_batch(data, rows, order[start : start + batch_size])
