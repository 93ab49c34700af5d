"""PLD: personal-loss denoising resampler (Zhang et al., "Personalized Denoising Implicit
Feedback for Robust Recommender System", WWW 2025).

Noisy positives separate from clean ones by loss *within* a user far better than in the global
loss distribution, so PLD resamples each user's positive by its personal loss. Per step, as the
official trainer does:

1. draw ``B`` users uniformly with replacement (:func:`~recsys.samplers.per_user.draw_users`);
2. for each user a candidate pool ``C_u`` of ``k`` train positives, without replacement when
   ``|train_u| >= k`` and with replacement otherwise, and one negative ``j_u`` uniform over the
   non-train items, shared by the whole pool;
3. the loss of each candidate with the model's *current* parameters, under ``no_grad``
   (``probe.pair_scores`` runs the model's ``forward``, so any model that scores pairs works,
   LightGCN's propagation included): ``l_ui = softplus(s_uj - s_ui)`` (BPR, the official rule) or
   ``l_ui = softplus(-s_ui)`` (``criterion = "bce"``: the pointwise reading, a reconstruction,
   since the official code has BPR only);
4. one positive ``i* ~ softmax(-l_u· / τ)`` over the pool, drawn by Gumbel-max with noise from
   the sampler's generator;
5. the batch ``(u, i*, j_u)`` goes to the ordinary losses.

For the first ``warmup_epochs`` epochs the positive is uniform over the pool (= uniform over the
user's positives) and nothing is scored. ``τ → ∞`` gives uniform sampling too. The epoch length
is that of :mod:`recsys.samplers.per_user` (``|train|`` samples).

With noise labels (``spec.train_noise``) :meth:`stats` reports, per epoch, the noisy share of
the selected positives (``pld/noise_share``) and of the pools (``pld/pool_noise_share``, what
uniform sampling would select).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from recsys.config import StrictModel
from recsys.errors import ConfigError
from recsys.samplers.base import Probe
from recsys.samplers.per_user import PerUserSampler, draw_pool, draw_users
from recsys.samplers.uniform import sample_negatives
from recsys.spec import DataSpec
from recsys.types import Batch


class PLDConfig(StrictModel):
    """PLD settings (defaults: the official code's)."""

    pool_size: int = Field(default=5, ge=1)
    """``k``: candidate positives per user (``--item_num``)."""
    temperature: float = Field(default=0.1, gt=0.0)
    """``τ`` of ``softmax(-loss / τ)`` (``--temp``); ``inf`` is uniform sampling."""
    warmup_epochs: int = Field(default=5, ge=0)
    """Epochs of plain uniform positives before resampling starts (``begin_adv``)."""
    criterion: Literal["bpr", "bce"] = "bpr"
    """Candidate loss: BPR against the shared negative, or pointwise BCE (reconstruction)."""


class PLDSampler(PerUserSampler):
    """Personal-loss resampling of positives (see the module docstring)."""

    Config = PLDConfig

    def __init__(self, cfg: PLDConfig | None = None) -> None:
        self.cfg = cfg if cfg is not None else PLDConfig()
        self._counts: Tensor | None = None
        self._on_device: dict[tuple[str, torch.device], Tensor] = {}

    def start_epoch(self, probe: Probe | None, epoch: int) -> Probe | None:
        """Reset the epoch's noise counts; resample (use ``probe``) only after warm-up.

        After warm-up the batches are on the model's device.
        """
        self._counts = None
        self._on_device = {}
        if epoch <= self.cfg.warmup_epochs:
            return None
        if probe is None:
            raise ConfigError("the PLD sampler needs the model's scores (a probe) after warm-up")
        return probe

    def batch(
        self, spec: DataSpec, size: int, generator: torch.Generator, probe: Probe | None
    ) -> Batch:
        """One batch of ``size`` users; ``probe=None`` picks uniformly from each pool."""
        k = self.cfg.pool_size
        users = draw_users(spec, size, generator)
        rows = draw_pool(spec, users, k, generator)
        neg = sample_negatives(spec, users, generator)
        gumbel = -torch.log(-torch.log(torch.rand((size, k), generator=generator).clamp_(1e-20)))
        if probe is None:
            logits = torch.zeros(size, k)
        else:
            logits = self.logits(probe, users, spec.train.items[rows], neg)
            users, rows, neg = (t.to(logits.device) for t in (users, rows, neg))
            gumbel = gumbel.to(logits.device)
        choice = (logits + gumbel).argmax(dim=1, keepdim=True)
        chosen = rows.gather(1, choice).squeeze(1)
        self._count(spec, rows, chosen)
        items = self._device_copy("items", spec.train.items, chosen.device)
        return Batch(users, items.index_select(0, chosen), neg[:, None])

    def _device_copy(self, name: str, tensor: Tensor, device: torch.device) -> Tensor:
        """``tensor`` on ``device``, copied once per epoch rather than once per step."""
        key = (name, device)
        if key not in self._on_device:
            self._on_device[key] = tensor.to(device)
        return self._on_device[key]

    def logits(self, probe: Probe, users: Tensor, pool: Tensor, neg: Tensor) -> Tensor:
        """``(B, k)`` ``-loss / τ`` of each pool candidate under the current parameters."""
        # One forward scores each user against its negative (as the "positive" slot) and its
        # k candidates (as the "negative" slots): B users and B(1 + k) items, no repeats.
        neg_s, pool_s = probe.pair_scores(users, neg, pool)
        margin = pool_s - neg_s[:, None] if self.cfg.criterion == "bpr" else pool_s
        return -F.softplus(-margin) / self.cfg.temperature

    def _count(self, spec: DataSpec, rows: Tensor, chosen: Tensor) -> None:
        if spec.train_noise is None:
            return
        noise = self._device_copy("noise", spec.train_noise, rows.device)
        counts = torch.stack(
            [
                noise.index_select(0, chosen).sum(),
                noise.index_select(0, rows.flatten()).sum(),
                torch.tensor(chosen.numel(), device=rows.device),
                torch.tensor(rows.numel(), device=rows.device),
            ]
        ).double()
        self._counts = counts if self._counts is None else self._counts + counts

    def stats(self) -> dict[str, float]:
        """The last epoch's noisy shares (empty without noise labels)."""
        if self._counts is None:
            return {}
        sel, pool, n_sel, n_pool = self._counts.tolist()
        return {"pld/noise_share": sel / n_sel, "pld/pool_noise_share": pool / n_pool}
