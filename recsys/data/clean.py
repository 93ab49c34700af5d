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
"""

from __future__ import annotations

from typing import Any

import polars as pl

from recsys.data.config import CleanConfig
from recsys.data.sources import ITEM, RATING, ROW, SPLIT, TS, USER
from recsys.errors import DataError


def frame_stats(df: pl.DataFrame, step: str, **extra: Any) -> dict[str, Any]:
    """``{step, rows, users, items, density}`` of a standard frame (density = rows / (U·I))."""
    rows, users, items = df.select(pl.len(), pl.col(USER).n_unique(), pl.col(ITEM).n_unique()).row(
        0
    )
    density = rows / (users * items) if users and items else 0.0
    return {"step": step, "rows": rows, "users": users, "items": items, "density": density, **extra}


def dedup(lf: pl.LazyFrame, policy: str, by_split: bool = False) -> pl.LazyFrame:
    """Drop duplicate (user, item) rows, keeping the earliest or latest (see module doc).

    Args:
        lf: a standard frame with ``_row``.
        policy: ``"none"``, ``"first"`` or ``"last"``.
        by_split: deduplicate within each ``split`` only (pre-split sources).
    """
    if policy == "none":
        return lf
    keys = [USER, ITEM, SPLIT] if by_split else [USER, ITEM]
    return (
        lf.sort([TS, ROW], nulls_last=False)
        .unique(subset=keys, keep="first" if policy == "first" else "last", maintain_order=True)
        .sort(ROW)
    )


def threshold(lf: pl.LazyFrame, min_rating: float | None) -> pl.LazyFrame:
    """Keep rows with ``rating >= min_rating`` (all rows when ``min_rating`` is None)."""
    if min_rating is None:
        return lf
    return lf.filter(pl.col(RATING) >= min_rating)


def kcore(
    df: pl.DataFrame, user_core: int, item_core: int
) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """Iterative k-core (each round vectorised); returns the frame and per-round statistics."""
    rounds: list[dict[str, Any]] = []
    if user_core <= 1 and item_core <= 1:
        return df, rounds
    while True:
        keep = (pl.len().over(USER) >= user_core) & (pl.len().over(ITEM) >= item_core)
        new = df.filter(keep)
        if new.height == df.height:
            return df, rounds
        df = new
        rounds.append(frame_stats(df, f"k-core round {len(rounds) + 1}"))
        if df.height == 0:
            return df, rounds


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
