"""MMoE (Ma et al., KDD 2018): shared experts mixed by one softmax gate per task.

``f^k(x) = Σ_i g^k(x)_i E_i(x)`` with ``g^k(x) = softmax(W_k x + b_k)`` over the ``n``
experts ``E_i`` (MLPs, ReLU after every layer) and ``y_k = tower_k(f^k(x))``; ``x`` is the
flattened fields of the shared input layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from pydantic import Field
from torch import Tensor, nn

from recsys.config import StrictModel
from recsys.models.multitask.base import TaskModel, TaskModelConfig, Width
from recsys.models.multitask.inputs import PairInputs
from recsys.models.multitask.layers import Towers, mlp
from recsys.spec import DataSpec


class MMoEOptions(StrictModel):
    """The MMoE layer's settings (also DTRN's with ``top = "mmoe"``)."""

    experts: int = Field(default=4, ge=1)
    """Number of shared experts ``n``."""
    expert_hidden: tuple[Width, ...] = Field(default=(128, 64), min_length=1)
    """Hidden sizes of each expert MLP (the last one is the expert output size)."""


class MMoEConfig(TaskModelConfig, MMoEOptions):
    """MMoE settings."""


class MMoELayer(nn.Module):
    """Shared experts and per-task gates.

    Called with one tensor, every expert runs once on it; called with one tensor per task
    (DTRN's task-specific bottoms), task ``k``'s gate and the experts read task ``k``'s input.
    """

    def __init__(
        self, in_dim: int, n_experts: int, hidden: Sequence[int], n_tasks: int, dropout: float
    ) -> None:
        super().__init__()
        experts = []
        for _ in range(n_experts):
            body, out = mlp(in_dim, hidden, dropout)
            experts.append(body)
        self.experts = nn.ModuleList(experts)
        self.gates = nn.ModuleList(nn.Linear(in_dim, n_experts) for _ in range(n_tasks))
        self.out_dim = out

    def _mix(self, gate: nn.Module, x: Tensor, expert_out: Tensor) -> tuple[Tensor, Tensor]:
        g = torch.softmax(gate(x), dim=-1)  # (B, n)
        return torch.einsum("bn,bnh->bh", g, expert_out), g

    def forward(self, x: Tensor | Sequence[Tensor]) -> tuple[list[Tensor], Tensor]:
        """Returns each task's mixture ``(B, h)`` and the gates ``(B, K, n)``."""
        outs, gates = [], []
        if isinstance(x, Tensor):
            expert_out = torch.stack([e(x) for e in self.experts], dim=1)
            for gate in self.gates:
                f, g = self._mix(gate, x, expert_out)
                outs.append(f)
                gates.append(g)
        else:
            for gate, xk in zip(self.gates, x, strict=True):
                expert_out = torch.stack([e(xk) for e in self.experts], dim=1)
                f, g = self._mix(gate, xk, expert_out)
                outs.append(f)
                gates.append(g)
        return outs, torch.stack(gates, dim=1)


class MMoE(TaskModel):
    """MMoE on the shared input layer (see the module docstring); ``extra["gates"]`` holds the
    gate weights ``(B, K, n)``."""

    Config = MMoEConfig
    registry_name: ClassVar[str] = "mmoe"

    def __init__(self, cfg: MMoEConfig, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        self.inputs = self.make_inputs(cfg, spec)
        in_dim = self.inputs.n_fields * cfg.dim
        self.mmoe = MMoELayer(in_dim, cfg.experts, cfg.expert_hidden, self.n_tasks, cfg.dropout)
        self.towers = Towers(self.mmoe.out_dim, cfg.tower, self.n_tasks, cfg.dropout)
        self.log_parameter_counts()

    def task_logits(self, inputs: list[PairInputs]) -> tuple[Tensor, dict[str, Tensor]]:
        outs, gates = self.mmoe(self.inputs.fields(inputs[0]).flatten(1))
        return self.towers(outs), {"gates": gates}
