"""Data configuration (conf/data/*.toml): source, cleaning, split."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from recsys.config import StrictModel

Format = Literal["atomic", "movielens", "lightgcn", "csv", "tsv", "parquet"]


class Columns(StrictModel):
    """Which input columns hold what (csv/tsv/parquet); atomic files use their own names."""

    user: str = "user_id"
    item: str = "item_id"
    rating: str | None = "rating"
    timestamp: str | None = "timestamp"


class SourceConfig(StrictModel):
    """Where interactions come from.

    ``path`` is a file or directory; ``builtin:ml-100k`` is MovieLens-100K as RecBole ships it.
    Relative paths are resolved against the config file's directory, then the working directory.
    """

    format: Format = "atomic"
    path: str = "builtin:ml-100k"
    columns: Columns = Columns()
    separator: str | None = None
    """Field separator for csv/tsv (default: ``,`` / tab)."""
    has_header: bool = True


class CleanConfig(StrictModel):
    """Cleaning steps, applied in order: dedup → rating threshold → iterative k-core."""

    dedup: Literal["none", "first", "last"] = "last"
    """Duplicate (user, item) rows: keep the earliest, the latest, or keep all ("none")."""
    min_rating: float | None = None
    """Keep rows with rating >= min_rating (None: keep all)."""
    user_core: int = 0
    """Iterative k-core: every user keeps at least this many interactions (0: off)."""
    item_core: int = 0
    """Iterative k-core: every item keeps at least this many interactions (0: off)."""
    apply_to_given: bool = False
    """Apply cleaning to given splits too (off by default: given splits are used as they are)."""


class GivenSplit(StrictModel):
    """Pre-split files. Each path is read with the source's format and columns."""

    train: str
    test: str
    valid: str | None = None


class SplitConfig(StrictModel):
    """How interactions are split into train/valid/test.

    * ``random``: per user, shuffled, ``ratios`` of each user's interactions.
    * ``temporal``: per user, ordered by timestamp, oldest to train, newest to test.
    * ``global_temporal``: one time cutoff for everyone, from ``ratios`` over all interactions.
    * ``loo``: leave-one-out: each user's latest interaction to test, the one before to valid.
    * ``given``: ``given.train/valid/test`` files (valid carved from train when absent).
    * ``column``: a split column in the source (MMRec's ``x_label``: 0 train, 1 valid, 2 test).
    * ``lightgcn``: the source directory holds LightGCN-style ``train.txt`` and ``test.txt``.
    """

    method: Literal[
        "random", "temporal", "global_temporal", "loo", "given", "column", "lightgcn"
    ] = "random"
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 2020
    """The split seed (shuffles, tie-breaking, valid carved from train)."""
    given: GivenSplit | None = None
    column: str = "x_label"
    column_values: tuple[int, int, int] = (0, 1, 2)
    valid_from_train: float = 0.1
    """Share of each user's train items carved out as validation when a given split has none."""


class DataConfig(StrictModel):
    """One dataset: where it is, how it is cleaned and split."""

    name: str = "ml-100k"
    source: SourceConfig = SourceConfig()
    clean: CleanConfig = CleanConfig()
    split: SplitConfig = Field(default_factory=SplitConfig)
    cache_dir: str = "data/cache"
