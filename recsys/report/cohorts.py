"""User cohorts, item popularity groups and statistics of recommended top-K lists.

Inputs are integer indices and counts that the caller builds from the dataset: per-user train
interaction counts, per-item train counts (the number of train users who interacted with the
item), and the ``(users, K)`` matrix of recommended item indices, rows aligned with the
evaluated users.

* :func:`activity_cohorts` labels users by activity quantile; :func:`cohort_table` averages
  per-user metrics within each label.
* :func:`popularity_groups` splits the catalogue into head and tail items.
* :func:`list_stats` measures the lists themselves: coverage, novelty, average recommendation
  popularity (ARP), head share and the Gini index of exposure.
* :func:`item_group_recall` is recall@k restricted to head and to tail test items.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
import polars as pl

from recsys.errors import RecsysError

TestItems = Sequence[np.ndarray] | tuple[np.ndarray, np.ndarray]
"""Each user's test items: a list of per-user index arrays, or a CSR tuple ``(indptr,
indices)`` (a ``tuple`` is always read as CSR)."""


def _int_array(a: np.ndarray, name: str, ndim: int) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _check_items(items: np.ndarray, n_items: int, name: str) -> None:
    if items.size and (items.min() < 0 or items.max() >= n_items):
        raise ValueError(
            f"{name} holds item indices outside 0..{n_items - 1} "
            f"(min {items.min()}, max {items.max()})"
        )


def activity_cohorts(train_counts: np.ndarray, users: np.ndarray, n_bins: int = 4) -> np.ndarray:
    """Activity-quantile label of each evaluated user, e.g. ``"Q1 (1–23)"``.

    ``c = train_counts[users]`` are the evaluated users' numbers of train interactions. The
    inner edges are ``np.quantile(c, [1/n_bins, …, (n_bins-1)/n_bins])`` (linear
    interpolation), and a user's bin is the number of edges strictly below its count
    (``np.searchsorted(edges, c, side="left")``): a count equal to an edge falls in the lower
    bin, and users with equal counts always share a bin. Bins left empty (when ties make edges
    coincide, e.g. fewer distinct counts than bins) are dropped and the others renumbered
    ``Q1..Qm`` in increasing activity. Each label carries the bin's observed count range
    ``lo–hi`` (an en dash; ``lo = hi`` is written ``"Q1 (1–1)"``).

    Args:
        train_counts: ``(n_users,)`` integer train interactions per user.
        users: ``(n_eval,)`` indices into ``train_counts`` of the evaluated users.
        n_bins: number of quantile bins asked for (at most this many are returned).

    Returns:
        ``(n_eval,)`` array of str labels, aligned with ``users``.

    Raises:
        ValueError: non-integer inputs or ``n_bins < 1``.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    counts = _int_array(train_counts, "train_counts", 1)[_int_array(users, "users", 1)]
    if counts.size == 0:
        return np.empty(0, dtype=str)
    edges = np.quantile(counts, np.arange(1, n_bins) / n_bins)
    raw = np.searchsorted(edges, counts, side="left")
    _, dense = np.unique(raw, return_inverse=True)
    n_used = int(dense.max()) + 1
    lo = np.full(n_used, np.iinfo(np.int64).max, dtype=np.int64)
    hi = np.full(n_used, np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(lo, dense, counts)
    np.maximum.at(hi, dense, counts)
    names = np.array([f"Q{b + 1} ({lo[b]}–{hi[b]})" for b in range(n_used)])
    return names[dense]


def popularity_groups(item_counts: np.ndarray, head_share: float = 0.2) -> np.ndarray:
    """``(n_items,)`` bool, True for head items.

    Head items are the ``ceil(head_share · n_items)`` most popular items by train count, ties
    broken by lower item index: ``head_share`` is a fraction of the catalogue (of items), not
    of interactions. Everything else is tail.

    Raises:
        ValueError: non-integer counts or ``head_share`` outside ``[0, 1]``.
    """
    if not 0.0 <= head_share <= 1.0:
        raise ValueError(f"head_share must be in [0, 1], got {head_share}")
    counts = _int_array(item_counts, "item_counts", 1)
    n_items = counts.size
    # The small tolerance keeps e.g. 0.7 · 10 = 7.000000000000001 at 7 items.
    n_head = min(n_items, math.ceil(head_share * n_items - 1e-9))
    order = np.argsort(-counts, kind="stable")
    head = np.zeros(n_items, dtype=bool)
    head[order[:n_head]] = True
    return head


def _natural_key(label: str) -> list[tuple[int, int | str]]:
    """Sort key reading digit runs as numbers, so ``"Q10"`` sorts after ``"Q9"``."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", label)]


def cohort_table(
    per_user: pl.DataFrame, labels: np.ndarray, metrics: Sequence[str]
) -> pl.DataFrame:
    """Mean of each metric within each cohort: columns ``cohort, users, *metrics``.

    Row ``i`` of ``per_user`` belongs to cohort ``labels[i]``. Rows come in label order, digit
    runs compared as numbers (``"Q1 (…)"``, ``"Q2 (…)"``, …, ``"Q10 (…)"``); ``users`` is the
    number of rows in the cohort.

    Raises:
        ValueError: ``labels`` not aligned with the rows of ``per_user``.
        RecsysError: a metric that is not a column of ``per_user``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != per_user.height:
        raise ValueError(
            f"labels has shape {labels.shape}, per_user has {per_user.height} rows; they must align"
        )
    missing = [m for m in metrics if m not in per_user.columns]
    if missing:
        raise RecsysError(
            f"per-user metrics have no column(s) {missing} (columns: {per_user.columns})"
        )
    frame = per_user.select([pl.col(m).cast(pl.Float64) for m in metrics]).with_columns(
        pl.Series("cohort", labels.astype(str), dtype=pl.String)
    )
    table = frame.group_by("cohort").agg(
        pl.len().cast(pl.Int64).alias("users"), *[pl.col(m).mean() for m in metrics]
    )
    order = sorted(table["cohort"].to_list(), key=_natural_key)
    rank = pl.DataFrame({"cohort": order, "_rank": list(range(len(order)))})
    return table.join(rank, on="cohort").sort("_rank").drop("_rank")


def list_stats(
    topk: np.ndarray, item_counts: np.ndarray, n_users_train: int, head: np.ndarray
) -> dict[str, float]:
    """Catalogue and popularity statistics of the recommended lists.

    Over the ``S = users × K`` recommended slots, with ``c_i`` item ``i``'s train count
    (number of train users who interacted with it) and ``N = n_users_train``:

    * ``coverage`` = distinct recommended items / ``n_items``;
    * ``novelty`` = mean over slots of the self-information ``-log2(max(c_i, 1) / N)`` (an item
      without train interactions counts as seen once, so its novelty is finite, ``log2 N``);
    * ``arp`` (average recommendation popularity) = mean over slots of ``c_i / N``;
    * ``head_share`` = fraction of slots holding a head item;
    * ``gini`` = Gini index of exposure ``e_i`` (slots holding item ``i``) over ALL
      ``n_items`` items, never-recommended ones included: with ``e`` sorted ascending,
      ``G = 2 Σ_i i·e_(i) / (n Σ e) - (n + 1) / n`` (``i = 1..n``); 0 for uniform exposure,
      ``(n - 1) / n`` when one item fills every slot.

    Args:
        topk: ``(users, K)`` recommended item indices.
        item_counts: ``(n_items,)`` train count per item.
        n_users_train: number of train users ``N``.
        head: ``(n_items,)`` bool head mask (:func:`popularity_groups`).

    Raises:
        ValueError: no slots, indices outside the catalogue, mismatched shapes or
            ``n_users_train < 1``.
    """
    slots = _int_array(topk, "topk", 2).ravel()
    counts = _int_array(item_counts, "item_counts", 1)
    head = np.asarray(head, dtype=bool)
    n_items = counts.size
    if head.shape != (n_items,):
        raise ValueError(f"head has shape {head.shape}, item_counts has {(n_items,)}")
    if slots.size == 0:
        raise ValueError("list_stats needs at least one recommended slot")
    if n_users_train < 1:
        raise ValueError(f"n_users_train must be >= 1, got {n_users_train}")
    _check_items(slots, n_items, "topk")
    slot_counts = counts[slots].astype(np.float64)
    exposure = np.sort(np.bincount(slots, minlength=n_items)).astype(np.float64)
    ranks = np.arange(1, n_items + 1, dtype=np.float64)
    gini = (
        2.0 * float(ranks @ exposure) / (n_items * float(exposure.sum()))
        - (n_items + 1.0) / n_items
    )
    return {
        "coverage": np.unique(slots).size / n_items,
        "novelty": float(np.mean(-np.log2(np.maximum(slot_counts, 1.0) / n_users_train))),
        "arp": float(np.mean(slot_counts / n_users_train)),
        "head_share": float(np.mean(head[slots])),
        "gini": gini,
    }


def _to_csr(test_items: TestItems, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(test_items, tuple):
        indptr = _int_array(test_items[0], "indptr", 1)
        indices = _int_array(test_items[1], "indices", 1)
    else:
        lengths = np.fromiter((len(a) for a in test_items), dtype=np.int64, count=len(test_items))
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        indices = (
            _int_array(np.concatenate([np.asarray(a) for a in test_items]), "test_items", 1)
            if len(test_items) and indptr[-1] > 0
            else np.empty(0, dtype=np.int64)
        )
    if indptr.shape != (n_users + 1,) or indptr[0] != 0 or indptr[-1] != indices.size:
        raise ValueError(
            f"test items must describe {n_users} users (indptr of length {n_users + 1} "
            f"from 0 to len(indices)), got indptr of length {indptr.size}"
        )
    if np.any(np.diff(indptr) < 0):
        raise ValueError("indptr must be non-decreasing")
    return indptr, indices


def item_group_recall(
    topk: np.ndarray, test_items: TestItems, head: np.ndarray, k: int
) -> dict[str, float]:
    """Recall@k restricted to head test items and to tail test items.

    For user ``u`` with test items ``T_u`` and the first ``k`` recommended items ``R_u``:
    ``recall_head_u = |R_u ∩ T_u ∩ H| / |T_u ∩ H|`` over users with ``|T_u ∩ H| > 0``, and
    likewise for the tail ``¬H``; each is averaged over those users only (NaN when there are
    none). Repeated items within a list or a test set count once. Vectorised over users with
    sorted ``user · n_items + item`` keys.

    Args:
        topk: ``(users, K ≥ k)`` recommended item indices, rows aligned with ``test_items``.
        test_items: per-user test items, a list of arrays or a CSR ``(indptr, indices)`` tuple.
        head: ``(n_items,)`` bool head mask.
        k: cut-off.

    Returns:
        ``{"head", "tail"}``: the two mean recalls; ``{"head_users", "tail_users"}``: how many
        users each mean is over.

    Raises:
        ValueError: shapes that do not align, item indices outside the catalogue, or ``k``
            outside ``1..K``.
    """
    top = _int_array(topk, "topk", 2)
    head = np.asarray(head, dtype=bool)
    if head.ndim != 1:
        raise ValueError(f"head must be 1-D, got shape {head.shape}")
    n_users, width = top.shape
    n_items = head.size
    if not 1 <= k <= width:
        raise ValueError(f"cut-off k={k} outside 1..{width} (the list length)")
    indptr, indices = _to_csr(test_items, n_users)
    _check_items(indices, n_items, "test_items")
    _check_items(top[:, :k], n_items, "topk")

    rows = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(indptr))
    test_keys = np.unique(rows * n_items + indices)
    test_users = test_keys // n_items
    test_head = head[test_keys % n_items]
    n_head = np.bincount(test_users[test_head], minlength=n_users)
    n_tail = np.bincount(test_users[~test_head], minlength=n_users)

    # Recall ignores the rank within k, so sorting each row lets duplicates be dropped.
    rec = np.sort(top[:, :k], axis=1)
    first = np.ones_like(rec, dtype=bool)
    first[:, 1:] = rec[:, 1:] != rec[:, :-1]
    keys = np.arange(n_users, dtype=np.int64)[:, None] * n_items + rec
    pos = np.minimum(np.searchsorted(test_keys, keys), max(test_keys.size - 1, 0))
    hit = first & (test_keys[pos] == keys) if test_keys.size else np.zeros_like(first)
    rec_head = head[rec]
    hits_head = np.count_nonzero(hit & rec_head, axis=1)
    hits_tail = np.count_nonzero(hit & ~rec_head, axis=1)

    def mean_recall(hits: np.ndarray, n_rel: np.ndarray) -> float:
        mask = n_rel > 0
        return float(np.mean(hits[mask] / n_rel[mask])) if mask.any() else float("nan")

    return {
        "head": mean_recall(hits_head, n_head),
        "tail": mean_recall(hits_tail, n_tail),
        "head_users": float(np.count_nonzero(n_head)),
        "tail_users": float(np.count_nonzero(n_tail)),
    }
