"""Data configuration (conf/data/*.toml): source, cleaning, split."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from recsys.config import StrictModel
from recsys.data.features.config import ModalityConfig
from recsys.data.multitask.config import MultiTaskConfig

Format = Literal["atomic", "movielens", "lightgcn", "csv", "tsv", "parquet"]


class Columns(StrictModel):
    """Which input columns hold what (csv/tsv/parquet); atomic files use their own names.

    An empty string for ``rating`` or ``timestamp`` means the input has no such column (TOML
    has no null).
    """

    user: str = "user_id"
    item: str = "item_id"
    rating: str | None = "rating"
    timestamp: str | None = "timestamp"

    @field_validator("rating", "timestamp", mode="after")
    @classmethod
    def _empty_is_absent(cls, value: str | None) -> str | None:
        return value or None


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


class NoiseConfig(StrictModel):
    """Noise: known false positives in train, labelled by an ``is_noise`` column.

    **Injected** (``ratio > 0``): after the split, each train user ``u`` gets
    ``floor(ratio * |train_u|)`` extra train interactions drawn without replacement from the
    items the user has in no split (``exclude = "all_splits"``) or only not in train
    (``exclude = "train"``, the PLD code's rule, which lets noise land on the user's valid/test
    items), uniformly or in proportion to train popularity. Valid and test stay clean.

    **Natural** (``natural = "rating"``): an interaction is noisy when its rating is below
    ``clean_min_rating``. A per-interaction 0/1 clean label (the SGDL ml-100k files) is read as
    the rating column with ``clean_min_rating = 1``. Training uses every interaction; test keeps
    only clean ones (noisy test rows are dropped and counted); validation keeps all of them
    unless ``clean_valid``. Both kinds combine: injection then adds to the natural noise.
    """

    ratio: float = Field(default=0.0, ge=0.0, lt=1.0)
    seed: int = 2024
    """The noise seed (independent of the split seed and the model seed)."""
    sampling: Literal["uniform", "popularity"] = "uniform"
    exclude: Literal["all_splits", "train"] = "all_splits"
    natural: Literal["none", "rating"] = "none"
    clean_min_rating: float = 4.0
    clean_valid: bool = False


class DataConfig(StrictModel):
    """One dataset: where it is, how it is cleaned and split, and its item modalities.

    ``features`` maps a modality name to its config (``[features.<name>]`` tables, see
    :mod:`recsys.data.features`). Features are cached apart from the interactions, so adding
    a modality does not re-prepare the split.
    """

    name: str = "ml-100k"
    source: SourceConfig = SourceConfig()
    clean: CleanConfig = CleanConfig()
    split: SplitConfig = Field(default_factory=SplitConfig)
    noise: NoiseConfig = NoiseConfig()
    features: dict[str, ModalityConfig] = Field(default_factory=dict)
    multitask: MultiTaskConfig | None = None
    """Multi-task samples built from this data (see :mod:`recsys.data.multitask`)."""
    cache_dir: str = "data/cache"
