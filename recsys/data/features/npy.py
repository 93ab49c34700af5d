"""Precomputed feature matrices (``.npy``), as MMRec ships ``image_feat.npy`` / ``text_feat.npy``.

Row ``r`` of the file belongs to the item with original id ``r + id_offset`` (or the id on line
``r + 1`` of ``ids_path``). The rows of the dataset's items are gathered in ``item_idx`` order.
All-zero rows are treated as missing: MMRec pads items without an image or text with zeros.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from recsys.data.features.config import NpyConfig
from recsys.data.features.tables import IDX, items_frame
from recsys.data.features.values import RawFeatures, finish
from recsys.errors import DataError

SHOW = 10
"""How many offending rows a message lists."""


def load_matrix(path: Path) -> np.ndarray:
    """The file's array, memory-mapped, checked to be 2-D and real-valued.

    Raises:
        DataError: unreadable, not 2-D, or not a real numeric dtype (names the file).
    """
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read as .npy ({e})") from None
    if not isinstance(arr, np.ndarray):
        raise DataError(f"{path}: not a single .npy array")
    if arr.ndim != 2:
        raise DataError(f"{path}: expected a 2-D (rows, dim) array, got shape {arr.shape}")
    real = np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    if not real:
        raise DataError(f"{path}: expected a numeric (integer or float) array, got {arr.dtype}")
    return arr


def _listing(values: np.ndarray) -> str:
    shown = ", ".join(str(v) for v in values[:SHOW].tolist())
    return shown + (f", … ({values.size} in all)" if values.size > SHOW else "")


def rows_by_offset(path: Path, n_rows: int, item_ids: np.ndarray, offset: int) -> np.ndarray:
    """``row = int(item_id) - offset`` for every item.

    Raises:
        DataError: a non-integer id, or a row outside ``0..n_rows-1``.
    """
    ids = pl.Series(np.asarray(item_ids).astype(str))
    as_int = ids.str.strip_chars().cast(pl.Int64, strict=False)
    bad = ids.filter(as_int.is_null())
    if bad.len():
        raise DataError(
            f"{path}: item id {bad[0]!r} is not an integer, so it has no row "
            f"(row = item_id - id_offset); give ids_path, one item id per row"
        )
    rows = as_int.to_numpy() - offset
    outside = np.flatnonzero((rows < 0) | (rows >= n_rows))
    if outside.size:
        worst = outside[np.argmax(np.abs(rows[outside] - (n_rows - 1) / 2))]
        raise DataError(
            f"{path} has {n_rows} rows but item id {ids[int(worst)]} needs row {rows[worst]} "
            f"(row = item_id - id_offset, id_offset = {offset}); {outside.size} items outside"
        )
    return rows


def rows_by_ids_file(ids_path: Path, path: Path, n_rows: int, item_ids: np.ndarray) -> np.ndarray:
    """The row of every item from a row-aligned id list; ``-1`` for items it does not list.

    Raises:
        DataError: the list's length differs from the matrix's rows, or it repeats an id.
    """
    listed = pl.Series(ids_path.read_text(encoding="utf-8").splitlines()).str.strip_chars()
    listed = listed.filter(listed != "")
    if listed.len() != n_rows:
        raise DataError(
            f"{ids_path}: {listed.len()} item ids but {path} has {n_rows} rows (row-aligned)"
        )
    dup = listed.filter(listed.is_duplicated())
    if dup.len():
        raise DataError(f"{ids_path}: item id {dup[0]!r} is listed more than once")
    table = pl.DataFrame({"__item_id": listed}).with_row_index("row")
    joined = items_frame(item_ids).join(table, on="__item_id", how="left").sort(IDX)
    return joined["row"].cast(pl.Int64).fill_null(-1).to_numpy()


def build_npy(
    name: str, cfg: NpyConfig, files: dict[str, Path], item_ids: np.ndarray
) -> RawFeatures:
    """Gather the dataset's rows; all-zero rows and unlisted items are missing.

    Raises:
        DataError: a bad file (see :func:`load_matrix`), an item without a row, or NaN/inf in
            a row the dataset uses (lists the rows and item ids).
    """
    path = files["path"]
    arr = load_matrix(path)
    n_rows = int(arr.shape[0])
    if "ids_path" in files:
        rows = rows_by_ids_file(files["ids_path"], path, n_rows, item_ids)
    else:
        rows = rows_by_offset(path, n_rows, item_ids, cfg.id_offset)
    listed = rows >= 0
    values = np.zeros((rows.size, arr.shape[1]), dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):  # float64 beyond float32 → inf, caught
        values[listed] = arr[rows[listed]]
    finite = np.isfinite(values[listed]).all(axis=1)
    if not finite.all():
        idx = np.flatnonzero(listed)[~finite]
        raise DataError(
            f"{path}: rows {_listing(rows[idx])} (item ids "
            f"{_listing(np.asarray(item_ids).astype(str)[idx])}) contain NaN or inf"
        )
    missing = ~listed | ~values.any(axis=1)
    return finish(values, missing)
