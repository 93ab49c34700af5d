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
from recsys.data.clean import clean, frame_stats
from recsys.data.config import DataConfig
from recsys.data.noise import NOISE, inject, label_natural
from recsys.data.noise import active as noise_active
from recsys.data.sources import (
    ITEM,
    RATING,
    ROW,
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


def sorted_ids(ids: pl.Series) -> pl.Series:
    """Distinct ids, numerically sorted when all are integers, else lexicographically."""
    uniq = ids.unique()
    as_int = uniq.cast(pl.Int64, strict=False)
    if as_int.null_count() == 0:
        return uniq.gather(as_int.arg_sort())
    return uniq.sort()


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
    return [
        frame_stats(df.filter(pl.col(SPLIT) == code), f"{prefix} {name}")
        for code, name in SPLIT_NAMES.items()
    ]


@dataclass(frozen=True)
class _Built:
    frames: dict[str, pl.DataFrame]
    card: dict[str, Any]


def build(cfg: DataConfig, inputs: Inputs) -> _Built:
    """Read, clean, split, check and index a dataset in memory (nothing is written).

    Raises:
        DataError: bad input, an empty result, leakage or a given-split overlap.
        ConfigError: invalid split settings.
    """
    label = inputs.label
    t0 = time.perf_counter()
    df, names = _read(cfg, inputs)
    if df.height == 0:
        raise DataError(f"{label}: no interactions")
    steps = [frame_stats(df, "read")]
    presplit = cfg.split.method in PRESPLIT
    cleaned = not presplit or cfg.clean.apply_to_given
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
        if df.filter(pl.col(SPLIT) == VALID).height == 0:
            df = carve_valid(df, cfg.split.valid_from_train, cfg.split.seed)
    else:
        df = assign_split(df, cfg.split, label)
        df, n_rep = drop_repeats(df)
        dropped["repeated_pairs"] = n_rep
    steps.extend(_split_stats(df, "split"))
    check_leakage(df, TEMPORAL.get(cfg.split.method, "none"), label)

    train = df.filter(pl.col(SPLIT) == TRAIN)
    users = sorted_ids(train.get_column(USER))
    items = sorted_ids(train.get_column(ITEM))
    umap = pl.DataFrame({UIDX: pl.int_range(users.len(), dtype=pl.Int32, eager=True), USER: users})
    imap = pl.DataFrame({IIDX: pl.int_range(items.len(), dtype=pl.Int32, eager=True), ITEM: items})
    evals = df.filter(pl.col(SPLIT) != TRAIN)
    cold_users = evals.join(umap, on=USER, how="anti").get_column(USER).n_unique()
    cold_items = evals.join(imap, on=ITEM, how="anti").get_column(ITEM).n_unique()
    indexed = df.join(umap, on=USER, how="inner").join(imap, on=ITEM, how="inner")
    for code, name in ((VALID, "valid"), (TEST, "test")):
        before = df.filter(pl.col(SPLIT) == code).height
        after = indexed.filter(pl.col(SPLIT) == code).height
        dropped[f"{name}_rows_cold"] = before - after
    dropped["users_only_in_valid_test"] = cold_users
    dropped["items_only_in_valid_test"] = cold_items
    indexed, noise_counts = label_natural(indexed, cfg.noise, label)
    dropped["test_rows_noisy"] = noise_counts.pop("test_rows_noisy_dropped")
    if "valid_rows_noisy_dropped" in noise_counts:
        dropped["valid_rows_noisy"] = noise_counts.pop("valid_rows_noisy_dropped")
    if cfg.noise.ratio > 0:
        indexed, injected = inject(indexed, cfg.noise, umap.height, imap.height)
        noise_counts.update(injected)

    frames: dict[str, pl.DataFrame] = {}
    evaluated: dict[str, int] = {}
    final_steps = []
    for code, name in SPLIT_NAMES.items():
        part = indexed.filter(pl.col(SPLIT) == code).sort([UIDX, ROW])
        final_steps.append(frame_stats(part, name))
        frames[name] = part.select(UIDX, IIDX, pl.col(RATING), pl.col(TS), pl.col(NOISE))
        if code != TRAIN:
            evaluated[name] = part.get_column(UIDX).n_unique()
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
            d / f"{s}.parquet", columns=[UIDX, IIDX, NOISE] if labelled and s == "train" else [UIDX, IIDX]
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
