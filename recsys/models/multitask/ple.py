"""PLE (Tang et al., RecSys 2020): stacked CGC levels of task-specific and shared experts.

Level ``j`` has, per task ``k``, ``m_k`` experts ``E_k^j`` and ``m_s`` shared experts
``E_s^j`` (MLPs, ReLU after every layer). With selectors ``x_k^{j-1}`` (task ``k``'s output of
the level below; the input ``x`` at level 1) and ``x_s^{j-1}`` (the shared output below):

* task ``k``: ``x_k^j = Σ g_k^j(x_k^{j-1}) · [E_k^j(x_k^{j-1}); E_s^j(x_s^{j-1})]`` with
  ``g_k^j = softmax(W x_k^{j-1} + b)`` over its ``m_k + m_s`` experts;
* shared (every level but the last): ``x_s^j = Σ g_s^j(x_s^{j-1}) · [E_1^j; …; E_K^j; E_s^j]``
  over all ``K m_k + m_s`` experts.

``y_k = tower_k(x_k^J)``. Standalone PLE feeds the flattened fields as every level-1 input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, cast

import torch
from pydantic import Field
from torch import Tensor, nn

from recsys.config import StrictModel
from recsys.models.multitask.base import TaskModel, TaskModelConfig, Width
from recsys.models.multitask.inputs import PairInputs
from recsys.models.multitask.layers import Towers, mlp
from recsys.spec import DataSpec


class PLEOptions(StrictModel):
    """The PLE stack's settings (also DTRN's with ``top = "ple"``)."""

    levels: int = Field(default=2, ge=1)
    """Number of CGC extraction levels ``J``."""
    task_experts: int = Field(default=1, ge=1)
    """Task-specific experts per task and level ``m_k``."""
    shared_experts: int = Field(default=1, ge=0)
    """Shared experts per level ``m_s``."""
    expert_hidden: tuple[Width, ...] = Field(default=(128, 64), min_length=1)
    """Hidden sizes of each expert MLP (the last one is the expert output size)."""


class PLEConfig(TaskModelConfig, PLEOptions):
    """PLE settings."""


def _mix(gate: nn.Module, selector: Tensor, experts: list[Tensor]) -> Tensor:
    g = torch.softmax(gate(selector), dim=-1)
    return torch.einsum("bn,bnh->bh", g, torch.stack(experts, dim=1))


class CGCLevel(nn.Module):
    """One extraction level (see the module docstring)."""

    def __init__(
        self,
        in_dim: int,
        n_tasks: int,
        task_experts: int,
        shared_experts: int,
        hidden: Sequence[int],
        dropout: float,
        shared_gate: bool,
    ) -> None:
        super().__init__()

        def expert() -> nn.Module:
            body, self.out_dim = mlp(in_dim, hidden, dropout)
            return body

        self.task_experts = nn.ModuleList(
            nn.ModuleList(expert() for _ in range(task_experts)) for _ in range(n_tasks)
        )
        self.shared_experts = nn.ModuleList(expert() for _ in range(shared_experts))
        self.task_gates = nn.ModuleList(
            nn.Linear(in_dim, task_experts + shared_experts) for _ in range(n_tasks)
        )
        self.shared_gate = (
            nn.Linear(in_dim, n_tasks * task_experts + shared_experts) if shared_gate else None
        )

    def forward(
        self, task_in: Sequence[Tensor], shared_in: Tensor
    ) -> tuple[list[Tensor], Tensor | None]:
        """Task inputs ``K × (B, in)`` and the shared input → task outputs and the shared
        output (None at the last level)."""
        shared = [e(shared_in) for e in self.shared_experts]
        own = [
            [e(x) for e in cast(nn.ModuleList, experts)]
            for experts, x in zip(self.task_experts, task_in, strict=True)
        ]
        outs = [
            _mix(gate, x, own_k + shared)
            for gate, x, own_k in zip(self.task_gates, task_in, own, strict=True)
        ]
        if self.shared_gate is None:
            return outs, None
        return outs, _mix(self.shared_gate, shared_in, [e for o in own for e in o] + shared)


class PLEStack(nn.Module):
    """``J`` CGC levels; the last has no shared gate."""

    def __init__(self, in_dim: int, n_tasks: int, opts: PLEOptions, dropout: float) -> None:
        super().__init__()
        levels = []
        for j in range(opts.levels):
            level = CGCLevel(
                in_dim,
                n_tasks,
                opts.task_experts,
                opts.shared_experts,
                opts.expert_hidden,
                dropout,
                shared_gate=j < opts.levels - 1,
            )
            levels.append(level)
            in_dim = level.out_dim
        self.levels = nn.ModuleList(levels)
        self.out_dim = in_dim

    def forward(self, task_in: Sequence[Tensor], shared_in: Tensor) -> list[Tensor]:
        """Level-1 inputs per task and shared → the last level's task outputs."""
        outs = list(task_in)
        shared: Tensor | None = shared_in
        for level in self.levels:
            assert shared is not None
            outs, shared = level(outs, shared)
        return outs


class PLE(TaskModel):
    """PLE on the shared input layer (see the module docstring)."""

    Config = PLEConfig
    registry_name: ClassVar[str] = "ple"

    def __init__(self, cfg: PLEConfig, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        self.inputs = self.make_inputs(cfg, spec)
        self.ple = PLEStack(self.inputs.n_fields * cfg.dim, self.n_tasks, cfg, cfg.dropout)
        self.towers = Towers(self.ple.out_dim, cfg.tower, self.n_tasks, cfg.dropout)
        self.log_parameter_counts()

    def task_logits(self, inputs: list[PairInputs]) -> tuple[Tensor, dict[str, Tensor]]:
        x = self.inputs.fields(inputs[0]).flatten(1)
        return self.towers(self.ple([x] * self.n_tasks, x)), {}
