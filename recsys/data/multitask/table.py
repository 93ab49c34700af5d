"""Multi-task samples from one delimited file with a label column per task (census-income).

Rows are split at random (seeded) into train/valid/test by ``ratios``; vocabularies and
statistics are fitted on train rows. A task's label is 1 where its column's (stripped) value
is one of ``positive``, else 0; every label is defined.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import torch

from recsys.data.multitask.config import ColumnSpec, TableTasks
from recsys.data.multitask.encode import category_codes, encode
from recsys.data.multitask.tensors import SPLITS, FeatureTable, MultiTaskData, TaskRows
from recsys.data.sources import LINE, read_delimited, resolve_path
from recsys.errors import DataError


def split_rows(n: int, ratios: tuple[float, float, float], seed: int) -> np.ndarray:
    """``(n,)`` int8 split code per row (0/1/2): a seeded permutation cut at
    ``floor(n·r_train)`` and ``floor(n·(r_train + r_valid))``."""
    order = np.random.default_rng(seed).permutation(n)
    cut1 = int(np.floor(n * ratios[0]))
    cut2 = int(np.floor(n * (ratios[0] + ratios[1])))
    codes = np.empty(n, dtype=np.int8)
    codes[order[:cut1]], codes[order[cut1:cut2]], codes[order[cut2:]] = 0, 1, 2
    return codes


def _labels(frame: pl.DataFrame, cfg: TableTasks, path: Path, train: np.ndarray) -> np.ndarray:
    """``(n, K)`` float32 labels; every task must have both classes among train rows."""
    out = []
    for name, task in cfg.tasks.items():
        if task.column not in frame.columns:
            raise DataError(
                f"{path}: label column {task.column!r} of task {name!r} not found; available: "
                f"{', '.join(c for c in frame.columns if c != LINE)}"
            )
        values = frame.get_column(task.column).str.strip_chars()
        seen = set(values.drop_nulls().unique().to_list())
        unknown = [v for v in task.positive if v not in seen]
        if unknown:
            shown = ", ".join(repr(v) for v in sorted(seen)[:10])
            raise DataError(
                f"{path}: task {name!r}: positive value {unknown[0]!r} never occurs in column "
                f"{task.column!r} (values: {shown}{', ...' if len(seen) > 10 else ''})"
            )
        if values.null_count():
            line = frame.filter(values.is_null())[LINE][0]
            raise DataError(f"{path}: line {line}: task {name!r}: empty label ({task.column!r})")
        y = values.is_in(list(task.positive)).to_numpy()
        if y[train].all() or not y[train].any():
            only = "positive" if y[train].all() else "negative"
            raise DataError(
                f"{path}: task {name!r}: the train rows hold only {only} labels; a binary "
                "task needs both"
            )
        out.append(y.astype(np.float32))
    return np.stack(out, 1)


def build_table_tasks(cfg: TableTasks, base_dir: Path | None) -> MultiTaskData:
    """The samples of ``cfg.path`` (see the module docstring).

    Raises:
        DataError: unreadable file, wrong field counts, a missing column, a label value that
            never occurs, a task constant on train rows, a non-numeric ``numeric`` column.
    """
    path = resolve_path(cfg.path, base_dir)
    frame = read_delimited(
        path,
        separator=cfg.separator,
        has_header=not cfg.columns,
        names=list(cfg.columns) or None,
        quote='"',
    )
    n = frame.height
    split = split_rows(n, cfg.ratios, cfg.seed)
    train = split == 0
    labels = _labels(frame, cfg, path, train)
    label_columns = {t.column for t in cfg.tasks.values()}
    named = [*cfg.numeric, *cfg.exclude, *([cfg.group] if cfg.group else [])]
    missing = [c for c in named if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: column {missing[0]!r} (multitask.table) not found")
    features = {
        c: ColumnSpec(kind="numeric" if c in cfg.numeric else "category", min_count=cfg.min_count)
        for c in frame.columns
        if c != LINE and c not in label_columns and c not in cfg.exclude and c != cfg.group
    }
    table = encode(frame, features, fit=train, where=str(path))
    if cfg.group:
        groups, n_groups = category_codes(
            frame.get_column(cfg.group).str.strip_chars(), np.ones(n, bool), 1
        )
        groups, n_groups = groups - 1, n_groups - 1
    else:
        groups, n_groups = np.full(n, -1, dtype=np.int64), 0
    rows = {}
    card: dict[str, object] = {
        "tasks": list(cfg.tasks),
        "rows": n,
        "split": {"method": "random rows", "ratios": list(cfg.ratios), "seed": cfg.seed},
        "features": {"categorical": len(table.sparse_names), "dense": len(table.dense_names)},
    }
    for code, name in enumerate(SPLITS):
        idx = torch.from_numpy(np.nonzero(split == code)[0])
        y = torch.from_numpy(labels).index_select(0, idx)
        rows[name] = TaskRows(
            labels=y,
            mask=torch.ones_like(y, dtype=torch.bool),
            users=torch.from_numpy(groups).index_select(0, idx),
            items=torch.full((idx.numel(),), -1, dtype=torch.int64),
            features=table.take(idx),
            history=torch.full((idx.numel(),), -1, dtype=torch.int64),
        )
        card[name] = {
            "samples": int(idx.numel()),
            **{f"{t}_positives": int(y[:, k].sum()) for k, t in enumerate(cfg.tasks)},
        }
    return MultiTaskData(
        tasks=tuple(cfg.tasks),
        rows=rows,
        user_features=FeatureTable.empty(n_groups),
        item_features=FeatureTable.empty(0),
        card=card,
    )
