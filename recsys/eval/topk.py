"""Deterministic, exact top-k over score rows.

``torch.topk`` returns the right *values* but, when several items share the k-th largest score,
an arbitrary subset of them (it may differ between devices, thread counts and row counts). A
ranking metric then depends on chance. :func:`topk` fixes the convention: items are ordered by
score descending, ties broken by the LOWER item index, so the returned SET and ORDER are a pure
function of the row.

Fast path: one ``torch.topk`` with ``k + 1`` entries. If the ``(k+1)``-th value is strictly
below the k-th, the top-k set is unique and only the order inside the k entries has to be fixed
(two small stable sorts of ``(B, k)``). Only rows whose k-th value equals the ``(k+1)``-th (a tie
straddling the cut) are recomputed, on those rows only.
"""

from __future__ import annotations

import torch
from torch import Tensor


def topk(scores: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Top-``k`` entries of every row, ordered by (score descending, index ascending).

    Masked entries should be ``-inf``; they rank after every finite score and, among
    themselves, by index. NaN is ranked above everything (``torch.topk``'s convention); callers
    that must reject NaN can test the first returned value.

    Args:
        scores: ``(B, n)`` floating scores.
        k: number of entries per row; clipped to ``n``.

    Returns:
        ``(values (B, k'), indices (B, k'))`` with ``k' = min(k, n)``, indices int64.
    """
    if scores.dim() != 2:
        raise ValueError(f"topk expects a (B, n) matrix, got shape {tuple(scores.shape)}")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    n_rows, n = scores.shape
    k = min(k, n)
    if k == 0 or n_rows == 0:
        empty = scores.new_empty((n_rows, k))
        return empty, torch.empty((n_rows, k), dtype=torch.int64, device=scores.device)
    if k == n:
        # The whole row: a stable descending sort keeps equal scores in index order.
        values, indices = torch.sort(scores, dim=1, descending=True, stable=True)
        return values, indices

    values, indices = torch.topk(scores, k + 1, dim=1, largest=True, sorted=True)
    tied = values[:, k - 1] == values[:, k]
    values, indices = values[:, :k], indices[:, :k]
    if bool(tied.any()):
        rows = tied.nonzero().squeeze(1)
        fixed_values, fixed_indices = _exact_tied_rows(scores[rows], values[rows], k)
        values = values.index_copy(0, rows, fixed_values)
        indices = indices.index_copy(0, rows, fixed_indices)
    return _order(values, indices)


def _exact_tied_rows(sub: Tensor, values: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Exact top-k set for rows whose k-th score is tied beyond the cut.

    Every item scoring strictly above the k-th value ``t`` is in the set (fewer than ``k`` of
    them, and ``torch.topk`` found them all); the remaining places go to the lowest-indexed
    items scoring exactly ``t``.

    Args:
        sub: ``(R, n)`` score rows.
        values: ``(R, k)`` descending top-k values of those rows (from ``torch.topk``).
        k: list length.

    Returns:
        ``(values (R, k), indices (R, k))`` in no particular order.
    """
    n = sub.shape[1]
    threshold = values[:, k - 1 : k]
    above = sub > threshold
    at = sub == threshold
    n_above = above.sum(dim=1, keepdim=True)
    # Rank of each tied item among the tied items of its row (1-based, by index).
    tie_rank = torch.cumsum(at, dim=1)
    keep = above | (at & (tie_rank <= k - n_above))
    # Exactly k kept per row; gather their column indices in index order.
    col = torch.arange(n, device=sub.device).expand_as(sub)
    sentinel = torch.full_like(col, n)
    kept_cols = torch.where(keep, col, sentinel)
    indices = torch.topk(kept_cols, k, dim=1, largest=False, sorted=True).values
    return torch.gather(sub, 1, indices), indices


def _order(values: Tensor, indices: Tensor) -> tuple[Tensor, Tensor]:
    """Order ``(B, k)`` entries by (value descending, index ascending)."""
    indices, perm = torch.sort(indices, dim=1)
    values = torch.gather(values, 1, perm)
    values, perm = torch.sort(values, dim=1, descending=True, stable=True)
    indices = torch.gather(indices, 1, perm)
    return values, indices
