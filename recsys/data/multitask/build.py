"""Attach multi-task samples to a dataset: the rating builder on top of a prepared split, the
table builder on its own (its samples have no interactions to prepare)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from recsys.config import dump
from recsys.data.config import DataConfig
from recsys.data.multitask.ratings import build_rating_tasks
from recsys.data.multitask.table import build_table_tasks
from recsys.data.prepare import Prepared, cache_root
from recsys.data.sources import resolve_path
from recsys.hashing import hash_file, hash_obj
from recsys.spec import DataSpec
from recsys.types import Interactions


def _empty() -> Interactions:
    return Interactions(torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64))


def with_rating_tasks(
    cfg: DataConfig, prepared: Prepared, spec: DataSpec, base_dir: Path | None
) -> DataSpec:
    """``spec`` with ``multitask`` set and its valid/test replaced by the liked events (the
    top-N targets); evaluated users are those with a liked event in the split."""
    assert cfg.multitask is not None and cfg.multitask.ratings is not None
    start = time.perf_counter()
    data, targets = build_rating_tasks(
        cfg.multitask.ratings, prepared.dir, spec, base_dir, prepared.source_file
    )
    data.card["seconds"] = round(time.perf_counter() - start, 3)
    return dataclasses.replace(
        spec,
        valid=targets["valid"],
        test=targets["test"],
        eval_users_valid=torch.unique(targets["valid"].users),
        eval_users_test=torch.unique(targets["test"].users),
        card={**spec.card, "multitask": data.card},
        protocol={**spec.protocol, "top_n_targets": "liked items of the split"},
        multitask=data,
        _cache={},
    )


def table_tasks(cfg: DataConfig, base_dir: Path | None) -> tuple[Prepared, DataSpec]:
    """The table builder's samples as a DataSpec without interactions (``n_items = 0``)."""
    assert cfg.multitask is not None and cfg.multitask.table is not None
    table = cfg.multitask.table
    path = resolve_path(table.path, base_dir)
    start = time.perf_counter()
    data = build_table_tasks(table, base_dir)
    data.card["seconds"] = round(time.perf_counter() - start, 3)
    key = hash_obj({"multitask": dump(cfg.multitask), "sha256": hash_file(path)})
    card = {"name": cfg.name, "hash": key, "multitask": data.card, "inputs": [str(path)]}
    n_groups = len(data.user_features)
    empty = torch.zeros(0, dtype=torch.int64)
    spec = DataSpec(
        name=cfg.name,
        data_hash=key,
        n_users=n_groups,
        n_items=0,
        train=_empty(),
        valid=_empty(),
        test=_empty(),
        user_ids=np.arange(n_groups).astype(str),
        item_ids=np.zeros(0, dtype=str),
        eval_users_valid=empty,
        eval_users_test=empty,
        card=card,
        protocol={"split": data.card["split"]},
        multitask=data,
    )
    prepared = Prepared(cache_root(cfg, base_dir), key, card, False, None)
    return prepared, spec
