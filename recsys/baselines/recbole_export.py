"""Export a prepared split as RecBole atomic benchmark files (original ids).

RecBole reads a pre-split dataset from three files in one directory, named after the
directory::

    <data_dir>/<name>.train.inter
    <data_dir>/<name>.valid.inter
    <data_dir>/<name>.test.inter        (<name> = data_dir.name)

each tab-separated with the header ``user_id:token<TAB>item_id:token`` and one interaction
per line, and is configured with ``benchmark_filename: [train, valid, test]``: no filtering,
no re-splitting, ids remapped over the union of the three files.

Ids are written as the ORIGINAL ids (``spec.user_ids`` / ``spec.item_ids``), so RecBole's
top-K lists name the same users and items as ours. RecBole reads the files with
``pandas.read_csv(engine="python", dtype=str)``, default NA values and ``"`` quoting; an id that
would not survive that (empty, ``NA``/``null``/``nan``..., or holding a tab, a newline or a
double quote) is refused with a :class:`~recsys.errors.DataError` rather than silently merged
or dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch

from recsys.atomic import atomic_path
from recsys.errors import DataError
from recsys.spec import DataSpec

SPLITS = ("train", "valid", "test")
USER_FIELD = "user_id"
ITEM_FIELD = "item_id"
HEADER = (f"{USER_FIELD}:token", f"{ITEM_FIELD}:token")

PANDAS_NA_STRINGS = frozenset(
    {
        "",
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
        "NULL",
        "NaN",
        "None",
        "n/a",
        "nan",
        "null",
    }
)
"""Strings ``pandas.read_csv`` reads as missing by default (its ``STR_NA_VALUES``)."""

UNSAFE_CHARS = r"[\t\n\r\"]"
"""Characters that break a tab-separated, ``"``-quoted RecBole atomic file."""


@dataclass(frozen=True)
class AtomicExport:
    """What :func:`export_spec` wrote.

    Attributes:
        data_dir: the dataset directory (RecBole's ``data_path`` is its parent).
        dataset: RecBole's dataset name (``data_dir.name``).
        paths: split → file.
        rows: split → rows written.
        dropped: split → rows left out (valid/test rows of users without train items).
    """

    data_dir: Path
    dataset: str
    paths: dict[str, Path]
    rows: dict[str, int]
    dropped: dict[str, int]


def check_tokens(ids: np.ndarray, what: str) -> None:
    """Refuse ids that RecBole's atomic-file reader would misread.

    Raises:
        DataError: naming up to five offending ids and why.
    """
    series = pl.Series(what, np.asarray(ids).astype(str), dtype=pl.String)
    bad = series.filter(
        series.is_in(list(PANDAS_NA_STRINGS)) | series.str.contains(UNSAFE_CHARS)
    ).unique(maintain_order=True)
    if len(bad):
        raise DataError(
            f"{what}: {len(bad)} id(s) cannot be written to a RecBole atomic file, e.g. "
            f"{bad.head(5).to_list()!r}: RecBole reads empty and NA-like ids (NA, null, nan, "
            "None, ...) as missing and splits on tabs, newlines and double quotes"
        )


def write_benchmark_files(
    data_dir: str | Path,
    users: Mapping[str, np.ndarray],
    items: Mapping[str, np.ndarray],
) -> dict[str, Path]:
    """Write ``<data_dir>/<data_dir.name>.{train,valid,test}.inter`` from id arrays.

    Args:
        data_dir: the dataset directory (created).
        users: split → ``(n_split,)`` user ids (any dtype; written as ``str``).
        items: split → ``(n_split,)`` item ids aligned with ``users[split]``.

    Returns:
        split → written file.

    Raises:
        DataError: a split is missing, ``users``/``items`` lengths differ, or an id is unsafe
            (see :func:`check_tokens`).
    """
    data_dir = Path(data_dir)
    missing = [s for s in SPLITS if s not in users or s not in items]
    if missing:
        raise DataError(f"RecBole benchmark files need splits {SPLITS}; missing {missing}")
    frames = {}
    for split in SPLITS:
        u = np.asarray(users[split]).astype(str)
        i = np.asarray(items[split]).astype(str)
        if u.shape != i.shape or u.ndim != 1:
            raise DataError(
                f"split {split!r}: {u.shape} user ids but {i.shape} item ids (need equal 1-D)"
            )
        check_tokens(u, f"{split} user ids")
        check_tokens(i, f"{split} item ids")
        frames[split] = pl.DataFrame(
            {HEADER[0]: u, HEADER[1]: i}, schema=dict.fromkeys(HEADER, pl.String)
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, frame in frames.items():
        path = data_dir / f"{data_dir.name}.{split}.inter"
        with atomic_path(path) as tmp:
            frame.write_csv(tmp, separator="\t", quote_style="never", line_terminator="\n")
        paths[split] = path
    return paths


def export_spec(
    spec: DataSpec, data_dir: str | Path, *, evaluated_only: bool = True
) -> AtomicExport:
    """Write ``spec``'s train/valid/test as RecBole benchmark files with original ids.

    Train is written whole. With ``evaluated_only`` (the default), the valid (test) file keeps
    only the rows of ``spec.eval_users_valid`` (``eval_users_test``): the users our evaluator
    evaluates (at least one train item). RecBole evaluates every user of the file, so without
    this a user with no train interaction would enter RecBole's averages but not ours. Those
    rows never train anything and are never ground truth for us, so nothing else changes
    (unless an item occurs only in them: it then leaves RecBole's catalogue).

    Args:
        spec: the prepared dataset.
        data_dir: the dataset directory; its name is RecBole's dataset name.
        evaluated_only: drop valid/test rows of users we do not evaluate.

    Returns:
        The :class:`AtomicExport` (paths, rows written and dropped per split).
    """
    data_dir = Path(data_dir)
    user_ids = np.asarray(spec.user_ids).astype(str)
    item_ids = np.asarray(spec.item_ids).astype(str)
    users: dict[str, np.ndarray] = {}
    items: dict[str, np.ndarray] = {}
    dropped: dict[str, int] = {}
    for split in SPLITS:
        part = getattr(spec, split)
        u, i = part.users.to(torch.int64), part.items.to(torch.int64)
        keep = torch.ones(len(u), dtype=torch.bool)
        if evaluated_only and split != "train":
            evaluated = spec.eval_users_valid if split == "valid" else spec.eval_users_test
            keep = torch.isin(u, evaluated.to(torch.int64))
        dropped[split] = int((~keep).sum())
        users[split] = user_ids[u[keep].numpy()]
        items[split] = item_ids[i[keep].numpy()]
    paths = write_benchmark_files(data_dir, users, items)
    rows = {s: len(users[s]) for s in SPLITS}
    return AtomicExport(data_dir, data_dir.name, paths, rows, dropped)


def read_inter_file(path: str | Path) -> pl.DataFrame:
    """Read one atomic ``.inter`` file written here: columns ``user_id``, ``item_id`` (strings).

    Raises:
        DataError: a missing file or a header other than ``user_id:token<TAB>item_id:token``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such RecBole atomic file")
    with open(path, encoding="utf-8") as f:
        header = tuple(f.readline().rstrip("\n").split("\t"))
    if header != HEADER:
        raise DataError(f"{path}: header {header!r}, expected {HEADER!r}")
    frame = pl.read_csv(
        path,
        separator="\t",
        quote_char=None,
        schema=dict.fromkeys(HEADER, pl.String),
    )
    return frame.rename({HEADER[0]: USER_FIELD, HEADER[1]: ITEM_FIELD})
