"""Shared-bottom multi-task model (Caruana 1997): one bottom MLP, one tower per task."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from recsys.models.multitask.base import TaskModel, TaskModelConfig, Width
from recsys.models.multitask.inputs import PairInputs
from recsys.models.multitask.layers import Towers, mlp
from recsys.spec import DataSpec


class SharedBottomConfig(TaskModelConfig):
    """Shared-bottom settings."""

    bottom: tuple[Width, ...] = (128, 64)
    """Hidden sizes of the shared bottom MLP."""


class SharedBottom(TaskModel):
    """``y_k = tower_k(bottom(x))`` with ``x`` the flattened fields ``(F·d)`` of the shared
    input layer (interest fields included)."""

    Config = SharedBottomConfig
    registry_name: ClassVar[str] = "shared-bottom"

    def __init__(self, cfg: SharedBottomConfig, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        self.inputs = self.make_inputs(cfg, spec)
        self.bottom, out = mlp(self.inputs.n_fields * cfg.dim, cfg.bottom, cfg.dropout)
        self.towers = Towers(out, cfg.tower, self.n_tasks, cfg.dropout)
        self.log_parameter_counts()

    def task_logits(self, inputs: list[PairInputs]) -> tuple[Tensor, dict[str, Tensor]]:
        shared = self.bottom(self.inputs.fields(inputs[0]).flatten(1))
        return self.towers([shared] * self.n_tasks), {}
