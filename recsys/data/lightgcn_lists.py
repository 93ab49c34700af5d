"""LightGCN/NGCF-style adjacency lists: one line per user, ``uid item item ...``.

Ids are non-negative integers separated by whitespace (the NGCF/LightGCN Gowalla, Yelp2018 and
Amazon-Book splits use 0-based remapped ids). A line with only a user id (no items) is allowed
and yields no interaction. A source directory holds ``train.txt`` and ``test.txt`` (optionally
``.gz``); the reference splits have no validation file, so validation is carved from train
(``split.valid_from_train``).

Ids are kept as strings in the standard frame like every other source; because they are all
integers, the id maps order them numerically (see :func:`recsys.data.prepare.sorted_ids`), so
``user_idx == uid`` and ``item_idx == item`` whenever every id appears in train.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from recsys.data.sources import ITEM, LINE, RATING, SPLIT, TS, USER, first_file, read_bytes
from recsys.errors import DataError

TRAIN_NAMES = ("train.txt",)
TEST_NAMES = ("test.txt",)


def list_files(folder: Path) -> tuple[Path, Path]:
    """``(train, test)`` list files of a LightGCN-style directory."""
    if not folder.exists():
        raise DataError(f"{folder}: directory not found (source.path)")
    if not folder.is_dir():
        raise DataError(f"{folder}: source.format 'lightgcn' needs a directory with train.txt")
    return first_file(folder, TRAIN_NAMES, "train list"), first_file(folder, TEST_NAMES, "test")


def read_lists(path: Path, split: int) -> pl.DataFrame:
    """Read one list file into standard columns with ``split`` set to ``split``.

    Args:
        path: ``train.txt`` / ``test.txt`` (``.gz`` allowed).
        split: 0 (train), 1 (valid) or 2 (test).

    Returns:
        ``user_id``, ``item_id`` (strings of the integer ids), null ``rating``/``timestamp``,
        ``split`` (Int8) and ``_line`` (the 1-based line), in file order.

    Raises:
        DataError: a token that is not a non-negative integer (file and line).
    """
    text = read_bytes(path).decode("utf-8", "replace")
    lines = pl.Series("text", text.split("\n"))
    toks = (
        pl.DataFrame({"text": lines})
        .lazy()
        .with_row_index(LINE, offset=1)
        .with_columns(pl.col("text").str.replace_all(r"\s+", " ").str.strip_chars().str.split(" "))
        .explode("text")
        .filter(pl.col("text") != "")
        .with_columns(
            pl.int_range(pl.len()).over(LINE).alias("_pos"),
            pl.col("text").cast(pl.Int64, strict=False).alias("_id"),
        )
        .collect()
    )
    bad = toks.filter(pl.col("_id").is_null() | (pl.col("_id") < 0))
    if bad.height:
        raise DataError(
            f"{path}: line {bad[LINE][0]}: {bad['text'][0]!r} is not a non-negative integer id"
        )
    ids = pl.col("_id").cast(pl.String)
    return (
        toks.lazy()
        .with_columns(ids.first().over(LINE).alias(USER))
        .filter(pl.col("_pos") > 0)
        .select(
            pl.col(USER),
            ids.alias(ITEM),
            pl.lit(None, dtype=pl.Float64).alias(RATING),
            pl.lit(None, dtype=pl.Float64).alias(TS),
            pl.lit(split, dtype=pl.Int8).alias(SPLIT),
            pl.col(LINE).cast(pl.Int64),
        )
        .collect()
    )
