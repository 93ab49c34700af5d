"""Item-feature configuration: one ``[features.<name>]`` table per modality, keyed on ``kind``.

A data config lists its modalities as ``features: dict[str, ModalityConfig]``::

    [features.text]
    kind = "text"
    template = "{movie_title} ({release_year}). Genres: {class}"
    [features.tabular]
    kind = "tabular"
    multi_hot = ["class"]
    numeric = ["release_year"]
    [features.kg]
    kind = "kg"
    dim = 64
    [features.image]
    kind = "npy"
    path = "image_feat.npy"

Paths resolve like every data path (the config file's directory, then the working directory).
An empty ``path`` / ``kg_path`` / ``link_path`` means the companion file of the interaction file:
``<stem>.item`` / ``<stem>.kg`` / ``<stem>.link`` beside ``<stem>.inter`` (RecBole's layout).

This module imports nothing but pydantic and :mod:`recsys.config`, so the data config can
import it without cycles.
"""

from __future__ import annotations

import string
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from recsys.config import StrictModel
from recsys.types import MissingPolicy


class _Modality(StrictModel):
    """Fields common to every kind."""

    missing: MissingPolicy = "learned"
    """What models do with items that have no value: ``learned`` (a trainable placeholder),
    ``mean`` (the mean of the present rows is stored in their place) or ``zero``."""


class TextConfig(_Modality):
    """Item text rendered from an item table, encoded with MiniLM (384-d, L2-normalised).

    ``template`` is a Python format string over the table's columns by bare name (an atomic
    header ``movie_title:token_seq`` is the column ``movie_title``); ``{{`` / ``}}`` are literal
    braces. Values render as follows: a null (empty field) renders as ``""``; a ``token_seq`` or
    ``float_seq`` column renders its whitespace-separated tokens joined by ``", "``
    (``Animation Children's Comedy`` → ``Animation, Children's, Comedy``), except the
    ``verbatim`` columns; every other value renders as written in the file. Items with no row in
    the table are missing.
    """

    kind: Literal["text"] = "text"
    path: str = ""
    """The item table (RecBole atomic ``.item``: tab-separated, ``name:type`` header);
    ``""``: ``<stem>.item`` beside the interaction file."""
    id_column: str = "item_id"
    template: str = Field(min_length=1)
    verbatim: list[str] | None = None
    """``token_seq`` columns that hold free text, rendered as written (RecBole stores titles word
    by word as ``token_seq``). ``None``: the columns whose name ends in ``title``, ``name``,
    ``text`` or ``description``."""
    batch_size: int = Field(default=256, gt=0)

    @field_validator("template")
    @classmethod
    def _check_template(cls, value: str) -> str:
        template_fields(value)
        return value


class TabularConfig(_Modality):
    """Columns of an item table as numbers.

    Output columns, in this order: one 0/1 column per token of each ``multi_hot`` column
    (whitespace-separated ``token_seq``; tokens sorted), one 0/1 column per value of each
    ``categorical`` column (values sorted; a null is all zeros), then each ``numeric`` column
    z-scored over the dataset's present items, ``(x - mean) / std`` (population std; a constant
    column gives 0), with nulls and unparseable values set to 0 after z-scoring plus one 0/1
    "was null" column per numeric column that has any. Vocabularies are built from the
    dataset's items only. Items with no row in the table are missing.
    """

    kind: Literal["tabular"] = "tabular"
    path: str = ""
    """The item table; ``""``: ``<stem>.item`` beside the interaction file."""
    id_column: str = "item_id"
    multi_hot: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    numeric: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _some_column(self) -> TabularConfig:
        cols = [*self.multi_hot, *self.categorical, *self.numeric]
        if not cols:
            raise ValueError(
                "tabular features need at least one column in multi_hot, categorical or numeric"
            )
        for group in ("multi_hot", "categorical", "numeric"):
            listed: list[str] = getattr(self, group)
            dup = sorted({c for c in listed if listed.count(c) > 1})
            if dup:
                raise ValueError(f"{group} lists {', '.join(dup)} more than once")
        return self


class KgConfig(_Modality):
    """Knowledge-graph neighbourhoods reduced by truncated SVD.

    Each item is linked to an entity (``link_path``: ``item_id``, ``entity_id``); its row is the
    multi-hot vector of that entity's KG neighbours in both directions (tails where it is the
    head, heads where it is the tail), keeping only neighbours shared by at least ``min_count``
    items. The item × neighbour matrix ``X`` is factorised, ``X ≈ U S Vᵀ`` (top ``k``), and the
    features are ``U S`` (each component's sign fixed so its largest-magnitude entry is
    positive), ``k = min(dim, min(X.shape) - 1)``. Items without a link, or whose row is empty,
    are missing.
    """

    kind: Literal["kg"] = "kg"
    kg_path: str = ""
    """RecBole ``.kg`` (``head_id``, ``relation_id``, ``tail_id``); ``""``: ``<stem>.kg``."""
    link_path: str = ""
    """RecBole ``.link`` (``item_id``, ``entity_id``); ``""``: ``<stem>.link``."""
    dim: int = Field(default=64, gt=0)
    min_count: int = Field(default=2, ge=1)
    seed: int = 0


class NpyConfig(_Modality):
    """A precomputed ``(rows, d)`` feature matrix (MMRec's ``image_feat.npy`` / ``text_feat.npy``).

    Row ``r`` holds the item whose original id is ``r + id_offset`` (MMRec's ids are 0-based, so
    0), or, with ``ids_path``, the id on line ``r + 1`` of that file (items not listed there are
    missing). All-zero rows are treated as missing (MMRec pads absent items with zeros).
    """

    kind: Literal["npy"] = "npy"
    path: str = Field(min_length=1)
    id_offset: int = 0
    ids_path: str = ""


ModalityConfig = Annotated[
    TextConfig | TabularConfig | KgConfig | NpyConfig, Field(discriminator="kind")
]
"""One ``[features.<name>]`` table."""

FREE_TEXT_SUFFIXES = ("title", "name", "text", "description")


def template_fields(template: str) -> list[str]:
    """The column names a template reads, in order (duplicates kept).

    Raises:
        ValueError: unbalanced braces, no field at all, a positional field (``{}``), or a field
            with an attribute, index, conversion or format spec (only ``{column}`` is allowed).
    """
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as e:
        raise ValueError(f"template {template!r}: {e}") from None
    names: list[str] = []
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if not field or field.isdigit():
            raise ValueError(f"template {template!r}: fields must name a column, e.g. {{title}}")
        if spec or conversion or any(ch in field for ch in ".[]"):
            raise ValueError(
                f"template {template!r}: field {{{field}...}} may only name a column "
                "(no attribute, index, conversion or format spec)"
            )
        names.append(field)
    if not names:
        raise ValueError(f"template {template!r}: no {{column}} field")
    return names
