"""Multi-task data configuration: the ``[multitask]`` table of a data config.

Two builders:

* ``[multitask.ratings]``: tasks from a rated, timestamped interaction log (MovieLens): the
  prepared split's events are ``watch`` positives, sampled unrated items are ``watch``
  negatives, ``like`` is ``rating >= like_min_rating`` on watched items only; user and item
  features come from the source's ``.user`` / ``.item`` tables; behaviour sequences hold each
  user's strictly earlier events.
* ``[multitask.table]``: one row per sample in a delimited file with a binary label per task
  (census-income); rows are split at random, seeded.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from recsys.config import StrictModel

Behaviour = Literal["watched", "liked", "disliked"]
RATING_TASKS = ("watch", "like")
"""The tasks of the rating builder, in label-column order."""


class ColumnSpec(StrictModel):
    """How one input column becomes a feature.

    * ``category``: one categorical field; values seen fewer than ``min_count`` times (in
      train rows, or in the entity table) share code 0 with missing values.
    * ``numeric``: one dense column, z-scored with train statistics; missing → 0 (the mean).
    * ``bins``: a number bucketed by ``edges`` (bucket ``i`` holds ``edges[i-1] <= x <
      edges[i]``) as a categorical field.
    * ``prefix``: the first ``length`` characters of the value as a categorical field.
    * ``multi_hot``: ``separator``-separated tokens as 0/1 dense columns (not z-scored).
    """

    kind: Literal["category", "numeric", "bins", "prefix", "multi_hot"] = "category"
    edges: tuple[float, ...] = ()
    length: int = Field(default=1, ge=1)
    separator: str = " "
    min_count: int = Field(default=1, ge=1)
    invalid: Literal["error", "missing"] = "error"
    """A non-numeric value in a ``numeric``/``bins`` column: an error, or treated as missing."""

    @model_validator(mode="after")
    def _edges_sorted(self) -> ColumnSpec:
        if self.kind == "bins" and (
            not self.edges or any(a >= b for a, b in zip(self.edges, self.edges[1:], strict=False))
        ):
            raise ValueError("kind 'bins' needs strictly increasing edges")
        return self


def _ml100k_users() -> dict[str, ColumnSpec]:
    return {
        "age": ColumnSpec(kind="bins", edges=(18, 25, 35, 45, 50, 56)),
        "gender": ColumnSpec(),
        "occupation": ColumnSpec(),
        "zip_code": ColumnSpec(kind="prefix", length=1),
    }


def _ml100k_items() -> dict[str, ColumnSpec]:
    return {
        "release_year": ColumnSpec(
            kind="bins", edges=tuple(range(1930, 2000, 10)), invalid="missing"
        ),  # ml-100k has two years spelled "unkonwn"
        "class": ColumnSpec(kind="multi_hot"),
    }


class RatingTasks(StrictModel):
    """Tasks ``watch`` and ``like`` from ratings (see the module docstring).

    Behaviour sequences: for a sample at time ``t`` of user ``u``, behaviour ``b``'s sequence is
    ``u``'s last ``seq_len`` events of kind ``b`` with timestamp ``< t`` (an event at the same
    timestamp is not earlier). ``watched``: every rated event; ``liked``: rating >=
    ``like_min_rating``; ``disliked``: rating <= ``dislike_max_rating``. A sampled negative
    has its positive's time and history.
    """

    like_min_rating: float = 4.0
    dislike_max_rating: float = 2.0
    negatives: int = Field(default=4, ge=0)
    """Unrated items sampled per rated event as ``watch`` negatives (uniform, per split)."""
    seed: int = 7
    """Seed of the negative sampling (independent of the split and model seeds)."""
    seq_len: int = Field(default=20, ge=1)
    behaviours: tuple[Behaviour, ...] = ("watched", "liked", "disliked")
    user_table: str = ""
    """Atomic user table (default: the source's ``.user`` companion)."""
    item_table: str = ""
    """Atomic item table (default: the source's ``.item`` companion)."""
    user_columns: dict[str, ColumnSpec] = Field(default_factory=_ml100k_users)
    item_columns: dict[str, ColumnSpec] = Field(default_factory=_ml100k_items)
    rank: dict[str, float] = Field(default_factory=lambda: {"watch": 1.0, "like": 1.0})
    """Top-N score ``Σ_k w_k log p_k`` (default ``p_watch · p_like``, ESMM's entire-space
    product); the targets are the split's liked items."""

    @model_validator(mode="after")
    def _check(self) -> RatingTasks:
        if self.dislike_max_rating >= self.like_min_rating:
            raise ValueError("dislike_max_rating must be below like_min_rating")
        unknown = [k for k in self.rank if k not in RATING_TASKS]
        if unknown:
            raise ValueError(f"rank: unknown task {unknown[0]!r}; tasks: watch, like")
        return self


class TaskLabel(StrictModel):
    """A binary task read from a column: 1 where the value is one of ``positive``."""

    column: str
    positive: tuple[str, ...] = Field(min_length=1)


class TableTasks(StrictModel):
    """Samples from one delimited file (see the module docstring).

    Every column that is neither a task's column, nor in ``exclude``, nor ``group`` is a
    feature: ``numeric`` columns are dense, the others categorical (``min_count`` applies).
    Values are stripped of surrounding spaces.
    """

    path: str
    columns: tuple[str, ...] = ()
    """Column names for a file without a header (empty: the header's names)."""
    separator: str = ","
    tasks: dict[str, TaskLabel] = Field(min_length=1)
    numeric: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    group: str = ""
    """A column whose values group rows (a user or session id) for GAUC; empty: none."""
    min_count: int = Field(default=1, ge=1)
    ratios: tuple[float, float, float] = (0.5, 0.25, 0.25)
    seed: int = 2020
    """Seed of the random row split."""

    @model_validator(mode="after")
    def _check(self) -> TableTasks:
        if "mean" in self.tasks:
            raise ValueError("tasks: 'mean' is reserved (mean/auc is the mean over tasks)")
        if any(r < 0 for r in self.ratios) or abs(sum(self.ratios) - 1.0) > 1e-9:
            raise ValueError("ratios must be non-negative and sum to 1")
        if self.ratios[0] == 0 or self.ratios[2] == 0:
            raise ValueError("ratios: train and test must be non-empty")
        return self


class MultiTaskConfig(StrictModel):
    """Exactly one of ``ratings`` or ``table``."""

    ratings: RatingTasks | None = None
    table: TableTasks | None = None

    @model_validator(mode="after")
    def _one(self) -> MultiTaskConfig:
        if (self.ratings is None) == (self.table is None):
            raise ValueError("set exactly one of [multitask.ratings] or [multitask.table]")
        return self

    @property
    def tasks(self) -> tuple[str, ...]:
        """The task names, in label-column order."""
        return RATING_TASKS if self.table is None else tuple(self.table.tasks)
