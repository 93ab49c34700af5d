"""Binary-classification metrics for multi-task evaluation: AUC, GAUC, log loss, DeLong test.

All functions take 1-D numpy arrays or torch tensors (converted with ``np.asarray`` after
``.detach().cpu()``) and compute in float64. Notation: ``m`` positives ``X_1..X_m`` (scores of
samples with label 1), ``n`` negatives ``Y_1..Y_n`` (label 0), and the pair kernel

    ψ(x, y) = 1 if x > y,  1/2 if x = y,  0 if x < y.

* ROC AUC = ``(1 / (m n)) Σ_i Σ_j ψ(X_i, Y_j)`` = Mann–Whitney ``U / (m n)``. With midranks
  ``R_k`` of all ``m + n`` scores (tied scores share the mean of the ranks they span),
  ``U = Σ_{k positive} R_k − m (m + 1) / 2``; this counts tied pairs 1/2 and equals
  ``sklearn.metrics.roc_auc_score``. NaN when a class is absent.
* GAUC (group AUC, e.g. per user) = ``Σ_g w_g AUC_g / Σ_g w_g`` with ``w_g`` the number of
  labelled samples of group ``g``, over the groups that hold BOTH classes. Groups with a single
  class have no AUC and are left out of numerator and denominator (the usual GAUC convention);
  :class:`GroupAUC` reports how many groups were used.
* Log loss = ``mean_k −[y_k log p_k + (1 − y_k) log(1 − p_k)]``.
* DeLong (DeLong, DeLong & Clarke-Pearson 1988) paired test of two AUCs on the same samples, in
  the O(N log N) midrank form of Sun & Xu (2014).

Inputs are validated: equal lengths, labels in {0, 1}, no NaN (the message names the argument
and the count). Violations raise :class:`recsys.errors.RecsysError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import erfc
from scipy.stats import rankdata

from recsys.errors import RecsysError

__all__ = [
    "DeLong",
    "GroupAUC",
    "auc",
    "delong_test",
    "group_auc",
    "log_loss",
    "log_loss_from_logits",
]

F64 = npt.NDArray[np.float64]


# --------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------


def _to_numpy(x: Any, name: str) -> npt.NDArray[Any]:
    """``x`` as a 1-D numpy array (torch tensors are detached and moved to the CPU first)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu()
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise RecsysError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def _floats(x: Any, name: str) -> F64:
    """1-D float64 copy of ``x``; raises when it is not numeric or holds NaN."""
    arr = _to_numpy(x, name)
    if arr.dtype.kind not in "biuf":
        raise RecsysError(f"{name} must be numeric, got dtype {arr.dtype}")
    out = arr.astype(np.float64)
    n_nan = int(np.isnan(out).sum())
    if n_nan:
        raise RecsysError(f"{name} contains {n_nan} NaN value(s) out of {out.size}")
    return out


def _labels(y: Any, name: str = "labels") -> F64:
    """1-D float64 labels, each exactly 0 or 1."""
    out = _floats(y, name)
    bad = (out != 0.0) & (out != 1.0)
    n_bad = int(bad.sum())
    if n_bad:
        example = out[bad][0]
        raise RecsysError(
            f"{name} must be 0/1, found {n_bad} other value(s) out of {out.size} (e.g. {example!r})"
        )
    return out


def _same_length(**arrays: npt.NDArray[Any]) -> None:
    sizes = {name: a.shape[0] for name, a in arrays.items()}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{name} has {size}" for name, size in sizes.items())
        raise RecsysError(f"inputs must have the same length: {listed}")


# --------------------------------------------------------------------------------------------
# AUC
# --------------------------------------------------------------------------------------------


def _auc_checked(scores: F64, labels: F64) -> float:
    """AUC of validated inputs: ``(Σ_{pos} midrank − m (m + 1) / 2) / (m n)``."""
    pos = labels == 1.0
    m = int(pos.sum())
    n = labels.size - m
    if m == 0 or n == 0:
        return math.nan
    ranks = rankdata(scores, method="average")
    u = float(ranks[pos].sum()) - m * (m + 1) / 2.0
    return u / (m * n)


def auc(scores: Any, labels: Any) -> float:
    """ROC AUC with ties counted 1/2 (Mann–Whitney U on midranks).

    ``AUC = (Σ_{k: y_k = 1} R_k − m (m + 1) / 2) / (m n)`` with ``R_k`` the midrank of
    ``scores[k]`` among all scores (1-based; tied scores get the mean of the ranks they span),
    ``m`` positives and ``n`` negatives. Equals ``(1/(m n)) Σ_i Σ_j ψ(X_i, Y_j)``.

    Args:
        scores: ``(N,)`` real scores, higher = more likely positive (``±inf`` allowed).
        labels: ``(N,)`` labels in {0, 1} (bool, int or float).

    Returns:
        The AUC in ``[0, 1]``, or NaN when ``labels`` has no positive or no negative.

    Raises:
        RecsysError: lengths differ, labels outside {0, 1}, NaN in an input, or not 1-D.
    """
    s = _floats(scores, "scores")
    y = _labels(labels)
    _same_length(scores=s, labels=y)
    return _auc_checked(s, y)


# --------------------------------------------------------------------------------------------
# Group AUC
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class GroupAUC:
    """Per-group AUCs and their sample-weighted mean (GAUC).

    Only groups holding both classes have an AUC; the others are excluded from every array and
    from ``value`` (``n_groups_total - n_groups_used`` of them). The arrays are read-only.

    Attributes:
        groups: ``(G_used,)`` distinct group ids with both classes, sorted ascending.
        aucs: ``(G_used,)`` float64 AUC of each of those groups.
        weights: ``(G_used,)`` float64 number of labelled samples ``w_g = m_g + n_g`` of each.
        value: GAUC ``= Σ_g w_g AUC_g / Σ_g w_g``; NaN when no group has both classes.
        n_groups_total: number of distinct group ids in the input.
        n_groups_used: number of groups with both classes (``len(groups)``).
    """

    groups: npt.NDArray[Any]
    aucs: F64
    weights: F64
    value: float
    n_groups_total: int
    n_groups_used: int


def group_auc(scores: Any, labels: Any, groups: Any) -> GroupAUC:
    """AUC of every group at once, and the weighted GAUC, without a Python loop over groups.

    Method: codes ``c`` of the group ids (``np.unique``); one ``np.lexsort`` by ``(c, score)``;
    tie blocks = maximal runs of equal ``(c, score)``; the within-group midrank of a sample is
    ``(first + last) / 2 + 1 − start_g`` with ``first``/``last`` the sorted positions of its
    block and ``start_g`` the first position of its group. Per group, with ``bincount``:
    ``m_g`` positives, ``n_g`` negatives, ``R_g = Σ_{pos} midrank`` and
    ``AUC_g = (R_g − m_g (m_g + 1) / 2) / (m_g n_g)``.
    ``GAUC = Σ_g w_g AUC_g / Σ_g w_g`` with ``w_g = m_g + n_g`` over groups with ``m_g, n_g > 0``;
    single-class groups are excluded (they have no AUC).

    Args:
        scores: ``(N,)`` real scores.
        labels: ``(N,)`` labels in {0, 1}.
        groups: ``(N,)`` group ids (integers or strings; any sortable dtype without NaN).

    Returns:
        A :class:`GroupAUC`.

    Raises:
        RecsysError: lengths differ, labels outside {0, 1}, NaN in an input, or not 1-D.
    """
    s = _floats(scores, "scores")
    y = _labels(labels)
    g = _to_numpy(groups, "groups")
    if g.dtype.kind == "f":
        n_nan = int(np.isnan(g).sum())
        if n_nan:
            raise RecsysError(f"groups contains {n_nan} NaN value(s) out of {g.size}")
    _same_length(scores=s, labels=y, groups=g)

    uniq, codes = np.unique(g, return_inverse=True)
    codes = codes.reshape(-1)
    n_total = int(uniq.size)
    if n_total == 0:
        return _group_result(uniq, np.zeros(0), np.zeros(0), n_total)

    order = np.lexsort((s, codes))
    c_sorted = codes[order]
    s_sorted = s[order]
    y_sorted = y[order]
    n_samples = s.size

    # Tie blocks of equal (group, score); group starts are block starts too.
    new_block = np.empty(n_samples, dtype=bool)
    new_block[0] = True
    new_block[1:] = (c_sorted[1:] != c_sorted[:-1]) | (s_sorted[1:] != s_sorted[:-1])
    block_starts = np.flatnonzero(new_block)
    block_ends = np.append(block_starts[1:], n_samples) - 1
    block_id = np.cumsum(new_block) - 1
    group_starts = np.flatnonzero(np.r_[True, c_sorted[1:] != c_sorted[:-1]])

    first = block_starts[block_id].astype(np.float64)
    last = block_ends[block_id].astype(np.float64)
    midrank = (first + last) / 2.0 + 1.0 - group_starts[c_sorted]

    n_per_group = np.bincount(c_sorted, minlength=n_total).astype(np.float64)
    m_per_group = np.bincount(c_sorted, weights=y_sorted, minlength=n_total)
    r_pos = np.bincount(c_sorted, weights=midrank * y_sorted, minlength=n_total)
    neg_per_group = n_per_group - m_per_group

    used = (m_per_group > 0) & (neg_per_group > 0)
    m_u = m_per_group[used]
    aucs = (r_pos[used] - m_u * (m_u + 1.0) / 2.0) / (m_u * neg_per_group[used])
    return _group_result(uniq[used], aucs, n_per_group[used], n_total)


def _group_result(groups: npt.NDArray[Any], aucs: F64, weights: F64, n_total: int) -> GroupAUC:
    value = float(np.dot(weights, aucs) / weights.sum()) if weights.size else math.nan
    for arr in (groups, aucs, weights):
        arr.setflags(write=False)
    return GroupAUC(
        groups=groups,
        aucs=aucs,
        weights=weights,
        value=value,
        n_groups_total=n_total,
        n_groups_used=int(aucs.size),
    )


# --------------------------------------------------------------------------------------------
# Log loss
# --------------------------------------------------------------------------------------------


def log_loss(probs: Any, labels: Any, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy of probabilities.

    ``LL = (1/N) Σ_k −[y_k log p̃_k + (1 − y_k) log(1 − p̃_k)]`` with
    ``p̃_k = clip(p_k, eps, 1 − eps)`` so a confident mistake costs at most ``−log eps``.

    Args:
        probs: ``(N,)`` predicted probabilities of label 1, each in ``[0, 1]``.
        labels: ``(N,)`` labels in {0, 1}.
        eps: clipping bound, ``0 < eps < 0.5``.

    Returns:
        The mean loss (nats).

    Raises:
        RecsysError: empty input, lengths differ, labels outside {0, 1}, probabilities outside
            ``[0, 1]``, NaN in an input, not 1-D, or ``eps`` outside ``(0, 0.5)``.
    """
    if not 0.0 < eps < 0.5:
        raise RecsysError(f"log_loss eps must lie in (0, 0.5), got {eps!r}")
    p = _floats(probs, "probs")
    y = _labels(labels)
    _same_length(probs=p, labels=y)
    if p.size == 0:
        raise RecsysError("log_loss needs at least one sample, got empty probs and labels")
    outside = (p < 0.0) | (p > 1.0)
    n_out = int(outside.sum())
    if n_out:
        raise RecsysError(
            f"probs must lie in [0, 1], found {n_out} value(s) outside (e.g. {p[outside][0]!r})"
        )
    p = np.clip(p, eps, 1.0 - eps)
    losses = -(y * np.log(p) + (1.0 - y) * np.log1p(-p))
    return float(losses.mean())


def log_loss_from_logits(logits: Any, labels: Any) -> float:
    """Mean binary cross-entropy of logits, computed stably without clipping.

    With ``p = σ(z)``: ``−log p = softplus(−z)`` and ``−log(1 − p) = softplus(z)``, where
    ``softplus(x) = log(1 + eˣ)`` is evaluated as ``logaddexp(0, x)``. So
    ``LL = (1/N) Σ_k [y_k softplus(−z_k) + (1 − y_k) softplus(z_k)]``, picked per sample (not
    multiplied) so that ``z = ±inf`` gives 0 or ``inf`` instead of NaN.

    Args:
        logits: ``(N,)`` real logits (``±inf`` allowed).
        labels: ``(N,)`` labels in {0, 1}.

    Returns:
        The mean loss (nats).

    Raises:
        RecsysError: empty input, lengths differ, labels outside {0, 1}, NaN in an input, or
            not 1-D.
    """
    z = _floats(logits, "logits")
    y = _labels(labels)
    _same_length(logits=z, labels=y)
    if z.size == 0:
        raise RecsysError("log_loss_from_logits needs at least one sample, got empty inputs")
    losses = np.where(y == 1.0, np.logaddexp(0.0, -z), np.logaddexp(0.0, z))
    return float(losses.mean())


# --------------------------------------------------------------------------------------------
# DeLong test
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeLong:
    """Result of :func:`delong_test`.

    Attributes:
        auc_a: AUC of ``scores_a``.
        auc_b: AUC of ``scores_b``.
        diff: ``auc_a − auc_b``.
        se: standard error of ``diff`` under DeLong's variance estimate.
        z: ``diff / se`` (0 when ``diff == 0``; ``±inf`` when ``se == 0`` and ``diff != 0``).
        p_value: two-sided ``P(|Z| ≥ |z|)`` for standard normal ``Z`` (1 when ``diff == 0``).
    """

    auc_a: float
    auc_b: float
    diff: float
    se: float
    z: float
    p_value: float


def _structural_components(scores: F64, pos: npt.NDArray[np.bool_]) -> tuple[F64, F64, float]:
    """DeLong's ``V10`` (per positive), ``V01`` (per negative) and the AUC, from midranks.

    With ``T_z`` midranks over all samples, ``T_x`` over positives only, ``T_y`` over negatives
    only: ``V10_i = (T_z(X_i) − T_x(X_i)) / n`` (= ``(1/n) Σ_j ψ(X_i, Y_j)``) and
    ``V01_j = 1 − (T_z(Y_j) − T_y(Y_j)) / m`` (= ``(1/m) Σ_i ψ(X_i, Y_j)``); the AUC is the mean
    of either, returned in the rank-sum form of :func:`auc` (bit-identical to it).
    """
    x = scores[pos]
    yv = scores[~pos]
    m, n = x.size, yv.size
    tz = rankdata(scores, method="average")
    v10 = (tz[pos] - rankdata(x, method="average")) / n
    v01 = 1.0 - (tz[~pos] - rankdata(yv, method="average")) / m
    auc_value = (float(tz[pos].sum()) - m * (m + 1) / 2.0) / (m * n)
    return v10, v01, auc_value


def delong_test(scores_a: Any, scores_b: Any, labels: Any) -> DeLong:
    """DeLong's paired test of two correlated ROC AUCs measured on the same samples.

    Structural components ``V10`` (one per positive) and ``V01`` (one per negative) of each
    scorer come from midranks in O(N log N) (Sun & Xu 2014), see :func:`_structural_components`.
    ``S10`` and ``S01`` are the 2×2 sample covariances (denominator ``m − 1`` resp. ``n − 1``) of
    ``(V10_a, V10_b)`` and ``(V01_a, V01_b)``; ``S = S10 / m + S01 / n`` and, for the contrast
    ``L = (1, −1)``, ``Var(diff) = L S Lᵀ = var(V10_a − V10_b) / m + var(V01_a − V01_b) / n``
    (evaluated in this difference form, so identical scorers give exactly 0).
    ``z = diff / se`` and ``p = 2 (1 − Φ(|z|)) = erfc(|z| / √2)``.

    Degenerate variance: when ``diff == 0`` the result is ``z = 0``, ``p_value = 1`` (no evidence
    of a difference, also when ``se == 0``, e.g. identical score vectors); when ``se == 0`` and
    ``diff != 0`` (e.g. a perfect scorer against a constant one) ``z = ±inf``, ``p_value = 0``.

    Args:
        scores_a: ``(N,)`` scores of the first model.
        scores_b: ``(N,)`` scores of the second model, same samples and order.
        labels: ``(N,)`` labels in {0, 1}.

    Returns:
        A :class:`DeLong`.

    Raises:
        RecsysError: lengths differ, labels outside {0, 1}, NaN in an input, not 1-D, or fewer
            than 2 positives or 2 negatives (the covariances need at least two of each).
    """
    a = _floats(scores_a, "scores_a")
    b = _floats(scores_b, "scores_b")
    y = _labels(labels)
    _same_length(scores_a=a, scores_b=b, labels=y)
    pos = y == 1.0
    m = int(pos.sum())
    n = y.size - m
    if m < 2 or n < 2:
        raise RecsysError(
            f"delong_test needs at least 2 positives and 2 negatives, got {m} and {n}"
        )
    v10_a, v01_a, auc_a = _structural_components(a, pos)
    v10_b, v01_b, auc_b = _structural_components(b, pos)
    var = float(np.var(v10_a - v10_b, ddof=1) / m + np.var(v01_a - v01_b, ddof=1) / n)
    se = math.sqrt(max(var, 0.0))
    diff = auc_a - auc_b
    if diff == 0.0:
        z = 0.0
    elif se == 0.0:
        z = math.copysign(math.inf, diff)
    else:
        z = diff / se
    p_value = float(erfc(abs(z) / math.sqrt(2.0)))
    return DeLong(auc_a=auc_a, auc_b=auc_b, diff=diff, se=se, z=z, p_value=p_value)
