"""The noise stage: label natural noise and inject false positives into train.

Both work on the indexed frame (``user_idx``, ``item_idx``, ``split``, ``rating``, ...) after the
split, and add the Boolean column ``is_noise`` that every later artifact keeps.

**Natural noise** (``noise.natural = "rating"``): ``is_noise = rating < clean_min_rating``. The
test split keeps only clean rows (validation too with ``clean_valid``); the dropped rows are
counted.

**Injection** (``noise.ratio = ρ > 0``): every train user ``u`` gets
``n_u = floor(ρ · |train_u|)`` new train rows, drawn without replacement from the candidate
items (every indexed item except the user's items in any split, or only in train with
``exclude = "train"``), uniformly or with probability proportional to train popularity. The
draw is a Gumbel top-``n_u`` over each user's row of ``log(weight) + Gumbel`` keys with the
excluded items at ``-inf``, which is exactly sequential sampling without replacement; users
are processed in blocks of at most :data:`BLOCK_CELLS` keys, so memory stays bounded on large
catalogues. A user with fewer candidates than ``n_u`` gets all of them and is counted as
``capped``. Injected rows have null rating and timestamp and come after the user's own rows.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl
import torch

from recsys.data.config import NoiseConfig
from recsys.data.sources import ITEM, RATING, ROW, SPLIT, TS, USER
from recsys.data.split import TEST, TRAIN, VALID
from recsys.errors import DataError

NOISE = "is_noise"
UIDX, IIDX = "user_idx", "item_idx"
BLOCK_CELLS = 1 << 24
"""At most this many (user, item) keys per block of the injection draw (64 MiB of float32)."""


def active(cfg: NoiseConfig) -> bool:
    """Whether the dataset carries noise labels."""
    return cfg.ratio > 0 or cfg.natural != "none"


def label_natural(
    df: pl.DataFrame, cfg: NoiseConfig, label: str
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Add ``is_noise`` (natural labels, or all False) and drop noisy test/valid rows.

    Raises:
        DataError: natural noise by rating on rows without a rating.
    """
    counts = {"natural_noisy_train": 0, "test_rows_noisy_dropped": 0}
    if cfg.natural == "none":
        return df.with_columns(pl.lit(False).alias(NOISE)), counts
    missing = df.filter(pl.col(RATING).is_null()).height
    if missing:
        raise DataError(
            f"{label}: noise.natural = 'rating' needs a rating on every row; {missing} rows have "
            "none (map source.columns.rating to the rating or clean-label column)"
        )
    df = df.with_columns((pl.col(RATING) < cfg.clean_min_rating).alias(NOISE))
    noisy = df.get_column(NOISE)
    split = df.get_column(SPLIT)
    counts["natural_noisy_train"] = int((noisy & (split == TRAIN)).sum())
    counts["test_rows_noisy_dropped"] = int((noisy & (split == TEST)).sum())
    drop = pl.col(NOISE) & (pl.col(SPLIT) == TEST)
    if cfg.clean_valid:
        counts["valid_rows_noisy_dropped"] = int((noisy & (split == VALID)).sum())
        drop = pl.col(NOISE) & pl.col(SPLIT).is_in([VALID, TEST])
    return df.filter(~drop), counts


def inject(
    df: pl.DataFrame, cfg: NoiseConfig, n_users: int, n_items: int
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Append ``floor(ratio · |train_u|)`` injected noisy train rows per user (see module doc).

    Args:
        df: the indexed frame with ``user_idx``, ``item_idx``, ``split``, ``_row``, ``is_noise``.
        cfg: the noise settings (``ratio > 0``).
        n_users, n_items: the index sizes.

    Returns:
        The frame with the new rows and counts for the data card.
    """
    train = df.filter(pl.col(SPLIT) == TRAIN)
    t_users = train.get_column(UIDX).to_numpy().astype(np.int64)
    t_items = train.get_column(IIDX).to_numpy().astype(np.int64)
    sizes = np.bincount(t_users, minlength=n_users)
    want = np.floor(cfg.ratio * sizes + 1e-9).astype(np.int64)
    excl = df if cfg.exclude == "all_splits" else train
    e_users = excl.get_column(UIDX).to_numpy().astype(np.int64)
    e_items = excl.get_column(IIDX).to_numpy().astype(np.int64)
    order = np.argsort(e_users, kind="stable")
    e_users, e_items = e_users[order], e_items[order]
    log_w = _log_weights(cfg, t_items, n_items)
    gen = torch.Generator().manual_seed(cfg.seed)
    block = max(1, BLOCK_CELLS // max(n_items, 1))
    new_users: list[np.ndarray] = []
    new_items: list[np.ndarray] = []
    capped = 0
    for start in range(0, n_users, block):
        stop = min(start + block, n_users)
        k = want[start:stop]
        top = int(k.max(initial=0))
        if top == 0:
            continue
        lo, hi = np.searchsorted(e_users, [start, stop])
        keys = _gumbel_keys(stop - start, log_w, gen)
        rows = torch.from_numpy(e_users[lo:hi] - start)
        keys[rows, torch.from_numpy(e_items[lo:hi])] = -math.inf
        vals, idx = torch.topk(keys, min(top, n_items), dim=1)
        take = (torch.arange(idx.shape[1]) < torch.from_numpy(k)[:, None]) & (vals > -math.inf)
        capped += int((take.sum(1).numpy() < k).sum())
        r, c = take.nonzero(as_tuple=True)
        new_users.append((r + start).numpy())
        new_items.append(idx[r, c].numpy())
    users = np.concatenate(new_users) if new_users else np.zeros(0, np.int64)
    items = np.concatenate(new_items) if new_items else np.zeros(0, np.int64)
    last = df.get_column(ROW).max()
    first_row = int(last) + 1 if isinstance(last, int) else 0
    added = pl.DataFrame(
        {
            UIDX: users.astype(np.int32),
            IIDX: items.astype(np.int32),
            SPLIT: np.full(users.size, TRAIN, np.int8),
            ROW: np.arange(first_row, first_row + users.size, dtype=np.int64),
            NOISE: np.ones(users.size, bool),
        }
    )
    added = added.with_columns(
        pl.lit(None, dtype=pl.Float64).alias(RATING), pl.lit(None, dtype=pl.Float64).alias(TS)
    )
    for index_col, orig in ((UIDX, USER), (IIDX, ITEM)):
        if orig in df.columns:
            ids = df.select(index_col, orig).unique(index_col)
            added = added.join(ids, on=index_col, how="left", maintain_order="left")
    missing = [pl.lit(None, dtype=df.schema[c]).alias(c) for c in df.columns if c not in added]
    added = added.with_columns(missing).select(df.columns)
    out = pl.concat([df, added.cast(df.schema)], how="vertical")
    counts = {
        "injected": int(users.size),
        "users_with_injected": int(np.unique(users).size),
        "capped_users": capped,
    }
    return out, counts


def _log_weights(cfg: NoiseConfig, train_items: np.ndarray, n_items: int) -> torch.Tensor:
    if cfg.sampling == "uniform":
        return torch.zeros(n_items)
    pop = torch.from_numpy(np.bincount(train_items, minlength=n_items).astype(np.float32))
    return pop.log()


def _gumbel_keys(n_rows: int, log_w: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """``log_w + Gumbel(0, 1)`` keys of shape ``(n_rows, n_items)``."""
    u = torch.rand((n_rows, log_w.numel()), generator=gen).clamp_(min=1e-20)
    return log_w - torch.log(-torch.log(u))
