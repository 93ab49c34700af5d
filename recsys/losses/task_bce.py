"""Per-task binary cross-entropy for multi-task models, with fixed or learned task weights."""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from recsys.config import StrictModel
from recsys.errors import ConfigError
from recsys.spec import DataSpec
from recsys.types import TaskBatch, TaskOutput


class TaskBCEConfig(StrictModel):
    """Task weights and the weighting scheme."""

    weights: dict[str, float] = Field(default_factory=dict)
    """``w_k`` per task name (tasks not named: 1.0)."""
    weighting: Literal["fixed", "uncertainty"] = "fixed"


class TaskBCE(nn.Module):
    """``L_k = Σ_i m_ik · bce(logit_ik, y_ik) / max(Σ_i m_ik, 1)``, the mean BCE with logits
    over the samples whose task-``k`` label is defined (mask ``m``, PLE's δ).

    * ``fixed``: ``L = Σ_k w_k L_k``; terms ``bce/<task>`` are the weighted ``w_k L_k``.
    * ``uncertainty`` (Kendall, Gal & Cipolla, CVPR 2018, classification form):
      ``L = Σ_k (w_k e^{-s_k} L_k + s_k / 2)`` with a learned ``s_k = log σ_k²`` per task
      (starting at 0, trained with the model's optimizer); terms ``bce/<task>`` hold
      ``w_k e^{-s_k} L_k`` and ``uncertainty`` holds ``Σ_k s_k / 2``.
    """

    Config = TaskBCEConfig
    task_model: ClassVar[bool] = True

    def __init__(self, cfg: TaskBCEConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg if cfg is not None else TaskBCEConfig()
        self.tasks: tuple[str, ...] = ()
        self.log_vars = nn.Parameter(torch.zeros(0), requires_grad=False)
        self.register_buffer("weights", torch.zeros(0))

    def bind(self, spec: DataSpec) -> None:
        """Learn the task names of ``spec`` (unknown weight names are a ConfigError)."""
        if spec.multitask is None:
            raise ConfigError(f"loss 'task-bce' needs multi-task data; {spec.name!r} has none")
        self.tasks = spec.multitask.tasks
        unknown = [t for t in self.cfg.weights if t not in self.tasks]
        if unknown:
            raise ConfigError(
                f"loss 'task-bce': weights: unknown task {unknown[0]!r}; tasks: "
                f"{', '.join(self.tasks)}"
            )
        self.weights = torch.tensor([self.cfg.weights.get(t, 1.0) for t in self.tasks])
        learned = self.cfg.weighting == "uncertainty"
        self.log_vars = nn.Parameter(torch.zeros(len(self.tasks)), requires_grad=learned)

    def forward(self, batch: TaskBatch, out: TaskOutput) -> dict[str, Tensor]:
        if not self.tasks:
            raise ConfigError("loss 'task-bce' was not bound to a dataset (call bind(spec))")
        mask = batch.mask.to(out.logits.dtype)
        labels = batch.labels.to(out.logits.dtype)
        bce = F.binary_cross_entropy_with_logits(out.logits, labels, reduction="none")
        per_task = (bce * mask).sum(0) / mask.sum(0).clamp(min=1.0)
        scale = self.weights.to(per_task)
        if self.cfg.weighting == "uncertainty":
            scale = scale * torch.exp(-self.log_vars)
        terms = {f"bce/{t}": scale[k] * per_task[k] for k, t in enumerate(self.tasks)}
        if self.cfg.weighting == "uncertainty":
            terms["uncertainty"] = 0.5 * self.log_vars.sum()
        return terms
