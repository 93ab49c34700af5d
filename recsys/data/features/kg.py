"""Knowledge-graph features: each item's KG neighbourhood, reduced by a truncated SVD.

For item ``i`` linked to entity ``e`` (``.link``), the neighbours are
``{t : (e, r, t) ∈ KG} ∪ {h : (h, r, e) ∈ KG}``. Neighbours shared by fewer than ``min_count``
items are dropped. ``X`` is the ``(n_items, n_neighbours)`` 0/1 matrix; its top-``k`` SVD
``X ≈ U S Vᵀ`` gives the features ``U S`` (the item rows of the rank-``k`` approximation in
the right-singular basis), components in decreasing order of singular value, each signed so
its largest-magnitude entry is positive. ``k = min(dim, min(X.shape) - 1)`` (ARPACK needs
``k < min(X.shape)``). ARPACK starts from a vector drawn with ``seed`` and BLAS runs on one
thread while it does (its small dense steps are slower multi-threaded, and one thread makes the
result independent of the core count), so builds repeat.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from recsys.data.features.config import KgConfig
from recsys.data.features.tables import IDX, Table, items_frame, read_table
from recsys.data.features.values import RawFeatures, finish
from recsys.errors import DataError


def _columns(table: Table, key: str, *cols: str) -> pl.DataFrame:
    for c in cols:
        table.need(c, key)
    return table.frame.select(pl.col(c).str.strip_chars() for c in cols).drop_nulls()


def neighbour_matrix(
    kg: Table, link: Table, item_ids: np.ndarray, min_count: int, name: str = "kg"
) -> sp.csr_matrix:
    """The ``(n_items, n_neighbours)`` 0/1 matrix ``X`` (neighbours in sorted id order)."""
    triples = _columns(kg, f"features.{name}.kg_path", "head_id", "tail_id")
    links = _columns(link, f"features.{name}.link_path", "item_id", "entity_id")
    edges = pl.concat(
        [
            triples.select(pl.col("head_id").alias("ent"), pl.col("tail_id").alias("nbr")),
            triples.select(pl.col("tail_id").alias("ent"), pl.col("head_id").alias("nbr")),
        ]
    )
    pairs = (
        items_frame(item_ids)
        .join(links.rename({"item_id": "__item_id", "entity_id": "ent"}), on="__item_id")
        .join(edges, on="ent")
        .select(IDX, "nbr")
        .unique()
    )
    pairs = pairs.filter(pl.len().over("nbr") >= min_count).sort(IDX, "nbr")  # a fixed order
    codes = pairs["nbr"].rank("dense").cast(pl.Int64).to_numpy() - 1
    rows = pairs[IDX].to_numpy()
    n_nbr = int(codes.max()) + 1 if codes.size else 0
    data = np.ones(rows.size, dtype=np.float64)
    return sp.csr_matrix((data, (rows, codes)), shape=(len(item_ids), n_nbr))


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # an optional nicety (installed with implicit / scikit-learn)
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def truncated_svd(x: sp.csr_matrix, dim: int, seed: int) -> np.ndarray:
    """``U S`` of the top-``k`` SVD, ``k = min(dim, min(x.shape) - 1)``, signs fixed.

    Raises:
        ValueError: ``k < 1``.
    """
    k = min(dim, min(x.shape) - 1)
    if k < 1:
        raise ValueError(f"the item × neighbour matrix {x.shape} is too small for an SVD")
    v0 = np.random.default_rng(seed).uniform(-1.0, 1.0, size=min(x.shape))
    with _one_blas_thread():
        u, s, _ = svds(x, k=k, v0=v0, solver="arpack")
    order = np.argsort(-s, kind="stable")
    us = u[:, order] * s[order]
    peak = np.abs(us).argmax(axis=0)
    signs = np.sign(us[peak, np.arange(k)])
    signs[signs == 0] = 1.0
    return np.asarray(us * signs)


def build_kg(name: str, cfg: KgConfig, files: dict[str, Path], item_ids: np.ndarray) -> RawFeatures:
    """KG features of the dataset's items (see the module docstring)."""
    kg_path, link_path = files["kg_path"], files["link_path"]
    x = neighbour_matrix(read_table(kg_path), read_table(link_path), item_ids, cfg.min_count, name)
    missing = np.diff(x.indptr) == 0
    if missing.all():
        raise DataError(
            f"{kg_path}, {link_path}: features.{name}: no item of the dataset has a linked entity "
            f"with KG neighbours shared by >= {cfg.min_count} items (min_count)"
        )
    try:
        values = truncated_svd(x, cfg.dim, cfg.seed)
    except ValueError as e:
        raise DataError(f"{kg_path}, {link_path}: features.{name}: {e}") from None
    return finish(values, missing)
