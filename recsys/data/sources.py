"""Interaction sources: every input format becomes one standard polars frame.

The standard frame has the columns

* ``user_id`` (String), ``item_id`` (String): original ids, always strings (ASINs, numbers ...);
* ``rating`` (Float64, may be null), ``timestamp`` (Float64 seconds or whatever unit the file
  uses, may be null);
* ``split`` (Int8: 0 train, 1 valid, 2 test) only when the source carries a split;
* ``_row`` (Int64): the input order (0-based, continuing across the files of one source), used
  for every "then by row order" tie-break downstream.

Text formats are read with every column as a string, then validated in vectorised passes: a
wrong number of fields, an empty id, or a rating/timestamp that is not a finite number raises
:class:`DataError` naming the file and its 1-based line. An empty rating/timestamp field is
allowed (null). Supported formats (``source.format``):

* ``atomic``: RecBole atomic files (``.inter``), tab-separated, header ``name:type``
  (``user_id:token``); the ``:type`` suffix is optional (MMRec's ``userID  itemID ...``).
  ``source.columns`` names the columns (defaults match RecBole). ``path`` is the ``.inter`` file
  or a directory holding ``<name>.inter`` (the dataset name, else the directory's name).
* ``movielens``: GroupLens originals: ``u.data`` (tab, no header: user item rating timestamp),
  ``ratings.dat`` (``::``) or ``ratings.csv`` (header ``userId,movieId,rating,timestamp``);
  ``path`` is the file or the dataset directory.
* ``csv`` / ``tsv``: delimited text with ``source.columns`` (``separator`` / ``has_header``);
  ``parquet``: the same mapping on a parquet file.
* ``lightgcn``: ``uid item item ...`` lists, see :mod:`recsys.data.lightgcn_lists`.

Any text file may be gzip-compressed (``.gz``).
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import polars as pl

from recsys.data.config import Columns, SourceConfig
from recsys.errors import DataError

USER, ITEM, RATING, TS, SPLIT, ROW = "user_id", "item_id", "rating", "timestamp", "split", "_row"
LINE = "_line"
STANDARD = (USER, ITEM, RATING, TS)

MOVIELENS_FILES = ("u.data", "ratings.dat", "ratings.csv")
MOVIELENS_COLUMNS = ("user_id", "item_id", "rating", "timestamp")


def resolve_path(path: str | Path, base_dir: Path | None) -> Path:
    """Resolve a config path: absolute as is, else ``base_dir / path`` if it exists, else CWD.

    Returns the CWD-relative candidate (absolute) when neither exists, so errors name it.
    """
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    if base_dir is not None and (base_dir / p).exists():
        return (base_dir / p).resolve()
    return (Path.cwd() / p).resolve()


def read_bytes(path: Path) -> bytes:
    """The file's bytes (gunzipped for ``.gz``); a missing file raises :class:`DataError`."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DataError(f"{path}: not a valid gzip file ({e})") from None
    return raw


def first_file(folder: Path, names: tuple[str, ...], what: str) -> Path:
    """The first of ``names`` (or ``name.gz``) present in ``folder``."""
    for name in names:
        for cand in (folder / name, folder / f"{name}.gz"):
            if cand.is_file():
                return cand
    raise DataError(f"{folder}: no {what} file found (looked for {', '.join(names)})")


def locate_file(path: Path, fmt: str, name: str) -> Path:
    """The interaction file of a ``source.path`` that may be a directory.

    Raises:
        DataError: the path does not exist or the directory holds no suitable file.
    """
    if not path.exists():
        raise DataError(f"{path}: file not found (source.path)")
    if path.is_file():
        return path
    if fmt == "atomic":
        cands = (f"{name}.inter", f"{path.name}.inter")
        for c in cands:
            if (path / c).is_file():
                return path / c
        inters = sorted(path.glob("*.inter"))
        if len(inters) == 1:
            return inters[0]
        raise DataError(f"{path}: no {' or '.join(dict.fromkeys(cands))} in this directory")
    if fmt == "movielens":
        return first_file(path, MOVIELENS_FILES, "MovieLens ratings")
    raise DataError(f"{path}: is a directory; source.format {fmt!r} needs a file")


def _field_check(data: bytes, sep: bytes, n_fields: int, path: Path, skip: int) -> None:
    """Raise on the first non-blank line whose field count is not ``n_fields`` (vectorised).

    Args:
        data: the whole file, ``\\n``-separated lines.
        sep: a one-byte separator.
        n_fields: the expected number of fields per line.
        path: for the message.
        skip: leading lines not checked (the header).
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    nl = np.flatnonzero(buf == 10)
    starts = np.concatenate(([0], nl + 1))
    ends = np.concatenate((nl, [buf.size]))
    seps = np.flatnonzero(buf == sep[0])
    counts = np.searchsorted(seps, ends) - np.searchsorted(seps, starts)
    length = ends - starts
    cr = np.zeros_like(length, dtype=bool)
    nonempty = length > 0
    cr[nonempty] = buf[ends[nonempty] - 1] == 13
    blank = (length - cr) == 0
    bad = ~blank & (counts != n_fields - 1)
    bad[:skip] = False
    hits = np.flatnonzero(bad)
    if hits.size:
        i = int(hits[0])
        found = int(counts[i]) + 1
        raise DataError(
            f"{path}: line {i + 1}: expected {n_fields} fields separated by {sep.decode()!r}, "
            f"found {found}"
        )


def read_delimited(
    path: Path,
    *,
    separator: str,
    has_header: bool,
    names: list[str] | None = None,
    quote: str | None = None,
) -> pl.DataFrame:
    """Read delimited text as all-string columns plus ``_line`` (the 1-based file line).

    Args:
        path: the file (``.gz`` allowed).
        separator: one byte, or ``::`` (MovieLens ``.dat``).
        has_header: whether the first line holds the column names.
        names: column names when there is no header.
        quote: the quote character (``None``: quotes are ordinary characters).

    Raises:
        DataError: missing file, wrong field count (file and line), unparsable content.
    """
    data = read_bytes(path).removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark
    if len(separator) > 1:
        data = data.replace(separator.encode(), b"\x1f")
        separator = "\x1f"
    if not data.strip():
        raise DataError(f"{path}: file is empty")
    if has_header:
        header = data.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", "replace")
        n_fields = len(header.split(separator))
    else:
        n_fields = len(names or [])
    quoted = quote is not None and quote.encode() in data
    if not quoted:
        _field_check(data, separator.encode(), n_fields, path, 1 if has_header else 0)
    try:
        df = pl.read_csv(
            io.BytesIO(data),
            separator=separator,
            has_header=has_header,
            new_columns=None if has_header else names,
            infer_schema=False,
            quote_char=quote,
            row_index_name=LINE,
            row_index_offset=2 if has_header else 1,
        )
    except pl.exceptions.PolarsError as e:
        msg = str(e).strip().splitlines()[0]
        raise DataError(f"{path}: cannot parse ({msg})") from None
    others = [c for c in df.columns if c != LINE]
    blank = pl.all_horizontal(pl.col(c).is_null() for c in others)
    return df.filter(~blank)


def _finite_or_null(col: str) -> pl.Expr:
    raw = pl.col(col)
    if_str = raw.cast(pl.String).str.strip_chars()
    return if_str.cast(pl.Float64, strict=False)


def standardise(
    df: pl.DataFrame,
    path: Path,
    mapping: Mapping[str, str | None],
    *,
    split_column: str | None = None,
    split_values: tuple[int, int, int] = (0, 1, 2),
    where: str = "line",
) -> pl.DataFrame:
    """Rename, cast and validate an input table into the standard columns.

    Args:
        df: the input columns (strings or typed) and ``_line``.
        path: for messages.
        mapping: standard name (``user_id``/``item_id``/``rating``/``timestamp``) to the input
            column (``None``: absent, filled with nulls).
        split_column: an input column holding split labels (mapped through ``split_values``
            to 0/1/2), or ``None``.
        split_values: the labels of train, valid and test.
        where: ``"line"`` or ``"row"`` (parquet), for messages.

    Returns:
        The standard frame (``user_id``, ``item_id``, ``rating``, ``timestamp``, ``_line`` and
        ``split`` if requested), one collect.

    Raises:
        DataError: empty ids, non-numeric or non-finite ratings/timestamps, unknown split
            labels: each names the file, the 1-based line (or row) and the column.
    """
    exprs: list[pl.Expr] = []
    for std in (USER, ITEM):
        col = mapping[std]
        assert col is not None
        exprs.append(pl.col(col).cast(pl.String).str.strip_chars().alias(std))
    for std in (RATING, TS):
        col = mapping.get(std)
        if col is None:
            exprs.append(pl.lit(None, dtype=pl.Float64).alias(std))
        else:
            exprs.append(_finite_or_null(col).alias(std))
            exprs.append(pl.col(col).cast(pl.String).str.strip_chars().alias(f"_raw_{std}"))
    if split_column is not None:
        exprs.append(pl.col(split_column).cast(pl.String).str.strip_chars().alias("_raw_split"))
    out = df.lazy().select(pl.col(LINE), *exprs).collect()

    for std in (USER, ITEM):
        bad = out.filter(pl.col(std).is_null() | (pl.col(std) == ""))
        if bad.height:
            raise DataError(
                f"{path}: {where} {bad[LINE][0]}: empty {std} (column {mapping[std]!r})"
            )
    for std in (RATING, TS):
        col = mapping.get(std)
        if col is None:
            continue
        raw = pl.col(f"_raw_{std}")
        val = pl.col(std)
        bad = out.filter(
            raw.is_not_null() & (raw != "") & (val.is_null() | val.is_nan() | val.is_infinite())
        )
        if bad.height:
            raise DataError(
                f"{path}: {where} {bad[LINE][0]}: {std} {bad[f'_raw_{std}'][0]!r} is not a "
                f"finite number (column {col!r}); {bad.height} such {where}s"
            )
    drop = [c for c in out.columns if c.startswith("_raw_")]
    if split_column is not None:
        labels = {str(v): i for i, v in enumerate(split_values)}
        code = pl.col("_raw_split").replace_strict(labels, default=None, return_dtype=pl.Int8)
        out = out.with_columns(code.alias(SPLIT))
        bad = out.filter(pl.col(SPLIT).is_null())
        if bad.height:
            raise DataError(
                f"{path}: {where} {bad[LINE][0]}: split label {bad['_raw_split'][0]!r} in column "
                f"{split_column!r} is not one of {list(split_values)} (split.column_values)"
            )
    return out.drop(drop)


def _columns_mapping(available: list[str], columns: Columns, path: Path) -> dict[str, str | None]:
    """Map the standard columns to the file's; explicitly set optional columns are required."""
    out: dict[str, str | None] = {}
    explicit = columns.model_fields_set
    for std, key in ((USER, "user"), (ITEM, "item"), (RATING, "rating"), (TS, "timestamp")):
        want = getattr(columns, key)
        required = key in ("user", "item") or key in explicit
        if want is not None and want in available:
            out[std] = want
        elif want is not None and required:
            raise DataError(
                f"{path}: column {want!r} (source.columns.{key}) not found; available: "
                f"{', '.join(available)}"
            )
        else:
            out[std] = None
    return out


def _need_column(available: list[str], col: str, path: Path, key: str) -> None:
    if col not in available:
        raise DataError(
            f"{path}: column {col!r} ({key}) not found; available: {', '.join(available)}"
        )


def read_atomic(
    path: Path, columns: Columns, split_column: str | None, split_values: tuple[int, int, int]
) -> pl.DataFrame:
    """A RecBole atomic ``.inter`` file (tab-separated, ``name:type`` header)."""
    df = read_delimited(path, separator="\t", has_header=True)
    names = [c.split(":", 1)[0].strip() for c in df.columns if c != LINE]
    df = df.rename({old: new for old, new in zip(df.columns[1:], names, strict=True)})
    if len(set(names)) != len(names):
        raise DataError(f"{path}: line 1: duplicate column names in the header: {names}")
    mapping = _columns_mapping(names, columns, path)
    if split_column is not None:
        _need_column(names, split_column, path, "split.column")
    return standardise(df, path, mapping, split_column=split_column, split_values=split_values)


def read_movielens(path: Path) -> pl.DataFrame:
    """``u.data`` (tab, no header), ``ratings.dat`` (``::``) or ``ratings.csv`` (header)."""
    name = path.name.removesuffix(".gz")
    if name.endswith(".csv"):
        df = read_delimited(path, separator=",", has_header=True)
        avail = [c for c in df.columns if c != LINE]
        cols = {USER: "userId", ITEM: "movieId", RATING: "rating", TS: "timestamp"}
        for key, col in cols.items():
            _need_column(avail, col, path, f"MovieLens {key}")
        return standardise(df, path, cols)
    sep = "::" if name.endswith(".dat") else "\t"
    names = list(MOVIELENS_COLUMNS)
    df = read_delimited(path, separator=sep, has_header=False, names=names)
    return standardise(df, path, {c: c for c in names})


def read_table(
    path: Path,
    source: SourceConfig,
    split_column: str | None,
    split_values: tuple[int, int, int],
) -> pl.DataFrame:
    """csv / tsv / parquet with ``source.columns``."""
    if source.format == "parquet":
        if not path.is_file():
            raise DataError(f"{path}: file not found")
        try:
            df = pl.read_parquet(path).with_row_index(LINE, offset=1)
        except pl.exceptions.PolarsError as e:
            raise DataError(f"{path}: cannot read parquet ({str(e).splitlines()[0]})") from None
        where = "row"
    else:
        sep = source.separator or ("," if source.format == "csv" else "\t")
        if source.has_header:
            df = read_delimited(path, separator=sep, has_header=True, quote='"')
        else:
            c = source.columns
            names = [n for n in (c.user, c.item, c.rating, c.timestamp) if n is not None]
            if split_column is not None:
                names.append(split_column)
            df = read_delimited(path, separator=sep, has_header=False, names=names, quote='"')
        where = "line"
    avail = [c for c in df.columns if c != LINE]
    mapping = _columns_mapping(avail, source.columns, path)
    if split_column is not None:
        _need_column(avail, split_column, path, "split.column")
    return standardise(
        df, path, mapping, split_column=split_column, split_values=split_values, where=where
    )


def read_file(
    path: Path,
    source: SourceConfig,
    *,
    split_column: str | None = None,
    split_values: tuple[int, int, int] = (0, 1, 2),
) -> pl.DataFrame:
    """Read one interaction file of ``source.format`` into the standard columns (+ ``_line``).

    ``lightgcn`` lists are read by :func:`recsys.data.lightgcn_lists.read_lists`.
    """
    if source.format == "atomic":
        return read_atomic(path, source.columns, split_column, split_values)
    if source.format == "movielens":
        return read_movielens(path)
    if source.format in ("csv", "tsv", "parquet"):
        return read_table(path, source, split_column, split_values)
    raise DataError(f"{path}: source.format {source.format!r} is read from train/test lists")


def with_rows(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Concatenate standard frames, drop ``_line`` and number rows in input order (``_row``)."""
    df = pl.concat([f.drop(LINE, strict=False) for f in frames], how="vertical")
    return df.with_row_index(ROW).with_columns(pl.col(ROW).cast(pl.Int64))
