"""Cleaning: dedup → rating threshold → iterative k-core, with statistics after every step.

Rules (also stated in the data card):

* **dedup** ``first`` / ``last``: among rows with the same (user, item) (and the same split for
  pre-split sources), keep the earliest / latest by ``timestamp``, ties broken by input row
  order; rows without a timestamp count as the earliest. ``none`` keeps every row.
* **threshold**: keep rows with ``rating >= min_rating``; rows without a rating are dropped
  when a threshold is set.
* **k-core**: repeat rounds until nothing changes; each round keeps the rows whose user has at
  least ``user_core`` rows and whose item has at least ``item_core`` rows, both counted on the
  frame at the start of the round. Rows (not distinct pairs) are counted.

Every step works on integer codes of the ids (:func:`id_codes`): equal ids have equal codes,
so counts, pairs and groups are those of the ids themselves. :func:`recsys.data.prepare.build`
encodes the ids once after reading (``Enum`` columns, whose codes are free); any other id
column (strings, integers) is ranked first.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from recsys.data.config import CleanConfig
from recsys.data.sources import ITEM, RATING, ROW, SPLIT, TS, USER
from recsys.errors import DataError


def id_codes(ids: pl.Series) -> np.ndarray:
    """Non-negative integer codes of an id column: equal ids ↔ equal codes.

    ``Enum`` columns give their physical codes (no work; they sort like the ids for the columns
    of :func:`recsys.data.prepare.encode_ids`); other dtypes are ranked (dense, 0-based).
    """
    codes = ids.to_physical() if isinstance(ids.dtype, pl.Enum) else ids.rank("dense") - 1
    return codes.to_numpy()


def n_distinct(codes: np.ndarray) -> int:
    """The number of distinct values of non-negative integer codes (by ``bincount``)."""
    return int(np.count_nonzero(np.bincount(codes)))


def pair_codes(df: pl.DataFrame, by_split: bool = False) -> np.ndarray:
    """One Int64 code per (user, item) (and split when ``by_split``): ``u·I + i`` (``·3 + s``)."""
    users = id_codes(df.get_column(USER)).astype(np.int64)
    items = id_codes(df.get_column(ITEM)).astype(np.int64)
    key = users * (int(items.max(initial=0)) + 1) + items
    if by_split:
        key = key * 3 + df.get_column(SPLIT).to_numpy()
    return key


def step_stats(step: str, rows: int, users: int, items: int, **extra: Any) -> dict[str, Any]:
    """``{step, rows, users, items, density}`` with density = rows / (users · items)."""
    density = rows / (users * items) if users and items else 0.0
    return {"step": step, "rows": rows, "users": users, "items": items, "density": density, **extra}


def code_stats(step: str, users: np.ndarray, items: np.ndarray, **extra: Any) -> dict[str, Any]:
    """:func:`step_stats` of rows given by their user and item codes (non-negative ints)."""
    return step_stats(step, int(users.size), n_distinct(users), n_distinct(items), **extra)


def frame_stats(df: pl.DataFrame, step: str, **extra: Any) -> dict[str, Any]:
    """``{step, rows, users, items, density}`` of a standard frame (density = rows / (U·I))."""
    return code_stats(step, id_codes(df.get_column(USER)), id_codes(df.get_column(ITEM)), **extra)


def in_row_order(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` sorted by ``_row`` (as it is when already in input order: no sort)."""
    return df if df.get_column(ROW).is_sorted() else df.sort(ROW)


def keep_mask(n: int, rows: np.ndarray) -> np.ndarray:
    """A Boolean mask of length ``n`` that is True at the positions ``rows``."""
    mask = np.zeros(n, dtype=bool)
    mask[rows] = True
    return mask


def dedup(lf: pl.LazyFrame, policy: str, by_split: bool = False) -> pl.LazyFrame:
    """Drop duplicate (user, item) rows, keeping the earliest or latest (see module doc).

    One sort of the rows by (pair code, timestamp with nulls first, ``_row``); the first
    (``first``) or last (``last``) row of each pair is kept; the rows stay in input order.

    Args:
        lf: a standard frame with ``_row``.
        policy: ``"none"``, ``"first"`` or ``"last"``.
        by_split: deduplicate within each ``split`` only (pre-split sources).
    """
    if policy == "none":
        return lf
    df = lf.collect()
    if df.height == 0:
        return df.lazy()
    key = pair_codes(df, by_split)
    order = (
        df.select(pl.Series("_key", key), TS, ROW)
        .select(pl.arg_sort_by("_key", TS, ROW))
        .to_series()
        .to_numpy()
    )
    sorted_key = key[order]
    change = sorted_key[1:] != sorted_key[:-1]
    ends = np.concatenate(([True], change) if policy == "first" else (change, [True]))
    return in_row_order(df.filter(keep_mask(df.height, order[ends]))).lazy()


def threshold(lf: pl.LazyFrame, min_rating: float | None) -> pl.LazyFrame:
    """Keep rows with ``rating >= min_rating`` (all rows when ``min_rating`` is None)."""
    if min_rating is None:
        return lf
    return lf.filter(pl.col(RATING) >= min_rating)


def kcore(
    df: pl.DataFrame, user_core: int, item_core: int
) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """Iterative k-core on id codes (``bincount`` per round); the frame and per-round stats.

    Each round's statistics come from the counts the next round starts from.
    """
    rounds: list[dict[str, Any]] = []
    if user_core <= 1 and item_core <= 1:
        return df, rounds
    users, items = id_codes(df.get_column(USER)), id_codes(df.get_column(ITEM))
    rows = np.arange(df.height)
    per_user, per_item = np.bincount(users), np.bincount(items)
    while True:
        keep = (per_user[users] >= user_core) & (per_item[items] >= item_core)
        if keep.all():
            break
        users, items, rows = users[keep], items[keep], rows[keep]
        per_user = np.bincount(users, minlength=per_user.size)
        per_item = np.bincount(items, minlength=per_item.size)
        step = f"k-core round {len(rounds) + 1}"
        n_users, n_items = int(np.count_nonzero(per_user)), int(np.count_nonzero(per_item))
        rounds.append(step_stats(step, int(rows.size), n_users, n_items))
        if rows.size == 0:
            break
    return (df.filter(keep_mask(df.height, rows)) if rounds else df), rounds


def clean(
    df: pl.DataFrame, cfg: CleanConfig, label: str, by_split: bool = False
) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """Apply dedup, threshold and k-core; return the frame and the step statistics.

    Args:
        df: the standard frame (with ``_row``, and ``split`` when ``by_split``).
        cfg: the cleaning config.
        label: names the input in error messages (the file).
        by_split: pre-split source: dedup within each split.

    Raises:
        DataError: the frame is empty after a step (naming the step and its settings).
    """
    steps: list[dict[str, Any]] = []
    df = dedup(df.lazy(), cfg.dedup, by_split).collect()
    steps.append(frame_stats(df, "dedup", policy=cfg.dedup))
    df = threshold(df.lazy(), cfg.min_rating).collect()
    steps.append(frame_stats(df, "threshold", min_rating=cfg.min_rating))
    if df.height == 0:
        raise DataError(
            f"{label}: dataset empty after rating threshold (min_rating={cfg.min_rating})"
        )
    df, rounds = kcore(df, cfg.user_core, cfg.item_core)
    steps.extend(rounds)
    steps.append(
        frame_stats(
            df, "k-core", user_core=cfg.user_core, item_core=cfg.item_core, rounds=len(rounds)
        )
    )
    if df.height == 0:
        raise DataError(
            f"{label}: dataset empty after k-core (user_core={cfg.user_core}, "
            f"item_core={cfg.item_core})"
        )
    return df, steps
