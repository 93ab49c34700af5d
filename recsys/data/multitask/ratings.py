"""Tasks ``watch`` and ``like`` from a rated, timestamped log (see :class:`RatingTasks`).

Samples of a split: each of its rated events (``watch = 1``; ``like = rating >= like_min``,
defined) and ``negatives`` items per event drawn uniformly from the items the user rated in
no split (``watch = 0``; ``like`` undefined: it is conditional on watching, so it is masked,
PLE's sample-space indicator). Every sample carries the history of its event (a negative
shares its positive's), built by :func:`recsys.data.multitask.sequences.last_before`.

Top-N targets: the split's liked events; the train graph and masking stay the watched train
events.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import torch

from recsys.data.features.tables import COMPANION, align, companion, present_mask, read_table
from recsys.data.multitask.config import RATING_TASKS, ColumnSpec, RatingTasks
from recsys.data.multitask.encode import encode
from recsys.data.multitask.sequences import last_before
from recsys.data.multitask.tensors import (
    ITEM_FIELD,
    SPLITS,
    USER_FIELD,
    FeatureTable,
    MultiTaskData,
    TaskRows,
)
from recsys.data.sources import resolve_path
from recsys.errors import ConfigError, DataError
from recsys.spec import DataSpec
from recsys.types import Interactions

_MAX_ROUNDS = 100


def load_events(prepared_dir: Path) -> pl.DataFrame:
    """Every split's events ``(user, item, rating, time, split)`` (split 0/1/2 = train/valid/test).

    Raises:
        DataError: a split has events without a rating or a timestamp.
    """
    frames = []
    for code, split in enumerate(SPLITS):
        df = pl.read_parquet(prepared_dir / f"{split}.parquet")
        for column in ("rating", "timestamp"):
            if column not in df.columns or df.get_column(column).null_count():
                raise DataError(
                    f"{prepared_dir / f'{split}.parquet'}: multitask.ratings needs a {column} "
                    f"on every event; the {split} split has events without one (set "
                    f"source.columns.{column})"
                )
        frames.append(
            df.select(
                pl.col("user_idx").cast(pl.Int64).alias("user"),
                pl.col("item_idx").cast(pl.Int64).alias("item"),
                pl.col("rating").cast(pl.Float64),
                pl.col("timestamp").cast(pl.Float64).alias("time"),
                pl.lit(code, dtype=pl.Int8).alias("split"),
            )
        )
    return pl.concat(frames)


def sample_negatives(
    users: np.ndarray, rated_keys: np.ndarray, n_items: int, per_event: int, seed: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """``per_event`` items per event, uniform over the items its user rated in no split.

    Rejected draws are redrawn in rounds (vectorised); after 100 rounds the rest are
    dropped (a user who rated nearly every item).

    Returns:
        ``(event index of each negative, item, number dropped)``.
    """
    rng = np.random.default_rng(seed)
    owner = np.repeat(np.arange(users.size, dtype=np.int64), per_event)
    items = np.full(owner.size, -1, dtype=np.int64)
    todo = np.arange(owner.size)
    for _ in range(_MAX_ROUNDS):
        if todo.size == 0:
            break
        draw = rng.integers(0, n_items, todo.size)
        keys = users[owner[todo]] * n_items + draw
        pos = np.searchsorted(rated_keys, keys)
        hit = rated_keys[np.clip(pos, 0, rated_keys.size - 1)] == keys
        items[todo[~hit]] = draw[~hit]
        todo = todo[hit]
    keep = items >= 0
    return owner[keep], items[keep], int((~keep).sum())


def _histories(
    events: pl.DataFrame, cfg: RatingTasks, q_users: np.ndarray, q_times: np.ndarray
) -> np.ndarray:
    """``(Q, n_behaviours, L)`` sequences of each query's strictly earlier events."""
    rating = events.get_column("rating").to_numpy()
    keep = {
        "watched": np.ones(rating.size, dtype=bool),
        "liked": rating >= cfg.like_min_rating,
        "disliked": rating <= cfg.dislike_max_rating,
    }
    users = events.get_column("user").to_numpy()
    times = events.get_column("time").to_numpy()
    items = events.get_column("item").to_numpy()
    out = [
        last_before(users[m], times[m], items[m], q_users, q_times, cfg.seq_len)
        for m in (keep[b] for b in cfg.behaviours)
    ]
    return np.stack(out, 1) if out else np.zeros((q_users.size, 0, cfg.seq_len), np.int64)


def _table_path(value: str, key: str, base_dir: Path | None, source_file: Path | None) -> Path:
    if value:
        path = resolve_path(value, base_dir)
    elif source_file is None:
        raise ConfigError(
            f"multitask.ratings.{key}: there is no single interaction file to find the default "
            f"beside; set multitask.ratings.{key}"
        )
    else:
        path = companion(source_file, COMPANION["path"] if key == "item_table" else ".user")
    if not path.is_file():
        raise DataError(f"{path}: file not found (multitask.ratings.{key})")
    return path


def entity_table(
    path: Path,
    id_column: str,
    field: str,
    ids: np.ndarray,
    columns: dict[str, ColumnSpec],
    key: str,
) -> FeatureTable:
    """The features of ``ids`` (in index order) from an atomic table, with the id field
    (code ``idx + 1``) first; entities without a row get code 0 / zeros."""
    table = read_table(path)
    aligned = align(table, id_column, ids, key)
    n = len(ids)
    id_codes = (np.arange(n, dtype=np.int64) + 1, n + 1)
    return encode(
        aligned,
        columns,
        fit=present_mask(aligned),
        where=str(path),
        extra_sparse={field: id_codes},
    )


def build_rating_tasks(
    cfg: RatingTasks,
    prepared_dir: Path,
    spec: DataSpec,
    base_dir: Path | None,
    source_file: Path | None,
) -> tuple[MultiTaskData, dict[str, Interactions]]:
    """The multi-task samples of a prepared rated log, and the top-N targets per split.

    Returns:
        ``(data, {"valid": liked valid events, "test": liked test events})``.

    Raises:
        DataError: events without rating/timestamp, missing tables or columns, a split
            without liked events.
    """
    events = load_events(prepared_dir).sort(["user", "time", "split"], maintain_order=True)
    users = events.get_column("user").to_numpy()
    items = events.get_column("item").to_numpy()
    times = events.get_column("time").to_numpy()
    split = events.get_column("split").to_numpy()
    liked = events.get_column("rating").to_numpy() >= cfg.like_min_rating
    rated = np.unique(users * spec.n_items + items)
    neg_owner, neg_items, dropped = sample_negatives(
        users, rated, spec.n_items, cfg.negatives, cfg.seed
    )
    histories = torch.from_numpy(_histories(events, cfg, users, times))

    rows: dict[str, TaskRows] = {}
    card: dict[str, object] = {
        "tasks": list(RATING_TASKS),
        "behaviours": list(cfg.behaviours),
        "seq_len": cfg.seq_len,
        "negatives_per_event": cfg.negatives,
        "negatives_dropped": dropped,
    }
    for code, name in enumerate(SPLITS):
        pos = np.nonzero(split == code)[0]
        neg = neg_owner[split[neg_owner] == code]
        neg_items_s = neg_items[split[neg_owner] == code]
        n_pos, n_neg = pos.size, neg.size
        labels = np.zeros((n_pos + n_neg, 2), dtype=np.float32)
        labels[:n_pos, 0] = 1.0
        labels[:n_pos, 1] = liked[pos]
        mask = np.zeros((n_pos + n_neg, 2), dtype=bool)
        mask[:, 0] = True
        mask[:n_pos, 1] = True
        owner = np.concatenate([pos, neg])
        rows[name] = TaskRows(
            labels=torch.from_numpy(labels),
            mask=torch.from_numpy(mask),
            users=torch.from_numpy(users[owner].astype(np.int64)),
            items=torch.from_numpy(np.concatenate([items[pos], neg_items_s]).astype(np.int64)),
            features=FeatureTable.empty(n_pos + n_neg),
            history=torch.from_numpy(owner.astype(np.int64)),
        )
        lengths = (histories[pos] > 0).sum(-1).float().mean(0) if n_pos else None
        card[name] = {
            "samples": n_pos + n_neg,
            "watch_positives": n_pos,
            "like_labelled": n_pos,
            "like_positives": int(liked[pos].sum()),
            "mean_history": {
                b: round(float(lengths[i]), 2) if lengths is not None else 0.0
                for i, b in enumerate(cfg.behaviours)
            },
        }

    targets: dict[str, Interactions] = {}
    rank_histories: dict[str, torch.Tensor] = {}
    for code, name in enumerate(SPLITS[1:], start=1):
        in_split = split == code
        sel = in_split & liked
        if not sel.any():
            raise DataError(
                f"multitask.ratings: the {name} split has no liked events (rating >= "
                f"{cfg.like_min_rating}); nothing to rank for"
            )
        targets[name] = Interactions(
            torch.from_numpy(users[sel].astype(np.int64)),
            torch.from_numpy(items[sel].astype(np.int64)),
        )
        start = np.full(spec.n_users, np.inf)
        np.minimum.at(start, users[in_split], times[in_split])
        rank_histories[name] = torch.from_numpy(
            _histories(events, cfg, np.arange(spec.n_users), start)
        )

    user_path = _table_path(cfg.user_table, "user_table", base_dir, source_file)
    item_path = _table_path(cfg.item_table, "item_table", base_dir, source_file)
    data = MultiTaskData(
        tasks=RATING_TASKS,
        rows=rows,
        user_features=entity_table(
            user_path, "user_id", USER_FIELD, spec.user_ids, dict(cfg.user_columns), "user_table"
        ),
        item_features=entity_table(
            item_path, "item_id", ITEM_FIELD, spec.item_ids, dict(cfg.item_columns), "item_table"
        ),
        behaviours=tuple(cfg.behaviours),
        histories=histories,
        rank_histories=rank_histories,
        rank_task_weights=dict(cfg.rank),
        card=card,
    )
    return data, targets
