"""Tabular features: multi-hot, one-hot and z-scored numeric columns of an item table.

See :class:`~recsys.data.features.config.TabularConfig` for the layout of the output columns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from recsys.data.features.config import TabularConfig
from recsys.data.features.tables import IDX, align, present_mask, read_table
from recsys.data.features.values import RawFeatures, finish
from recsys.errors import DataError


def _one_hot(
    aligned: pl.DataFrame, column: str, tokens: pl.Expr, n_items: int
) -> tuple[np.ndarray, list[str]]:
    """0/1 ``(n_items, |vocab|)`` over the sorted distinct tokens of ``tokens`` (a list expr)."""
    pairs = (
        aligned.filter(pl.col("__present"))
        .select(pl.col(IDX), tokens.alias("tok"))
        .explode("tok")
        .drop_nulls("tok")
        .filter(pl.col("tok") != "")
    )
    vocab = np.sort(pairs["tok"].unique().to_numpy().astype(str))
    out = np.zeros((n_items, vocab.size), dtype=np.float32)
    if pairs.height:
        codes = np.searchsorted(vocab, pairs["tok"].to_numpy().astype(str))
        out[pairs[IDX].to_numpy(), codes] = 1.0
    return out, [f"{column}={v}" for v in vocab]


def _numeric(
    aligned: pl.DataFrame, column: str, present: np.ndarray
) -> tuple[np.ndarray, list[str]]:
    """The z-scored column ``(x - mean) / std`` over present items (population std; 0 where the
    std is 0), nulls → 0, plus a "was null" 0/1 column when any present item has a null."""
    x = (
        aligned.select(pl.col(column).str.strip_chars().cast(pl.Float64, strict=False))
        .to_series()
        .to_numpy()
        .astype(np.float64)
    )
    x[~np.isfinite(x)] = np.nan
    null = np.isnan(x) & present
    ok = ~np.isnan(x) & present
    z = np.zeros_like(x)
    if ok.any():
        mean, std = x[ok].mean(), x[ok].std()
        z[ok] = (x[ok] - mean) / std if std > 0 else 0.0
    cols, names = [z], [column]
    if null.any():
        cols.append(null.astype(np.float64))
        names.append(f"{column}:null")
    return np.stack(cols, axis=1).astype(np.float32), names


def build_tabular(
    name: str, cfg: TabularConfig, files: dict[str, Path], item_ids: np.ndarray
) -> RawFeatures:
    """Multi-hot, one-hot and numeric blocks, concatenated in that order.

    Raises:
        DataError: a column that is not in the table (names the file and the available ones).
    """
    table = read_table(files["path"])
    key = f"features.{name}"
    for group in ("multi_hot", "categorical", "numeric"):
        for col in getattr(cfg, group):
            table.need(col, f"{key}.{group}")
    aligned = align(table, cfg.id_column, item_ids, f"{key}.id_column")
    present = present_mask(aligned)
    n = present.size
    blocks: list[np.ndarray] = []
    names: list[str] = []
    for col in cfg.multi_hot:
        block, cols = _one_hot(aligned, col, pl.col(col).str.extract_all(r"\S+"), n)
        blocks.append(block)
        names += cols
    for col in cfg.categorical:
        value = pl.col(col).str.strip_chars()
        block, cols = _one_hot(aligned, col, pl.concat_list(value), n)
        blocks.append(block)
        names += cols
    for col in cfg.numeric:
        block, cols = _numeric(aligned, col, present)
        blocks.append(block)
        names += cols
    values = np.concatenate(blocks, axis=1)
    if values.shape[1] == 0:
        raise DataError(f"{table.path}: {key}: the listed columns hold no value for any item")
    return finish(values, ~present, names)
