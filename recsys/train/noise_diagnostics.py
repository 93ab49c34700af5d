"""Per-user loss diagnostics for denoising: do noisy train interactions have higher loss?

A denoising method that drops or down-weights high-loss interactions works only as far as the
loss separates noisy interactions from clean ones. Separation is measured by the AUROC of the
loss as a detector of noise, either over all train interactions at once (the *global* loss
distribution) or within each user's own interactions and then averaged over users (the
*per-user* loss distribution). Users differ a lot in their typical loss, so the per-user figure
is usually much higher than the global one.

:class:`NoiseDiagnostic` plugs into :func:`recsys.train.loop.fit` as a ``Diagnostic`` and adds
``noise/*`` values to every epoch's history row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from recsys.errors import ConfigError, DataError
from recsys.models.base import Model, model_device
from recsys.samplers.uniform import sample_negatives
from recsys.seeding import generator
from recsys.spec import DataSpec


@dataclass(frozen=True)
class GroupedAUROC:
    """AUROC within each group (see :func:`grouped_auroc`).

    Attributes:
        mean: unweighted mean of ``per_group`` over the scored groups (NaN when none is).
        per_group: ``(n_groups,)`` float64 AUROC of each group; NaN where the group is not
            scored (no positive, no negative, or no entry at all).
        n_scored: groups with at least one positive and one negative entry.
        n_without_noise: groups with at least one entry and no positive entry.
        n_all_noise: groups with at least one entry, all of them positive.
    """

    mean: float
    per_group: Tensor
    n_scored: int
    n_without_noise: int
    n_all_noise: int


def auroc(scores: Tensor, labels: Tensor) -> float:
    """Area under the ROC curve of ``scores`` as a detector of ``labels``.

    With ``n1`` positives (``labels`` True, e.g. noisy), ``n0`` negatives and ``R1`` the sum of
    the positives' ranks among all scores (ranks from 1, tied scores get their average rank),
    the Mann–Whitney statistic gives

        ``AUROC = (R1 - n1 (n1 + 1) / 2) / (n1 n0) = P(s+ > s-) + P(s+ = s-) / 2``

    over pairs of a positive and a negative entry, which equals the trapezoidal area under the
    ROC curve. Higher scores are read as "more likely positive".

    Args:
        scores: ``(N,)`` real scores (no NaN; infinities are allowed and tie with each other).
        labels: ``(N,)`` bool, True for the positive class.

    Returns:
        The AUROC in ``[0, 1]``; NaN when either class is empty.

    Raises:
        ValueError: shapes differ, ``labels`` is not bool, or a score is NaN.
    """
    groups = torch.zeros(scores.shape, dtype=torch.int64, device=scores.device)
    return float(grouped_auroc(groups, scores, labels, n_groups=1).per_group[0])


def grouped_auroc(
    groups: Tensor, scores: Tensor, labels: Tensor, *, n_groups: int | None = None
) -> GroupedAUROC:
    """The AUROC of ``scores`` as a detector of ``labels`` within each group (vectorised).

    Entries are sorted by ``(group, score)``; each run of equal ``(group, score)`` gets the
    average of its positions, and ranks restart at 1 in every group. The positives' rank sum
    ``R1_g`` of each group is one ``index_add`` and the per-group AUROC is the Mann–Whitney
    ``(R1_g - n1_g (n1_g + 1) / 2) / (n1_g n0_g)`` of :func:`auroc`. Doubled ranks are kept in
    int64, so rank sums are exact for tens of millions of entries; the work is two stable sorts
    and a few linear passes, with no loop over groups.

    Args:
        groups: ``(N,)`` int64 group of each entry, in ``[0, n_groups)``.
        scores: ``(N,)`` real scores (no NaN).
        labels: ``(N,)`` bool, True for the positive class.
        n_groups: number of groups (default: ``groups.max() + 1``, 0 when ``N == 0``).

    Returns:
        A :class:`GroupedAUROC` whose tensors are on the inputs' device.

    Raises:
        ValueError: mismatched shapes, non-bool labels, non-integer or out-of-range groups, or
            a NaN score.
    """
    _check_inputs(groups, scores, labels)
    n = groups.numel()
    device = groups.device
    if n_groups is None:
        n_groups = int(groups.max()) + 1 if n else 0
    if n and (int(groups.min()) < 0 or int(groups.max()) >= n_groups):
        raise ValueError(
            f"grouped_auroc: groups must lie in [0, {n_groups}) (got "
            f"[{int(groups.min())}, {int(groups.max())}])"
        )
    counts = torch.bincount(groups, minlength=n_groups)
    n_pos = torch.bincount(groups[labels], minlength=n_groups)
    n_neg = counts - n_pos

    # Lexicographic (group, score) order: stable sort by score, then stable sort by group.
    order = torch.sort(scores, stable=True).indices
    if n_groups > 1:
        by_group = torch.sort(groups.index_select(0, order), stable=True).indices
        order = order.index_select(0, by_group)
        del by_group
    g = groups.index_select(0, order)
    s = scores.index_select(0, order)
    y = labels.index_select(0, order)
    del order

    # Runs of equal (group, score): start/end positions and the run of every entry.
    new_run = torch.ones(n, dtype=torch.bool, device=device)
    new_run[1:] = (g[1:] != g[:-1]) | (s[1:] != s[:-1])
    del s
    run_start = new_run.nonzero().squeeze(1)
    run_end = torch.empty_like(run_start)
    run_end[:-1] = run_start[1:] - 1
    run_end[-1:] = n - 1
    run_of = torch.cumsum(new_run, 0) - 1
    del new_run
    group_start = torch.cumsum(counts, 0) - counts
    # Twice the 1-based average rank within the group: start + end + 2 - 2 * group start.
    twice_rank = (run_start + run_end + 2).index_select(0, run_of) - 2 * group_start[g]
    twice_rank_sum = torch.zeros(n_groups, dtype=torch.int64, device=device)
    twice_rank_sum.index_add_(0, g[y], twice_rank[y])

    twice_u = twice_rank_sum - n_pos * (n_pos + 1)
    scored = (n_pos > 0) & (n_neg > 0)
    per_group = twice_u.double() / (2 * n_pos * n_neg).double()
    per_group = torch.where(scored, per_group, torch.full_like(per_group, math.nan))
    n_scored = int(scored.sum())
    return GroupedAUROC(
        mean=float(per_group[scored].mean()) if n_scored else math.nan,
        per_group=per_group,
        n_scored=n_scored,
        n_without_noise=int(((counts > 0) & (n_pos == 0)).sum()),
        n_all_noise=int(((counts > 0) & (n_neg == 0)).sum()),
    )


def _check_inputs(groups: Tensor, scores: Tensor, labels: Tensor) -> None:
    if groups.dim() != 1 or groups.shape != scores.shape or scores.shape != labels.shape:
        raise ValueError(
            "grouped_auroc: groups, scores and labels must be 1-D of the same length (got "
            f"{tuple(groups.shape)}, {tuple(scores.shape)}, {tuple(labels.shape)})"
        )
    if labels.dtype != torch.bool:
        raise ValueError(f"grouped_auroc: labels must be bool (got {labels.dtype})")
    if groups.dtype.is_floating_point or groups.dtype.is_complex or groups.dtype == torch.bool:
        raise ValueError(f"grouped_auroc: groups must be integers (got {groups.dtype})")
    if bool(torch.isnan(scores).any()):
        raise ValueError("grouped_auroc: scores contain NaN")


class NoiseDiagnostic:
    """How well each train interaction's BPR loss flags it as noise (a loop ``Diagnostic``).

    Each call draws one negative item ``j_u`` per user, uniform over the user's non-train items,
    from a generator seeded by ``(seed, "noise-diagnostics/<epoch>")`` (reproducible and
    independent of the training RNG), and computes for every train interaction ``(u, i)``

        ``loss(u, i) = softplus(s(u, j_u) - s(u, i))``

    with the model's current scores. Users are scored in blocks of ``block_users`` through
    ``model.scorer()``, so memory stays at ``block_users x n_items`` scores.

    The returned values (floats) are:

    * ``noise/auroc_global``: AUROC of the loss as a detector of ``spec.train_noise`` over all
      train interactions;
    * ``noise/auroc_user``: mean over users of the AUROC within the user's own interactions,
      over users with at least one noisy and one clean interaction;
    * ``noise/users_scored``: the number of such users;
    * ``noise/users_without_noise``: users with train interactions but no noisy one (left out
      of ``noise/auroc_user``; users whose interactions are all noisy are left out too);
    * ``noise/loss_clean``, ``noise/loss_noisy``: mean loss of clean and of noisy interactions
      (NaN when there are none).

    Args:
        spec: the dataset; ``spec.train_noise`` must be set.
        seed: the run seed.
        block_users: users scored at once.

    Raises:
        DataError: ``spec.train_noise`` is None or not a ``(len(train),)`` bool tensor.
        ConfigError: ``block_users < 1``.
    """

    def __init__(self, spec: DataSpec, seed: int, block_users: int = 1024) -> None:
        noise = spec.train_noise
        if noise is None:
            raise DataError(
                f"dataset {spec.name!r} has no noise labels (spec.train_noise is None); noise "
                "diagnostics need known noisy train interactions"
            )
        if noise.dtype != torch.bool or noise.shape != (len(spec.train),):
            raise DataError(
                f"dataset {spec.name!r}: train_noise must be bool of shape ({len(spec.train)},) "
                f"(got {noise.dtype} {tuple(noise.shape)})"
            )
        if block_users < 1:
            raise ConfigError(f"noise diagnostics: block_users must be >= 1 (got {block_users})")
        self.spec = spec
        self.seed = seed
        self.block_users = block_users
        self.noise = noise.cpu()

    def negatives(self, epoch: int) -> Tensor:
        """``(n_users,)`` int64: the negative item ``j_u`` of every user for ``epoch``."""
        rng = generator(self.seed, f"noise-diagnostics/{epoch}")
        return sample_negatives(self.spec, torch.arange(self.spec.n_users), rng)

    def train_losses(self, model: Model, epoch: int) -> Tensor:
        """``(len(train),)`` float64 CPU: ``softplus(s(u, j_u) - s(u, i))`` per train row.

        Aligned with ``spec.train``; scores are cast to float64 before the difference. Call
        under ``torch.no_grad()`` (the loop does).
        """
        spec = self.spec
        indptr, order = spec.train_csr()
        users = spec.train.users.index_select(0, order)
        items = spec.train.items.index_select(0, order)
        active = torch.nonzero(indptr[1:] > indptr[:-1]).squeeze(1)
        slot = torch.zeros(spec.n_users, dtype=torch.int64)
        slot[active] = torch.arange(active.numel())
        neg = self.negatives(epoch).index_select(0, active)
        device = model_device(model)
        score = model.scorer()
        # Margins are gathered per block; softplus runs once over all of them, so the result
        # does not depend on block_users (vectorised and scalar kernels round differently).
        margins = torch.empty(len(spec.train), dtype=torch.float64)
        for k0 in range(0, active.numel(), self.block_users):
            block = active[k0 : k0 + self.block_users]
            lo, hi = int(indptr[block[0]]), int(indptr[block[-1] + 1])
            row = (slot.index_select(0, users[lo:hi]) - k0).to(device)
            scores = score(block.to(device))
            neg_scores = scores.gather(1, neg[k0 : k0 + block.numel()].to(device)[:, None])[:, 0]
            pos_scores = scores[row, items[lo:hi].to(device)]
            margins[lo:hi] = neg_scores.index_select(0, row).cpu().double()
            margins[lo:hi] -= pos_scores.cpu().double()
        losses = torch.empty_like(margins)
        losses[order] = F.softplus(margins)
        return losses

    def __call__(self, model: Model, epoch: int) -> dict[str, float]:
        """The ``noise/*`` values of ``model`` at ``epoch`` (see the class docstring)."""
        losses = self.train_losses(model, epoch)
        noise = self.noise
        per_user = grouped_auroc(self.spec.train.users, losses, noise, n_groups=self.spec.n_users)
        return {
            "noise/auroc_global": auroc(losses, noise),
            "noise/auroc_user": per_user.mean,
            "noise/users_scored": float(per_user.n_scored),
            "noise/users_without_noise": float(per_user.n_without_noise),
            "noise/loss_clean": _mean(losses[~noise]),
            "noise/loss_noisy": _mean(losses[noise]),
        }


def _mean(values: Tensor) -> float:
    return float(values.mean()) if values.numel() else math.nan
