"""Single-task baseline: ``K`` independent networks trained in one run.

Network ``k`` has its own input layer (field embeddings, graph ego embeddings, modality
projections, attention), bottom MLP and 1-unit tower, and reads only task ``k``'s logit, so no
parameter is shared: the summed loss's gradient on network ``k`` is task ``k``'s gradient, and
Adam (per-parameter state) makes the run ``K`` separate single-task trainings.

The default ``bottom = (224, 64)`` puts the total near MMoE's default. Measured at the
defaults (``d = 16``) on ``conf/data/ml-100k-multitask.toml`` (943 users, 1,617 items, 29
fields: 5 user fields, ``item_id``, release year, 19 genre columns, 3 behaviours): MMoE
327,978 parameters, single-task 334,978 (2 × 167,489, of which 44,704 is each network's
input layer); on ``conf/data/census-income.toml`` (39 row fields): MMoE 375,082,
single-task 334,466.
"""

from __future__ import annotations

from typing import ClassVar, cast

import torch
from torch import Tensor, nn

from recsys.models.multitask.base import TaskModel, TaskModelConfig, Width
from recsys.models.multitask.inputs import InputLayer, PairInputs
from recsys.models.multitask.layers import Towers, mlp
from recsys.spec import DataSpec


class SingleTaskConfig(TaskModelConfig):
    """Single-task settings (per network)."""

    bottom: tuple[Width, ...] = (224, 64)
    """Hidden sizes of each network's bottom MLP."""


class SingleTaskNet(nn.Module):
    """One task's network: input layer → bottom MLP → tower → logit ``(P, 1)``."""

    def __init__(self, inputs: InputLayer, cfg: SingleTaskConfig) -> None:
        super().__init__()
        self.inputs = inputs
        self.bottom, out = mlp(inputs.n_fields * cfg.dim, cfg.bottom, cfg.dropout)
        self.tower = Towers(out, cfg.tower, 1, cfg.dropout)

    def forward(self, inp: PairInputs) -> Tensor:
        return self.tower([self.bottom(self.inputs.fields(inp).flatten(1))])


class SingleTask(TaskModel):
    """``K`` independent single-task networks (see the module docstring)."""

    Config = SingleTaskConfig
    registry_name: ClassVar[str] = "single-task"

    def __init__(self, cfg: SingleTaskConfig, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        self.nets = nn.ModuleList(
            SingleTaskNet(self.make_inputs(cfg, spec), cfg) for _ in range(self.n_tasks)
        )
        self.log_parameter_counts()

    def input_layers(self) -> list[InputLayer]:
        return [cast(SingleTaskNet, net).inputs for net in self.nets]

    def task_logits(self, inputs: list[PairInputs]) -> tuple[Tensor, dict[str, Tensor]]:
        return torch.cat([net(x) for net, x in zip(self.nets, inputs, strict=True)], dim=1), {}
