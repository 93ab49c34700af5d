"""Denoising losses for implicit feedback: truncated (T-CE) and reweighted (R-CE) losses.

Wang et al., "Denoising Implicit Feedback for Recommendation" (WSDM 2021). Noisy positives
(interactions the user did not like) tend to have large losses early in training; T-CE drops the
largest-loss samples of each batch, R-CE down-weights them. Both were defined on pointwise BCE;
``base = "bpr"`` applies the same truncation or weighting to the per-triple BPR losses instead,
a deviation from the paper for pairwise backbones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from recsys.config import StrictModel
from recsys.errors import RecsysError
from recsys.losses.bce import pointwise_bce
from recsys.losses.l2 import l2_reg
from recsys.types import Batch, ModelOutput

Base = Literal["bce", "bpr"]


def per_sample_losses(base: Base, out: ModelOutput) -> tuple[Tensor, Tensor]:
    """The per-sample losses a denoising loss truncates or weights, and which may be dropped.

    * ``"bce"``: the ``B·(1+N)`` pointwise BCE losses of
      :func:`~recsys.losses.bce.pointwise_bce` (negatives first, then positives); only
      positives (label 1) are droppable.
    * ``"bpr"``: the ``B·N`` per-triple losses ``softplus(s_neg[b, n] - s_pos[b])``
      (row-major); every triple is droppable.

    Returns:
        ``(losses, droppable)``, both 1-D of the same length; ``droppable`` is 1.0 / 0.0.
    """
    if base == "bce":
        return pointwise_bce(out)
    losses = F.softplus(out.neg_scores - out.pos_scores.unsqueeze(-1)).reshape(-1)
    return losses, torch.ones_like(losses)


class TCEConfig(StrictModel):
    """Truncated-loss settings (defaults of the official code)."""

    base: Base = "bce"
    """Per-sample loss to truncate: pointwise ``"bce"`` (the paper) or per-triple ``"bpr"``."""
    max_drop: float = Field(default=0.2, ge=0.0, lt=1.0)
    """Final drop rate ``ε_max`` (fraction of the batch's samples dropped)."""
    n_gradual: int = Field(default=30000, ge=1)
    """Number of training steps over which the drop rate ramps up from 0."""
    exponent: float = Field(default=1.0, gt=0.0)
    """The ramp ends at ``max_drop ** exponent`` (see :meth:`TCE.drop_rate`)."""
    reg_weight: float = Field(default=1e-4, ge=0.0)
    """Weight of the L2 term on the ego embeddings (see :func:`~recsys.losses.l2.l2_reg`)."""


class TCE:
    """Truncated loss: per batch, drop the largest-loss samples and average the rest.

    At training step ``T`` (the number of previous calls; 0 on the first batch) with drop rate
    ``ε = drop_rate(T)`` and ``n`` per-sample losses ``ℓ`` (see :func:`per_sample_losses`):

    * ``"bce"`` base: the samples are sorted ascending by ``ℓ · label`` (a stable sort), so every
      negative (key 0) sorts before every positive and only positives are dropped, highest loss
      first. ``k = int((1 - ε) · n)`` samples are kept and ``tce = mean(ℓ[kept])``. The dropped
      count ``n - k ≈ ε · B·(1+N)`` is a fraction of the whole batch, not of its ``B``
      positives: about ``ε·(1+N)`` of the positives go. Once ``n - k > B`` every positive is
      dropped and then negatives too (in sample order); keep ``ε·(1+N) < 1``.
    * ``"bpr"`` base: the ``B·N`` triple losses are sorted ascending, the lowest
      ``k = int((1 - ε) · B·N)`` are kept and ``tce = mean(ℓ[kept])`` (a deviation: the paper
      truncates BCE only).

    At least one sample is always kept, so a tiny batch never averages an empty set. The sort
    keys are detached; gradients flow through the kept losses only. ``reg`` is
    :func:`~recsys.losses.l2.l2_reg` with ``reg_weight`` (omitted when 0).

    Each call advances :attr:`step`. :meth:`state_dict` / :meth:`load_state_dict` carry it
    through checkpoints, so a resumed run continues the schedule. :attr:`last_drop_rate` and
    :attr:`last_n_dropped` describe the latest batch (plain Python numbers, no device sync).
    """

    Config = TCEConfig

    def __init__(self, cfg: TCEConfig | None = None) -> None:
        self.cfg = cfg if cfg is not None else TCEConfig()
        self.step = 0
        """Number of batches seen so far (the ``T`` of the next call)."""
        self.last_drop_rate = 0.0
        """Drop rate used on the latest batch."""
        self.last_n_dropped = 0
        """Number of samples dropped from the latest batch."""

    def drop_rate(self, step: int) -> float:
        """The drop rate ``ε(T)`` at training step ``T = step``.

        The official schedule: ``linspace(0, max_drop ** exponent, n_gradual)[T]`` for
        ``T < n_gradual``, else ``max_drop``. Quirks kept for faithfulness: the ramp's
        ``n_gradual`` points end at step ``n_gradual - 1`` (increments of
        ``max_drop ** exponent / (n_gradual - 1)``, and a constant 0 when ``n_gradual == 1``);
        with ``exponent != 1`` the ramp ends at ``max_drop ** exponent`` and then jumps to
        ``max_drop`` at step ``n_gradual``. Values equal ``numpy.linspace``'s bit for bit.

        Raises:
            ValueError: ``step`` is negative.
        """
        if step < 0:
            raise ValueError(f"T-CE drop_rate: step must be >= 0, got {step}")
        n = self.cfg.n_gradual
        if step >= n:
            return self.cfg.max_drop
        if n == 1:
            return 0.0
        top = self.cfg.max_drop**self.cfg.exponent
        if step == n - 1:
            return top
        return step * (top / (n - 1))

    def __call__(self, batch: Batch, out: ModelOutput) -> dict[str, Tensor]:
        """Loss terms of a batch: ``{"tce": scalar, "reg": scalar}`` (``reg`` only if weighted).

        Advances :attr:`step` by one.
        """
        rate = self.drop_rate(self.step)
        losses, droppable = per_sample_losses(self.cfg.base, out)
        n = losses.numel()
        keep = max(int((1.0 - rate) * n), 1)
        order = torch.sort((losses.detach() * droppable).reshape(-1), stable=True).indices
        terms = {"tce": losses[order[:keep]].mean()}
        reg = l2_reg(out, self.cfg.reg_weight)
        if reg is not None:
            terms["reg"] = reg
        self.last_drop_rate = rate
        self.last_n_dropped = n - keep
        self.step += 1
        return terms

    def state_dict(self) -> dict[str, Any]:
        """``{"step": int}``: what a checkpoint needs to continue the schedule."""
        return {"step": self.step}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :attr:`step` from :meth:`state_dict`'s output.

        Raises:
            RecsysError: ``state`` has no non-negative integer ``"step"``.
        """
        step = state.get("step")
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise RecsysError(
                f"T-CE loss state: expected a non-negative integer 'step', got {step!r} "
                f"(keys: {sorted(state)})"
            )
        self.step = step


class RCEConfig(StrictModel):
    """Reweighted-loss settings (default of the official code)."""

    base: Base = "bce"
    """Per-sample loss to reweight: pointwise ``"bce"`` (the paper) or per-triple ``"bpr"``."""
    beta: float = Field(default=0.2, ge=0.0)
    """Sharpness ``β`` of the weights; 0 gives the plain loss."""
    reg_weight: float = Field(default=1e-4, ge=0.0)
    """Weight of the L2 term on the ego embeddings (see :func:`~recsys.losses.l2.l2_reg`)."""


class RCE:
    """Reweighted loss: each sample's loss is scaled by a detached confidence weight.

    * ``"bce"`` base: ``w = σ(s)^β`` for a positive score ``s`` and ``(1 - σ(s))^β`` for a
      negative one, over the ``B·(1+N)`` samples.
    * ``"bpr"`` base: ``w = σ(s_pos - s_neg)^β`` per triple, over the ``B·N`` triples (a
      deviation: the paper reweights BCE only).

    In both cases ``w = exp(-β · ℓ)`` for the sample's own loss ``ℓ`` (computed that way, which
    is exact and stable). ``w`` is detached, so the gradient of a sample is ``w`` times that of
    its plain loss. ``rce = mean(w · ℓ)``, a plain mean over the samples, not normalised by
    ``Σ w`` (as in the official code). ``reg`` is :func:`~recsys.losses.l2.l2_reg` with
    ``reg_weight`` (omitted when 0).
    """

    Config = RCEConfig

    def __init__(self, cfg: RCEConfig | None = None) -> None:
        self.cfg = cfg if cfg is not None else RCEConfig()

    def __call__(self, batch: Batch, out: ModelOutput) -> dict[str, Tensor]:
        """Loss terms of a batch: ``{"rce": scalar, "reg": scalar}`` (``reg`` only if weighted)."""
        losses, _ = per_sample_losses(self.cfg.base, out)
        weights = torch.exp(losses.detach() * -self.cfg.beta)
        terms = {"rce": (weights * losses).mean()}
        reg = l2_reg(out, self.cfg.reg_weight)
        if reg is not None:
            terms["reg"] = reg
        return terms
