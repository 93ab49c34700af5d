"""Small building blocks of the multi-task networks: MLPs and per-task towers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def mlp(in_dim: int, hidden: Sequence[int], dropout: float) -> tuple[nn.Sequential, int]:
    """``Linear → ReLU (→ Dropout)`` per entry of ``hidden``.

    Returns:
        The network and its output size (``in_dim`` when ``hidden`` is empty: the identity).
    """
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(in_dim, h), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        in_dim = h
    return nn.Sequential(*layers), in_dim


class Towers(nn.Module):
    """One tower per task: ``mlp(hidden)`` then a 1-unit linear output (the task's logit)."""

    def __init__(self, in_dim: int, hidden: Sequence[int], n_tasks: int, dropout: float) -> None:
        super().__init__()
        towers = []
        for _ in range(n_tasks):
            body, out = mlp(in_dim, hidden, dropout)
            towers.append(nn.Sequential(body, nn.Linear(out, 1)))
        self.towers = nn.ModuleList(towers)

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """``inputs[k] (B, in_dim)`` → logits ``(B, K)`` (tower ``k`` reads ``inputs[k]``)."""
        return torch.cat([t(x) for t, x in zip(self.towers, inputs, strict=True)], dim=1)


def n_params(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``module`` (shared tensors counted once)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
