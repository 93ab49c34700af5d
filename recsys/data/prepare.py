"""Prepare a dataset: read → clean → split → id maps → content-hashed artifacts → DataSpec.

Artifacts live in ``<cache_dir>/<name>-<hash[:12]>/`` and are written as one directory
atomically (a failed or killed run leaves nothing behind):

* ``train.parquet``, ``valid.parquet``, ``test.parquet``: ``user_idx`` (Int32), ``item_idx``
  (Int32), ``rating`` (Float64, may be null), ``timestamp`` (Float64, may be null),
  ``is_noise`` (Boolean: injected or natural noise, see :mod:`recsys.data.noise`), sorted by
  ``user_idx`` then input row order (injected rows last);
* ``users.parquet`` (``user_idx``, ``user_id``), ``items.parquet`` (``item_idx``, ``item_id``);
* ``card.json``: the data card.

The cache key is the SHA-256 of :data:`FORMAT_VERSION`, the data config with defaults filled
in (``cache_dir`` excluded: it says where, not what) and the SHA-256 of every input file's
bytes (with its role and file name, not its absolute path, so the key is the same on every
machine). A second call with the same key is a cache hit.

**Id maps** are dense ``0..n-1`` indices over the users and items of the *train* split, in
sorted order of the original id: numerically when every id is an integer (so LightGCN lists
keep ``user_idx == uid``), else lexicographically. Valid/test rows whose user or item is not in
train are dropped and counted in the card (``dropped``), as are the users and items that occur
only in valid/test (common for global temporal splits). An empty train or test split is an
error.

Relative paths in the config (``source.path``, ``split.given.*``, ``cache_dir``) resolve against
``base_dir`` (the config file's directory) when they exist there, else the working directory.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from recsys import atomic
from recsys.config import dump
from recsys.data import builtin, lightgcn_lists
from recsys.data.clean import (
    clean,
    code_stats,
    frame_stats,
    id_codes,
    in_row_order,
    n_distinct,
)
from recsys.data.config import DataConfig
from recsys.data.noise import NOISE, inject, label_natural
from recsys.data.noise import active as noise_active
from recsys.data.sources import (
    ITEM,
    RATING,
    SPLIT,
    TS,
    USER,
    locate_file,
    read_file,
    resolve_path,
    with_rows,
)
from recsys.data.split import (
    PRESPLIT,
    SPLIT_NAMES,
    TEMPORAL,
    TEST,
    TRAIN,
    VALID,
    assign_split,
    carve_valid,
    check_given_overlap,
    check_leakage,
    drop_repeats,
    split_protocol,
)
from recsys.errors import ConfigError, DataError
from recsys.hashing import hash_file, hash_obj
from recsys.spec import DataSpec
from recsys.types import Interactions

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
"""Bump when the artifacts or the preparation rules change (invalidates every cache entry)."""
ARTIFACTS = ("train", "valid", "test", "users", "items")
UIDX, IIDX = "user_idx", "item_idx"


@dataclass(frozen=True)
class Prepared:
    """A prepared dataset on disk.

    Attributes:
        dir: the artifact directory.
        hash: the cache key (hex SHA-256).
        card: the data card (also in ``dir / "card.json"``).
        cache_hit: whether it was already prepared.
        source_file: the located interaction file (None for pre-split and list inputs); item
            feature tables default to its companions (``.item``, ``.kg``, ``.link``).
    """

    dir: Path
    hash: str
    card: dict[str, Any]
    cache_hit: bool
    source_file: Path | None = None


@dataclass(frozen=True)
class Inputs:
    """The input files of a config, by role (``source``, or ``train``/``valid``/``test``)."""

    files: dict[str, Path]

    @property
    def label(self) -> str:
        """The files, for error messages."""
        return ", ".join(str(p) for p in self.files.values())


def cache_root(cfg: DataConfig, base_dir: Path | None) -> Path:
    """The resolved ``cache_dir``."""
    return resolve_path(cfg.cache_dir, base_dir)


def locate_inputs(cfg: DataConfig, base_dir: Path | None) -> Inputs:
    """Resolve the files a config reads (downloading built-ins once).

    Raises:
        DataError: a missing file or directory.
        ConfigError: a split method that does not fit the source.
    """
    src, split = cfg.source, cfg.split
    if split.method == "lightgcn" and src.format != "lightgcn":
        raise ConfigError("split.method 'lightgcn' needs source.format = 'lightgcn'")
    if split.method == "column" and src.format not in ("atomic", "csv", "tsv", "parquet"):
        raise ConfigError(
            f"split.method 'column' needs a source with columns (atomic, csv, tsv, parquet), "
            f"not source.format = {src.format!r}"
        )
    if split.method == "given":
        if split.given is None:
            raise ConfigError("split.method 'given' needs [split.given] train and test paths")
        roles = {"train": split.given.train, "valid": split.given.valid, "test": split.given.test}
        files = {r: resolve_path(p, base_dir) for r, p in roles.items() if p is not None}
        for role, p in files.items():
            if not p.is_file():
                raise DataError(f"{p}: file not found (split.given.{role})")
        return Inputs(files)
    if builtin.is_remote(src.path):
        return Inputs({"source": builtin.resolve_remote(src.path, cache_root(cfg, base_dir))})
    path = resolve_path(src.path, base_dir)
    if src.format == "lightgcn":
        train, test = lightgcn_lists.list_files(path)
        return Inputs({"train": train, "test": test})
    return Inputs({"source": locate_file(path, src.format, cfg.name)})


def cache_key(cfg: DataConfig, inputs: Inputs) -> tuple[str, list[dict[str, str]]]:
    """The cache key and the input file records ``{role, path, sha256}``."""
    records = [
        {"role": role, "path": str(p), "sha256": hash_file(p)} for role, p in inputs.files.items()
    ]
    config = dump(cfg)
    config.pop("cache_dir", None)
    config.pop("features", None)  # cached separately (recsys.data.features)
    config.pop("multitask", None)  # cached separately (recsys.data.multitask)
    key = hash_obj(
        {
            "format_version": FORMAT_VERSION,
            "config": config,
            "inputs": [
                {"role": r["role"], "name": Path(r["path"]).name, "sha256": r["sha256"]}
                for r in records
            ],
        }
    )
    return key, records


def _id_order(uniq: pl.Series) -> pl.Series:
    """The order of distinct ids: numerical when all are integers, else lexicographic."""
    as_int = uniq.cast(pl.Int64, strict=False)
    return as_int.arg_sort() if as_int.null_count() == 0 else uniq.arg_sort()


def sorted_ids(ids: pl.Series) -> pl.Series:
    """Distinct ids, numerically sorted when all are integers, else lexicographically."""
    uniq = ids.unique()
    return uniq.gather(_id_order(uniq))


def encode_ids(df: pl.DataFrame) -> pl.DataFrame:
    """Replace the ``user_id`` / ``item_id`` strings by ``Enum`` columns (done once, after reading).

    The categories are the distinct ids in lexicographic order, so the physical codes
    (:func:`recsys.data.clean.id_codes`) are dense integers whose order is the ids' order: every
    later step groups, joins and sorts integers, and messages still show the original ids.
    """
    return df.with_columns(
        pl.col(c).cast(pl.Enum(df.get_column(c).unique().sort())) for c in (USER, ITEM)
    )


def _read(cfg: DataConfig, inputs: Inputs) -> tuple[pl.DataFrame, dict[int, str]]:
    """The standard frame (with ``_row``; with ``split`` for pre-split methods)."""
    src, split = cfg.source, cfg.split
    codes = {"train": TRAIN, "valid": VALID, "test": TEST}
    names: dict[int, str] = {}
    frames: list[pl.DataFrame] = []
    for role, path in inputs.files.items():
        if src.format == "lightgcn":
            frame = lightgcn_lists.read_lists(path, codes.get(role, TRAIN))
        elif role == "source":
            col = split.column if split.method == "column" else None
            frame = read_file(path, src, split_column=col, split_values=split.column_values)
        else:
            frame = read_file(path, src).with_columns(
                pl.lit(codes[role], dtype=pl.Int8).alias(SPLIT)
            )
        if role in codes:
            names[codes[role]] = str(path)
        frames.append(frame)
    if split.method == "column":
        path = inputs.files["source"]
        names = {
            c: f"{path}, {split.column} = {v}"
            for c, v in zip((0, 1, 2), split.column_values, strict=True)
        }
    df = with_rows(frames)
    if split.method not in PRESPLIT and SPLIT in df.columns:
        df = df.drop(SPLIT)
    return df, names


def _split_stats(df: pl.DataFrame, prefix: str) -> list[dict[str, Any]]:
    users, items = id_codes(df.get_column(USER)), id_codes(df.get_column(ITEM))
    splits = df.get_column(SPLIT).to_numpy()
    return [
        code_stats(f"{prefix} {name}", users[splits == code], items[splits == code])
        for code, name in SPLIT_NAMES.items()
    ]


@dataclass(frozen=True)
class _Built:
    frames: dict[str, pl.DataFrame]
    card: dict[str, Any]


@dataclass(frozen=True)
class _Split:
    """A cleaned and split frame with the statistics and drop counts of getting there."""

    df: pl.DataFrame
    steps: list[dict[str, Any]]
    dropped: dict[str, int]
    cleaned: bool


def _clean_and_split(
    df: pl.DataFrame, cfg: DataConfig, names: dict[int, str], label: str
) -> _Split:
    """Clean (unless a pre-split source keeps its splits as given), split and check leakage."""
    presplit = cfg.split.method in PRESPLIT
    cleaned = not presplit or cfg.clean.apply_to_given
    steps: list[dict[str, Any]] = []
    dropped: dict[str, int] = {}
    n0 = df.height
    if presplit:
        check_given_overlap(df, names)
    if cleaned:
        df, clean_steps = clean(df, cfg.clean, label, by_split=presplit)
        steps.extend(clean_steps)
        dropped["cleaning"] = n0 - df.height
    else:
        steps.append(frame_stats(df, "clean (not applied to given splits)"))
    if presplit:
        if not (df.get_column(SPLIT) == VALID).any():
            df = carve_valid(df, cfg.split.valid_from_train, cfg.split.seed)
    else:
        df = assign_split(df, cfg.split, label)
        n_rep = 0
        if cfg.clean.dedup == "none":  # else dedup left one row per pair: nothing can repeat
            df, n_rep = drop_repeats(df)
        dropped["repeated_pairs"] = n_rep
    steps.extend(_split_stats(df, "split"))
    check_leakage(df, TEMPORAL.get(cfg.split.method, "none"), label)
    return _Split(df, steps, dropped, cleaned)


def _id_map(ids: pl.Series, codes: np.ndarray, train: np.ndarray) -> tuple[pl.Series, np.ndarray]:
    """The ids of the train rows in :func:`sorted_ids` order, and each code's index in them.

    Args:
        ids: an ``Enum`` id column (:func:`encode_ids`).
        codes: its codes (:func:`recsys.data.clean.id_codes`).
        train: which rows are train rows.

    Returns:
        The ids (position = dense index) and, per code, its index or -1 when not in train.
    """
    assert isinstance(ids.dtype, pl.Enum)
    categories = ids.dtype.categories
    in_train = np.flatnonzero(np.bincount(codes[train], minlength=categories.len()))
    names = categories.gather(in_train)
    order = _id_order(names).to_numpy()
    index = np.full(categories.len(), -1, dtype=np.int32)
    index[in_train[order]] = np.arange(in_train.size, dtype=np.int32)
    return names.gather(order), index


def _n_unindexed(codes: np.ndarray, index: np.ndarray) -> int:
    """Distinct codes among ``codes`` that have no index (-1)."""
    seen = np.bincount(codes, minlength=index.size) > 0
    return int(np.count_nonzero(seen & (index < 0)))


@dataclass(frozen=True)
class _Indexed:
    """Rows with ``user_idx`` / ``item_idx`` (train users and items only) and the id maps."""

    df: pl.DataFrame
    umap: pl.DataFrame
    imap: pl.DataFrame


def _index(df: pl.DataFrame, dropped: dict[str, int]) -> _Indexed:
    """Id maps over the train split; valid/test rows of other users or items are dropped and
    counted in ``dropped`` (rows per split, users and items)."""
    splits = df.get_column(SPLIT).to_numpy()
    train = splits == TRAIN
    users, items = id_codes(df.get_column(USER)), id_codes(df.get_column(ITEM))
    user_ids, user_index = _id_map(df.get_column(USER), users, train)
    item_ids, item_index = _id_map(df.get_column(ITEM), items, train)
    uidx, iidx = user_index[users], item_index[items]
    known = (uidx >= 0) & (iidx >= 0)
    for code, name in ((VALID, "valid"), (TEST, "test")):
        dropped[f"{name}_rows_cold"] = int(np.count_nonzero(~known & (splits == code)))
    dropped["users_only_in_valid_test"] = _n_unindexed(users[~train], user_index)
    dropped["items_only_in_valid_test"] = _n_unindexed(items[~train], item_index)
    indexed = (
        df.drop(USER, ITEM)
        .with_columns(pl.Series(UIDX, uidx), pl.Series(IIDX, iidx))
        .filter(pl.Series(known))
    )
    umap = pl.DataFrame({UIDX: np.arange(user_ids.len(), dtype=np.int32), USER: user_ids})
    imap = pl.DataFrame({IIDX: np.arange(item_ids.len(), dtype=np.int32), ITEM: item_ids})
    return _Indexed(indexed, umap, imap)


def _split_frames(
    indexed: pl.DataFrame,
) -> tuple[dict[str, pl.DataFrame], list[dict[str, Any]], dict[str, int]]:
    """The train/valid/test artifacts (sorted by user index, then input row order), their
    statistics and the number of evaluated users of valid and test."""
    frames: dict[str, pl.DataFrame] = {}
    steps = []
    evaluated: dict[str, int] = {}
    indexed = in_row_order(indexed)  # then a stable sort by user index is by (user, row)
    for code, name in SPLIT_NAMES.items():
        part = indexed.filter(pl.col(SPLIT) == code).sort(UIDX, maintain_order=True)
        users, items = part.get_column(UIDX).to_numpy(), part.get_column(IIDX).to_numpy()
        steps.append(code_stats(name, users, items))
        frames[name] = part.select(UIDX, IIDX, pl.col(RATING), pl.col(TS), pl.col(NOISE))
        if code != TRAIN:
            evaluated[name] = n_distinct(users)
    return frames, steps, evaluated


def build(cfg: DataConfig, inputs: Inputs) -> _Built:
    """Read, clean, split, check and index a dataset in memory (nothing is written).

    The ids are encoded once after reading (:func:`encode_ids`); cleaning, splitting, checks
    and id maps work on their integer codes, and only the id maps hold the original ids.

    Raises:
        DataError: bad input, an empty result, leakage or a given-split overlap.
        ConfigError: invalid split settings.
    """
    label = inputs.label
    t0 = time.perf_counter()
    df, names = _read(cfg, inputs)
    if df.height == 0:
        raise DataError(f"{label}: no interactions")
    df = encode_ids(df)
    steps = [frame_stats(df, "read")]
    split = _clean_and_split(df, cfg, names, label)
    del df  # the read frame: only the cleaned one is needed from here
    steps.extend(split.steps)
    dropped = split.dropped
    ids = _index(split.df, dropped)
    umap, imap = ids.umap, ids.imap
    indexed, noise_counts = label_natural(ids.df, cfg.noise, label)
    dropped["test_rows_noisy"] = noise_counts.pop("test_rows_noisy_dropped")
    if "valid_rows_noisy_dropped" in noise_counts:
        dropped["valid_rows_noisy"] = noise_counts.pop("valid_rows_noisy_dropped")
    if cfg.noise.ratio > 0:
        indexed, injected = inject(indexed, cfg.noise, umap.height, imap.height)
        noise_counts.update(injected)
    frames, final_steps, evaluated = _split_frames(indexed)
    if frames["train"].height == 0:
        raise DataError(f"{label}: the train split is empty ({cfg.split.method} split)")
    if frames["test"].height == 0:
        noisy = dropped["test_rows_noisy"]
        because = f"{noisy} noisy rows (noise.clean_min_rating) and " if noisy else ""
        raise DataError(
            f"{label}: the test split is empty after dropping {because}users/items not in "
            f"train ({cfg.split.method} split)"
        )
    steps.extend(final_steps)
    frames["users"], frames["items"] = umap, imap
    cleaned = split.cleaned
    kcore_rounds = next((s["rounds"] for s in steps if s["step"] == "k-core"), 0)
    protocol = {
        "dataset": cfg.name,
        "split": split_protocol(cfg.split),
        "clean": {**dump(cfg.clean), "applied": cleaned},
        "id_maps": "dense indices over train users/items, sorted by original id",
        "eval_users": "users with >= 1 train item and >= 1 item in the split",
        "noise": {**dump(cfg.noise), "active": noise_active(cfg.noise)},
    }
    card = {
        "name": cfg.name,
        "format_version": FORMAT_VERSION,
        "n_users": umap.height,
        "n_items": imap.height,
        "steps": steps,
        "kcore_rounds": kcore_rounds,
        "dropped": dropped,
        "evaluated_users": evaluated,
        "noise": {
            **noise_counts,
            "train_noisy": int(frames["train"].get_column(NOISE).sum()),
            "train_rows": frames["train"].height,
        },
        "protocol": protocol,
        "seconds": round(time.perf_counter() - t0, 4),
    }
    return _Built(frames, card)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "data"


def prepare(cfg: DataConfig, *, base_dir: Path | None = None, force: bool = False) -> Prepared:
    """Prepare ``cfg`` into the cache (or find it there).

    Args:
        cfg: the data config.
        base_dir: the config file's directory (relative paths resolve against it first).
        force: rebuild even when cached.

    Returns:
        The artifact directory, hash, data card and whether it was a cache hit.

    Raises:
        DataError: bad or missing input, empty results, leakage (no directory is left behind).
        ConfigError: a split method that does not fit the source or invalid ratios.
    """
    inputs = locate_inputs(cfg, base_dir)
    key, records = cache_key(cfg, inputs)
    target = cache_root(cfg, base_dir) / f"{_safe(cfg.name)}-{key[:12]}"
    complete = (target / "card.json").is_file() and all(
        (target / f"{a}.parquet").is_file() for a in ARTIFACTS
    )
    if complete and not force:
        card = json.loads((target / "card.json").read_text(encoding="utf-8"))
        log.info("cache hit: %s", target)
        return Prepared(target, key, card, True, inputs.files.get("source"))
    stale = target.exists()
    built = build(cfg, inputs)
    card = {**built.card, "hash": key, "inputs": records, "config": dump(cfg)}
    # An entry another process completes meanwhile is kept (same key, same content); a stale
    # or incomplete one found at the start, or --force, is replaced.
    with atomic.atomic_dir(target, replace=force or stale) as tmp:
        for name, frame in built.frames.items():
            frame.write_parquet(tmp / f"{name}.parquet")
        (tmp / "card.json").write_text(
            json.dumps(card, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8"
        )
    log.info(
        "prepared %s: %d users, %d items, train/valid/test %s rows in %.2fs -> %s",
        cfg.name,
        card["n_users"],
        card["n_items"],
        "/".join(str(built.frames[s].height) for s in ("train", "valid", "test")),
        card["seconds"],
        target,
    )
    return Prepared(target, key, card, False, inputs.files.get("source"))


def _interactions(frame: pl.DataFrame) -> Interactions:
    users = torch.from_numpy(frame.get_column(UIDX).to_numpy().astype(np.int64))
    items = torch.from_numpy(frame.get_column(IIDX).to_numpy().astype(np.int64))
    return Interactions(users, items)


def load_spec(prepared: Prepared) -> DataSpec:
    """The DataSpec of prepared artifacts (int64 tensors, string id arrays, card, protocol)."""
    d = prepared.dir
    labelled = bool(prepared.card.get("protocol", {}).get("noise", {}).get("active"))
    frames = {
        s: pl.read_parquet(
            d / f"{s}.parquet",
            columns=[UIDX, IIDX, NOISE] if labelled and s == "train" else [UIDX, IIDX],
        )
        for s in SPLIT_NAMES.values()
    }
    users = pl.read_parquet(d / "users.parquet").sort(UIDX)
    items = pl.read_parquet(d / "items.parquet").sort(IIDX)
    noise = None
    if labelled:
        noise = torch.from_numpy(frames["train"].get_column(NOISE).to_numpy().astype(bool))
    evals = {
        s: torch.from_numpy(frames[s].get_column(UIDX).unique().sort().to_numpy().astype(np.int64))
        for s in ("valid", "test")
    }
    return DataSpec(
        name=str(prepared.card.get("name", d.name)),
        data_hash=prepared.hash,
        n_users=users.height,
        n_items=items.height,
        train=_interactions(frames["train"]),
        valid=_interactions(frames["valid"]),
        test=_interactions(frames["test"]),
        user_ids=users.get_column(USER).to_numpy().astype(str),
        item_ids=items.get_column(ITEM).to_numpy().astype(str),
        eval_users_valid=evals["valid"],
        eval_users_test=evals["test"],
        card=prepared.card,
        protocol=dict(prepared.card.get("protocol", {})),
        train_noise=noise,
    )


def describe(cfg: DataConfig, base_dir: Path | None = None) -> dict[str, Any]:
    """The data card of ``cfg`` (preparing it first when not cached)."""
    return prepare(cfg, base_dir=base_dir).card
