"""DTRN (Liu et al., CIKM 2023): task-specific bottom representations for multi-task models.

No official code exists; this is a reconstruction from the paper's abstract and its described
modules (TIM, TRM). Every choice that the abstract does not fix is listed here.

**TIM, task-specific interest module** (when the data has behaviour sequences and ``tim``):

* Task embeddings ``τ_k`` and behaviour embeddings ``β_b`` (``hyper_dim`` each, N(0, 1)).
* A hypernetwork ``G`` (MLP ``2·hyper_dim → hyper_hidden → ReLU → r(H + 4d) + H``) maps
  ``[τ_k ‖ β_b]`` to ``U_{k,b} (H × r)``, ``V_{k,b} (4d × r)`` and a bias shift ``δ_{k,b}
  (H)``. The attention MLP of task ``k`` on behaviour ``b`` has first-layer weights
  ``W_{k,b} = W_0 + U_{k,b} V_{k,b}^T / r`` and bias ``b_0 + δ_{k,b}``, where ``W_0, b_0``
  are the shared input layer's attention weights (:mod:`recsys.models.multitask.attention`,
  the extractor the baselines use) and the output layer ``w_2`` is shared unchanged. The
  ``1/r`` scale follows LoRA (``α = 1``). ``G`` starts at PyTorch's default init, so the
  deltas are small but non-zero and differ across tasks from the first step (zero-initialised
  ``U`` would start DTRN exactly at the shared extractor).
* ``r_{k,b} = Σ_l α_{k,b,l} x_{b,l}`` with ``α`` the masked softmax of task ``k``'s scores:
  ``K · N_b`` interest fields, ``N_b`` of them per task.
* Parameters: ``(K + N_b) · hyper_dim + |G|``, independent of ``K · N_b``; a copy of the
  attention MLP per (task, behaviour) would cost ``K · N_b · (4d·H + H + H)``. At the
  defaults (``d = 16, H = 32, r = 4, hyper_dim = 8, hyper_hidden = 32``) ``|G| = 14,272``
  against ``2,112`` per copy: break-even at ``K · N_b ≈ 7``, and each added task or behaviour
  costs 8 parameters instead of ``N_b`` (or ``K``) copies.

**TRM, task-specific representation refinement** (``trm``): for task ``k`` the fields
``e^k = [base fields ‖ r_{k,1..N_b}]`` (``F' = F_0 + N_b`` fields; without TIM the shared
interests) are squeezed by per-field mean pooling ``z_f = mean_j e^k_{f,j}`` and excited
field-wise by task ``k``'s own SENet ``a_k = 2σ(W_2^k ReLU(W_1^k z + c_1) + c_2) ∈ (0, 2)^{F'}``
with ``ceil(F'/se_reduction)`` hidden units (``c_1`` starts at 0, so no hidden unit starts
dead on every sample). ``2σ`` makes ``a = 1`` (identity) at zero
pre-activation; with the small initial field embeddings ``z ≈ 0``, so the refinement starts
near the identity. ``h_k = [a_{k,1} e^k_1 ‖ … ‖ a_{k,F'} e^k_{F'}]`` (``F'·d``).

**Top** (``top``): the experts are shared across tasks but evaluated on each task's
representation:

* ``mmoe``: ``f^k = Σ_i g^k(h_k)_i E_i(h_k)`` (the experts run ``K`` times);
* ``ple``: at level 1 task ``k``'s experts and gate read ``h_k``; the shared experts and the
  shared gate read ``mean_k h_k`` (one shared path instead of ``K`` copies; the alternative,
  shared experts on ``h_k`` for task ``k``'s path only, would leave the shared gate without a
  single input); higher levels are plain PLE.

``y_k = tower_k(f^k)``.

**Without behaviour sequences** (census-like data, or ``interest = false``) TIM is absent and
DTRN is TRM + top. With ``tim = trm = false`` and ``top = "mmoe"`` DTRN computes exactly
MMoE's function (every ``h_k`` is the shared flattened input).
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from recsys.models.multitask.attention import TargetAttention, target_attention
from recsys.models.multitask.base import TaskModel, TaskModelConfig
from recsys.models.multitask.inputs import PairInputs
from recsys.models.multitask.layers import Towers
from recsys.models.multitask.mmoe import MMoELayer, MMoEOptions
from recsys.models.multitask.ple import PLEOptions, PLEStack
from recsys.spec import DataSpec


class DTRNConfig(TaskModelConfig, MMoEOptions, PLEOptions):
    """DTRN settings (the expert fields apply to the chosen ``top``)."""

    top: Literal["mmoe", "ple"] = "mmoe"
    """The multi-task backbone on the task-specific representations."""
    tim: bool = True
    """Task-specific interests (off: the shared interests of the input layer)."""
    trm: bool = True
    """Task-specific field refinement (off: ``h_k`` is task ``k``'s fields, flattened)."""
    hyper_rank: int = Field(default=4, ge=1)
    """Rank ``r`` of the generated weight deltas ``U V^T``."""
    hyper_dim: int = Field(default=8, ge=1)
    """Size of the task and behaviour embeddings ``τ_k``, ``β_b``."""
    hyper_hidden: int = Field(default=32, ge=1)
    """Hidden size of the hypernetwork ``G``."""
    se_reduction: float = Field(default=4.0, ge=1.0)
    """TRM's SENet reduction ratio: ``ceil(F' / se_reduction)`` hidden units."""


class TaskInterestModule(nn.Module):
    """TIM: generated per-(task, behaviour) attention weights (see the module docstring)."""

    def __init__(self, n_tasks: int, n_behaviours: int, base: TargetAttention, cfg: DTRNConfig):
        super().__init__()
        self.n_tasks, self.n_behaviours = n_tasks, n_behaviours
        self.rank, self.hidden, self.width = cfg.hyper_rank, base.hidden, 4 * base.dim
        self.task_emb = nn.Parameter(torch.randn(n_tasks, cfg.hyper_dim))
        self.behaviour_emb = nn.Parameter(torch.randn(n_behaviours, cfg.hyper_dim))
        out = cfg.hyper_rank * (self.hidden + self.width) + self.hidden
        self.hyper = nn.Sequential(
            nn.Linear(2 * cfg.hyper_dim, cfg.hyper_hidden),
            nn.ReLU(),
            nn.Linear(cfg.hyper_hidden, out),
        )

    def generate(self, w0: Tensor, b0: Tensor) -> tuple[Tensor, Tensor]:
        """``W_{k,b} (K, N_b, H, 4d)`` and ``b_{k,b} (K, N_b, H)`` from the shared ``W_0, b_0``."""
        k, n_b, r, h = self.n_tasks, self.n_behaviours, self.rank, self.hidden
        c = torch.cat(
            [
                self.task_emb.unsqueeze(1).expand(k, n_b, -1),
                self.behaviour_emb.unsqueeze(0).expand(k, n_b, -1),
            ],
            dim=-1,
        )
        u, v, shift = self.hyper(c).split([r * h, r * self.width, h], dim=-1)
        delta = u.reshape(k, n_b, h, r) @ v.reshape(k, n_b, self.width, r).transpose(-1, -2)
        return w0 + delta / r, b0 + shift


class FieldExcitation(nn.Module):
    """TRM for one task: ``a = 2σ(W_2 ReLU(W_1 z + c_1) + c_2)`` on field means ``z``."""

    def __init__(self, n_fields: int, reduction: float) -> None:
        super().__init__()
        hidden = max(1, math.ceil(n_fields / reduction))
        squeeze = nn.Linear(n_fields, hidden)
        nn.init.zeros_(squeeze.bias)  # no unit starts dead on every sample
        self.net = nn.Sequential(squeeze, nn.ReLU(), nn.Linear(hidden, n_fields))

    def forward(self, fields: Tensor) -> tuple[Tensor, Tensor]:
        """``(P, F', d)`` → refined fields ``(P, F', d)`` and the weights ``a (P, F')``."""
        a = 2.0 * torch.sigmoid(self.net(fields.mean(dim=-1)))
        return fields * a.unsqueeze(-1), a


class DTRN(TaskModel):
    """DTRN: TIM + TRM + MMoE/PLE top (see the module docstring). ``extra["trm"]`` holds the
    field weights ``(B, K, F')``."""

    Config = DTRNConfig
    registry_name: ClassVar[str] = "dtrn"

    def __init__(self, cfg: DTRNConfig, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        self.cfg_top = cfg.top
        self.inputs = self.make_inputs(cfg, spec)
        n_b = len(self.inputs.behaviours)
        self.tim: TaskInterestModule | None = None
        if cfg.tim and self.inputs.attention is not None:
            self.tim = TaskInterestModule(self.n_tasks, n_b, self.inputs.attention, cfg)
        n_fields = self.inputs.n_fields
        self.trm = (
            nn.ModuleList(FieldExcitation(n_fields, cfg.se_reduction) for _ in range(self.n_tasks))
            if cfg.trm
            else None
        )
        in_dim = n_fields * cfg.dim
        self.top: MMoELayer | PLEStack
        if cfg.top == "mmoe":
            self.top = MMoELayer(in_dim, cfg.experts, cfg.expert_hidden, self.n_tasks, cfg.dropout)
        else:
            self.top = PLEStack(in_dim, self.n_tasks, cfg, cfg.dropout)
        self.towers = Towers(self.top.out_dim, cfg.tower, self.n_tasks, cfg.dropout)
        self.log_parameter_counts()

    def parameter_counts(self) -> dict[str, int]:
        """The base counts plus ``tim_copy_equivalent``: what one attention MLP per (task,
        behaviour) would cost instead of TIM (0 without TIM)."""
        counts = super().parameter_counts()
        attention = self.inputs.attention
        per_copy = 0 if attention is None else sum(p.numel() for p in attention.parameters())
        n_b = len(self.inputs.behaviours) if self.tim is not None else 0
        counts["tim_copy_equivalent"] = self.n_tasks * n_b * per_copy
        return counts

    def task_attention(self) -> tuple[Tensor, Tensor]:
        """TIM's generated first-layer weights ``(K, N_b, H, 4d)`` and biases ``(K, N_b, H)``."""
        assert self.tim is not None and self.inputs.attention is not None
        first = self.inputs.attention.first
        return self.tim.generate(first.weight, first.bias)

    def task_fields(self, inp: PairInputs) -> list[Tensor]:
        """Each task's fields ``e^k (P, F', d)``: base fields, then its interests."""
        if self.tim is None:
            fields = self.inputs.fields(inp)
            return [fields] * self.n_tasks
        assert inp.seq is not None and inp.seq_mask is not None and inp.target is not None
        assert self.inputs.attention is not None
        w1, b1 = self.task_attention()
        w2 = self.inputs.attention.second.weight[0]
        interests = target_attention(inp.seq, inp.seq_mask, inp.target, w1, b1, w2)
        return [torch.cat([inp.base, interests[:, k]], dim=1) for k in range(self.n_tasks)]

    def task_logits(self, inputs: list[PairInputs]) -> tuple[Tensor, dict[str, Tensor]]:
        per_task = self.task_fields(inputs[0])
        extra: dict[str, Tensor] = {}
        if self.trm is not None:
            refined = [trm(e) for trm, e in zip(self.trm, per_task, strict=True)]
            per_task = [e for e, _ in refined]
            extra["trm"] = torch.stack([a for _, a in refined], dim=1)
        h = [e.flatten(1) for e in per_task]
        if isinstance(self.top, MMoELayer):
            outs, gates = self.top(h)
            extra["gates"] = gates
        else:
            outs = self.top(h, torch.stack(h).mean(0))
        return self.towers(outs), extra
