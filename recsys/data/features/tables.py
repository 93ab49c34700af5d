"""Input files of a modality: locating them and reading RecBole atomic tables.

An atomic table is tab-separated text with a ``name:type`` header (``item_id:token``,
``class:token_seq``); the ``:type`` suffix is optional (default ``token``). Every column is read
as a string; an empty field is null.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from recsys.data.features.config import KgConfig, ModalityConfig, NpyConfig
from recsys.data.sources import read_delimited, resolve_path
from recsys.errors import ConfigError, DataError

IDX = "__item_idx"
"""The dataset's item index column in aligned frames."""
LINE = "_line"
COMPANION = {"path": ".item", "kg_path": ".kg", "link_path": ".link"}


@dataclass(frozen=True)
class Table:
    """An atomic table.

    Attributes:
        path: the file.
        frame: string columns by bare name, plus ``_line`` (the 1-based file line).
        types: the declared type of each column (``token`` when the header has none).
    """

    path: Path
    frame: pl.DataFrame
    types: dict[str, str]

    @property
    def columns(self) -> list[str]:
        return list(self.types)

    def need(self, column: str, key: str) -> None:
        """Raise :class:`DataError` naming the file, the column and the available ones."""
        if column not in self.types:
            raise DataError(
                f"{self.path}: column {column!r} ({key}) not found; available: "
                f"{', '.join(self.columns)}"
            )


def companion(source_file: Path, suffix: str) -> Path:
    """``<stem><suffix>`` beside the interaction file (``x.inter`` / ``x.inter.gz`` → ``x.item``),
    or its ``.gz`` when only that exists."""
    base = source_file.with_suffix("") if source_file.suffix == ".gz" else source_file
    plain = base.with_suffix(suffix)
    gz = plain.with_name(plain.name + ".gz")
    return gz if not plain.exists() and gz.exists() else plain


def input_files(
    name: str, cfg: ModalityConfig, base_dir: Path | None, source_file: Path | None
) -> dict[str, Path]:
    """The files a modality reads, by config key (``path``, ``kg_path``, ``link_path``,
    ``ids_path``), resolved and checked.

    Raises:
        ConfigError: a companion default is needed but there is no single interaction file
            (LightGCN lists, given splits).
        DataError: a file does not exist (names the path and ``features.<name>.<key>``).
    """
    if isinstance(cfg, KgConfig):
        wanted = {"kg_path": cfg.kg_path, "link_path": cfg.link_path}
    elif isinstance(cfg, NpyConfig):
        wanted = {"path": cfg.path, **({"ids_path": cfg.ids_path} if cfg.ids_path else {})}
    else:
        wanted = {"path": cfg.path}
    out: dict[str, Path] = {}
    for key, value in wanted.items():
        if value:
            path = resolve_path(value, base_dir)
        elif source_file is None:
            raise ConfigError(
                f"features.{name}.{key}: there is no single interaction file to find the "
                f"default <stem>{COMPANION[key]} beside (lightgcn lists or given splits); "
                f"set features.{name}.{key}"
            )
        else:
            path = companion(source_file, COMPANION[key])
        if not path.is_file():
            raise DataError(f"{path}: file not found (features.{name}.{key})")
        out[key] = path
    return out


def read_table(path: Path) -> Table:
    """Read an atomic table (all columns as strings).

    Raises:
        DataError: unreadable, empty, a wrong field count (file and line), duplicate names.
    """
    df = read_delimited(path, separator="\t", has_header=True)
    headers = [c for c in df.columns if c != LINE]
    names = [h.split(":", 1)[0].strip() for h in headers]
    types = [h.split(":", 1)[1].strip() if ":" in h else "token" for h in headers]
    if len(set(names)) != len(names):
        raise DataError(f"{path}: line 1: duplicate column names in the header: {names}")
    df = df.rename(dict(zip(headers, names, strict=True)))
    return Table(path, df, dict(zip(names, types, strict=True)))


def items_frame(item_ids: np.ndarray) -> pl.DataFrame:
    """``(__item_id, __item_idx)`` of the dataset's items (``item_idx`` = position)."""
    ids = pl.Series("__item_id", np.asarray(item_ids).astype(str), dtype=pl.String)
    return pl.DataFrame([ids]).with_row_index(IDX).with_columns(pl.col(IDX).cast(pl.Int64))


def align(table: Table, id_column: str, item_ids: np.ndarray, key: str) -> pl.DataFrame:
    """The table's rows for the dataset's items, one per ``item_idx`` in order.

    Items without a row get nulls and ``IDX`` stays the item index; the column ``__present``
    says which have a row.

    Raises:
        DataError: the id column is absent, or an id occurs on two lines.
    """
    table.need(id_column, key)
    df = table.frame.with_columns(pl.col(id_column).str.strip_chars().alias("__item_id"))
    dup = df.filter(pl.col("__item_id").is_duplicated())
    if dup.height:
        first = dup["__item_id"][0]
        lines = dup.filter(pl.col("__item_id") == first)[LINE]
        raise DataError(
            f"{table.path}: line {lines[1]}: duplicate {id_column} {first!r} "
            f"(first on line {lines[0]})"
        )
    joined = items_frame(item_ids).join(
        df.with_columns(pl.lit(True).alias("__present")), on="__item_id", how="left"
    )
    return joined.sort(IDX).with_columns(pl.col("__present").fill_null(False))


def present_mask(aligned: pl.DataFrame) -> np.ndarray:
    """``(n_items,)`` bool: the items that have a row."""
    return aligned["__present"].to_numpy().astype(bool)
