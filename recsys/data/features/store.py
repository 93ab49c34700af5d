"""Build item features, each modality cached by content hash.

Each modality lives in ``<cache_dir>/features/<name>-<key[:12]>/`` (written atomically):

* ``values.npy``: ``(n_items, d)`` float32, rows of missing items are zeros;
* ``missing.npy``: ``(n_items,)`` bool;
* ``card.json``: what was built, from what, and how long it took.

The key is the SHA-256 of :data:`FORMAT_VERSION`, the modality config without ``missing`` (the
policy is applied after loading, so changing it re-uses the entry), the dataset's ``data_hash``
and item ids, the SHA-256 of every input file (with its config key and file name, not its
absolute path) and, for text, the encoder package's version. A hit loads the arrays and never
loads the text model.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recsys import atomic
from recsys.config import dump
from recsys.data.features import kg, npy, tabular, text
from recsys.data.features.config import (
    KgConfig,
    ModalityConfig,
    NpyConfig,
    TabularConfig,
    TextConfig,
)
from recsys.data.features.tables import input_files
from recsys.data.features.values import RawFeatures, apply_policy, check_some_present
from recsys.errors import ConfigError
from recsys.hashing import hash_file, hash_obj
from recsys.types import ItemFeatures

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Bump when the stored arrays or the building rules change (invalidates every entry)."""
NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def _builder(cfg: ModalityConfig) -> Callable[[str, Any, dict[str, Path], np.ndarray], RawFeatures]:
    """The builder of a kind, looked up at call time (tests replace them)."""
    if isinstance(cfg, TextConfig):
        return text.build_text
    if isinstance(cfg, TabularConfig):
        return tabular.build_tabular
    if isinstance(cfg, KgConfig):
        return kg.build_kg
    assert isinstance(cfg, NpyConfig)
    return npy.build_npy


def cache_key(
    cfg: ModalityConfig, files: dict[str, Path], data_hash: str, item_ids: np.ndarray
) -> str:
    """The modality's cache key (hex SHA-256); see the module docstring."""
    config = dump(cfg)
    config.pop("missing", None)
    ids = np.asarray(item_ids).astype(str)
    obj: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "config": config,
        "data_hash": data_hash,
        "item_ids": hash_obj(ids.tolist()),
        "inputs": [
            {"key": k, "name": p.name, "sha256": hash_file(p)} for k, p in sorted(files.items())
        ],
    }
    if isinstance(cfg, TextConfig):
        obj["encoder"] = {"package": text.ENCODER_PACKAGE, "version": text.encoder_version()}
    return hash_obj(obj)


def _load(folder: Path, n_items: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]] | None:
    """A complete, well-shaped cache entry, else ``None`` (rebuilt)."""
    try:
        values = np.load(folder / "values.npy", allow_pickle=False)
        missing = np.load(folder / "missing.npy", allow_pickle=False)
        card = json.loads((folder / "card.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        log.warning("features cache entry %s is unreadable (%s); rebuilding", folder, e)
        return None
    ok = values.ndim == 2 and values.shape[0] == n_items and missing.shape == (n_items,)
    if not ok or values.dtype != np.float32 or missing.dtype != np.bool_:
        log.warning("features cache entry %s does not fit %d items; rebuilding", folder, n_items)
        return None
    return values, missing, card


def build_modality(
    name: str,
    cfg: ModalityConfig,
    *,
    item_ids: np.ndarray,
    data_hash: str,
    cache_dir: Path,
    base_dir: Path | None,
    source_file: Path | None,
) -> tuple[ItemFeatures, dict[str, Any]]:
    """One modality (cached) and its card entry; see :func:`build_features`."""
    t0 = time.perf_counter()
    files = input_files(name, cfg, base_dir, source_file)
    source = ", ".join(str(p) for p in files.values())
    key = cache_key(cfg, files, data_hash, item_ids)
    folder = Path(cache_dir) / "features" / f"{name}-{key[:12]}"
    n_items = len(item_ids)
    loaded = _load(folder, n_items) if folder.is_dir() else None
    stale = folder.is_dir() and loaded is None  # replaced; one another process writes is kept
    hit = loaded is not None
    if loaded is not None:
        values, missing, _ = loaded
    else:
        raw = _builder(cfg)(name, cfg, files, item_ids)
        values, missing = raw.values, raw.missing
        check_some_present(missing, name, source)
        stored = {
            "name": name,
            "kind": cfg.kind,
            "dim": int(values.shape[1]),
            "n_items": n_items,
            "n_missing": int(missing.sum()),
            "source": source,
            "hash": key,
            "format_version": FORMAT_VERSION,
            "build_seconds": round(time.perf_counter() - t0, 3),
            "config": dump(cfg),
            "columns": raw.columns,
        }
        with atomic.atomic_dir(folder, replace=stale) as tmp:
            np.save(tmp / "values.npy", values)
            np.save(tmp / "missing.npy", missing)
            atomic.write_json(tmp / "card.json", stored)
    filled = apply_policy(values, missing, cfg.missing)
    seconds = round(time.perf_counter() - t0, 3)
    feats = ItemFeatures(
        name=name,
        values=torch.from_numpy(filled),
        missing=torch.from_numpy(missing.copy()),
        policy=cfg.missing,
        source=source,
    )
    card = {
        "kind": cfg.kind,
        "dim": feats.dim,
        "n_missing": feats.n_missing,
        "n_items": n_items,
        "policy": cfg.missing,
        "seconds": seconds,
        "cache_hit": hit,
        "source": source,
        "hash": key,
    }
    log.info(
        "features %s (%s): %s in %.2fs: %d items x %d, %d missing (%s)",
        name, cfg.kind, "cache hit" if hit else "built", seconds, n_items, feats.dim,
        feats.n_missing, folder,
    )  # fmt: skip
    return feats, card


def build_features(
    features: dict[str, ModalityConfig],
    *,
    item_ids: np.ndarray,
    data_hash: str,
    cache_dir: Path,
    base_dir: Path | None,
    source_file: Path | None,
) -> tuple[dict[str, ItemFeatures], dict[str, Any]]:
    """Build (or load) every configured modality, aligned with ``item_idx``.

    Args:
        features: the data config's ``features`` tables, by modality name.
        item_ids: original item ids as strings, indexed by ``item_idx``.
        data_hash: the prepared dataset's cache key (part of each modality's key).
        cache_dir: the data cache root; entries go to ``cache_dir / "features"``.
        base_dir: the config file's directory (relative paths resolve there first).
        source_file: the located interaction file, whose ``<stem>.item`` / ``.kg`` /
            ``.link`` are the default inputs; ``None`` when there is none (lists, given splits).

    Returns:
        The modalities in config order, and the card
        ``{name: {kind, dim, n_missing, n_items, policy, seconds, cache_hit, source, hash}}``.

    Raises:
        ConfigError: a bad modality name, or a default path with no interaction file.
        DataError: a missing or malformed input, or a modality where every item is missing.
    """
    out: dict[str, ItemFeatures] = {}
    card: dict[str, Any] = {}
    for name, cfg in features.items():
        if not NAME.match(name):
            raise ConfigError(
                f"features.{name}: a modality name may use letters, digits, '_', '-' and '.'"
            )
        out[name], card[name] = build_modality(
            name,
            cfg,
            item_ids=item_ids,
            data_hash=data_hash,
            cache_dir=cache_dir,
            base_dir=base_dir,
            source_file=source_file,
        )
    return out, card
