"""Columns → feature tables: categorical codes and dense values (see :class:`ColumnSpec`).

Vocabularies and statistics are fitted on the ``fit`` rows only (the train split for samples;
the whole table for user and item attributes) and applied to every row; code 0 is shared by
missing values and values not in the vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import torch

from recsys.data.multitask.config import ColumnSpec
from recsys.data.multitask.tensors import FeatureTable
from recsys.errors import DataError


@dataclass
class _Parts:
    sparse: list[np.ndarray] = field(default_factory=list)
    sparse_names: list[str] = field(default_factory=list)
    cardinalities: list[int] = field(default_factory=list)
    dense: list[np.ndarray] = field(default_factory=list)
    dense_names: list[str] = field(default_factory=list)

    def add_sparse(self, name: str, codes: np.ndarray, cardinality: int) -> None:
        self.sparse.append(codes.astype(np.int64))
        self.sparse_names.append(name)
        self.cardinalities.append(cardinality)

    def table(self, n: int) -> FeatureTable:
        sparse = np.stack(self.sparse, 1) if self.sparse else np.zeros((n, 0), np.int64)
        dense = np.stack(self.dense, 1) if self.dense else np.zeros((n, 0), np.float32)
        return FeatureTable(
            torch.from_numpy(np.ascontiguousarray(sparse)),
            torch.from_numpy(np.ascontiguousarray(dense, dtype=np.float32)),
            tuple(self.sparse_names),
            tuple(self.cardinalities),
            tuple(self.dense_names),
        )


def _strings(frame: pl.DataFrame, column: str) -> pl.Series:
    """The column as stripped strings, empty strings as null."""
    s = frame.get_column(column).cast(pl.String).str.strip_chars()
    return s.set(s == "", None) if s.len() else s


def _numbers(values: pl.Series, column: str, where: str, invalid: str) -> np.ndarray:
    """Float64 values (NaN where missing); a non-numeric value is a DataError unless
    ``invalid == "missing"``."""
    parsed = values.cast(pl.Float64, strict=False)
    bad = parsed.is_null() & values.is_not_null()
    if invalid == "error" and bool(bad.any()):
        example = values.filter(bad)[0]
        raise DataError(
            f"{where}: column {column!r} is numeric but has {int(bad.sum())} non-numeric "
            f'values (e.g. {example!r}; set invalid = "missing" to treat them as missing)'
        )
    return parsed.fill_null(float("nan")).to_numpy().astype(np.float64)


def category_codes(values: pl.Series, fit: np.ndarray, min_count: int) -> tuple[np.ndarray, int]:
    """Codes ``1..V`` over the sorted values seen at least ``min_count`` times in the fit rows
    (0: missing or rare/unseen); returns ``(codes, V + 1)``."""
    counts = values.filter(pl.Series(fit)).drop_nulls().value_counts()
    vocab = counts.filter(pl.col("count") >= min_count).get_column(values.name).sort()
    codes = values.replace_strict(
        vocab, pl.int_range(1, vocab.len() + 1, eager=True), default=0, return_dtype=pl.Int64
    )
    return codes.to_numpy(), vocab.len() + 1


def _add_column(
    parts: _Parts, frame: pl.DataFrame, column: str, spec: ColumnSpec, fit: np.ndarray, where: str
) -> None:
    values = _strings(frame, column)
    if spec.kind == "category":
        parts.add_sparse(column, *category_codes(values, fit, spec.min_count))
    elif spec.kind == "prefix":
        prefix = values.str.slice(0, spec.length)
        parts.add_sparse(column, *category_codes(prefix, fit, spec.min_count))
    elif spec.kind == "bins":
        x = _numbers(values, column, where, spec.invalid)
        codes = np.searchsorted(np.asarray(spec.edges), x, side="right") + 1
        parts.add_sparse(column, np.where(np.isnan(x), 0, codes), len(spec.edges) + 2)
    elif spec.kind == "numeric":
        x = _numbers(values, column, where, spec.invalid)
        ref = x[fit & ~np.isnan(x)]
        mean = float(ref.mean()) if ref.size else 0.0
        std = float(ref.std()) if ref.size else 0.0
        z = (x - mean) / (std if std > 0 else 1.0)
        parts.dense.append(np.where(np.isnan(z), 0.0, z).astype(np.float32))
        parts.dense_names.append(column)
    else:  # multi_hot
        tokens = values.str.split(spec.separator)
        fit_tokens = tokens.filter(pl.Series(fit)).explode().drop_nulls()
        vocab = fit_tokens.filter(fit_tokens != "").unique().sort().to_list()
        for tok in vocab:
            hot = tokens.list.contains(tok).fill_null(False).to_numpy()
            parts.dense.append(hot.astype(np.float32))
            parts.dense_names.append(f"{column}={tok}")


def encode(
    frame: pl.DataFrame,
    columns: Mapping[str, ColumnSpec],
    fit: np.ndarray | None = None,
    where: str = "",
    extra_sparse: Mapping[str, tuple[np.ndarray, int]] | None = None,
) -> FeatureTable:
    """Encode ``columns`` of ``frame`` into a :class:`FeatureTable`.

    Args:
        frame: one row per entity; columns are read as strings.
        columns: column name → how to encode it, in field order.
        fit: bool mask of the rows vocabularies and statistics are fitted on (default: all).
        where: the file or table, for messages.
        extra_sparse: categorical fields already coded (name → (codes, cardinality)), placed
            first (the id fields).

    Raises:
        DataError: a column is missing, or a numeric column has non-numeric values.
    """
    n = frame.height
    fit = np.ones(n, dtype=bool) if fit is None else fit
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{where}: feature column {missing[0]!r} not found; available: "
            f"{', '.join(c for c in frame.columns if not c.startswith('_'))}"
        )
    parts = _Parts()
    for name, (codes, cardinality) in (extra_sparse or {}).items():
        parts.add_sparse(name, codes, cardinality)
    for column, spec in columns.items():
        _add_column(parts, frame, column, spec, fit, where)
    return parts.table(n)
