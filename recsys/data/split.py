"""Train/valid/test splits of a standard frame (adds ``split``: Int8 0 train, 1 valid, 2 test).

Rules (copied into the data card's protocol):

* **Ratios** ``(a, b, c)`` are normalised to sum to 1.
* **Per-user rounding** (``random``, ``temporal``, valid carved from train): a user with ``n``
  rows gets ``floor(b·n)`` valid and ``floor(c·n)`` test rows, train the rest. A user whose test
  share ``c·n`` (then valid share ``b·n``) is strictly between 0 and 1 still gets one test
  (valid) row as long as at least two rows would remain in train (RecBole's rule), so
  ``n=1`` → train only, ``n=2`` → 1/0/1 with (0.8, 0.1, 0.1), ``n=20`` → 16/2/2. A ``1e-9``
  tolerance guards the floors against float error (``0.29·100``).
* **Per-user order**: ``random`` shuffles each user's rows with a permutation seeded by
  ``split.seed``; ``temporal`` and ``loo`` order by timestamp, **equal timestamps by input row
  order** (stable), oldest to train, newest to test.
* **Global temporal**: all rows sorted by timestamp; the valid cutoff ``t1`` is the timestamp
  at 0-based position ``floor(a·N)``, the test cutoff ``t2`` at ``floor((a+b)·N)``; train is
  ``ts < t1``, valid ``t1 <= ts < t2``, test ``ts >= t2``. **A group of equal timestamps never
  straddles a cutoff**: it goes wholly to the later split, so the realised shares can exceed
  ``b``/``c`` slightly. Users without train rows are dropped later (and counted).
* **Leave-one-out**: each user's latest row to test (when the user has >= 2 rows), the one
  before to valid (when >= 3 rows), the rest to train; train is never emptied.
* **Pre-split sources** (``given``, ``column``, ``lightgcn``): labels are used as they are;
  when there are no validation rows, validation is carved from each user's train rows with
  ``split.valid_from_train`` as the valid share, the per-user rounding above and a seeded
  shuffle (0 disables it). Train/valid or train/test (user, item) overlap is an error.
* **Repeated pairs** (only with ``clean.dedup = "none"``) in generated splits: a valid/test row
  whose (user, item) is also in train, or a test row whose pair is in valid, is dropped and
  counted (it could never be a hit under train masking).
* **Leakage check** after every split: no valid/test (user, item) in train; temporal splits:
  per user (``temporal``, ``loo``) no train row later than the user's valid/test rows and no
  valid row later than the user's test rows; ``global_temporal``: no train row at or after
  the earliest valid/test timestamp. A violation raises :class:`DataError`.

Per-user splits work on integer codes of the ids (:func:`recsys.data.clean.id_codes`): one
arg-sort of the rows by (user, order), each row's position within its user, and the per-user
counts of :func:`ratio_counts`; pairs are compared by their Int64 codes
(:func:`recsys.data.clean.pair_codes`). Rows come back in input (``_row``) order.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import polars as pl

from recsys.data.clean import id_codes, in_row_order, pair_codes
from recsys.data.config import SplitConfig
from recsys.data.sources import ITEM, ROW, SPLIT, TS, USER
from recsys.errors import ConfigError, DataError
from recsys.seeding import derive_seed

TRAIN, VALID, TEST = 0, 1, 2
SPLIT_NAMES = {TRAIN: "train", VALID: "valid", TEST: "test"}
EPS = 1e-9
PRESPLIT = ("given", "column", "lightgcn")
Temporal = Literal["none", "per_user", "global"]
TEMPORAL: dict[str, Temporal] = {
    "temporal": "per_user",
    "loo": "per_user",
    "global_temporal": "global",
}


def normalised_ratios(ratios: tuple[float, float, float]) -> tuple[float, float, float]:
    """Ratios scaled to sum to 1.

    Raises:
        ConfigError: a negative ratio, or a zero train or test share.
    """
    if any(r < 0 or not math.isfinite(r) for r in ratios):
        raise ConfigError(f"split.ratios: must be finite and >= 0, got {list(ratios)}")
    total = sum(ratios)
    if ratios[0] <= 0 or ratios[2] <= 0:
        raise ConfigError(f"split.ratios: train and test shares must be > 0, got {list(ratios)}")
    a, b, c = (r / total for r in ratios)
    return a, b, c


def _floor(x: pl.Expr) -> pl.Expr:
    return (x + EPS).floor().cast(pl.Int64)


def ratio_counts(n: pl.Expr, valid: float, test: float) -> tuple[pl.Expr, pl.Expr]:
    """Per-user ``(n_train, n_valid)`` for ``n`` rows and valid/test shares (module rule)."""
    nv0, nt0 = _floor(n * valid), _floor(n * test)
    n0 = n - nv0 - nt0
    tshare, vshare = n * test, n * valid
    bump_t = ((n0 > 1) & (tshare > 0) & (tshare + EPS < 1)).cast(pl.Int64)
    n1 = n0 - bump_t
    bump_v = ((n1 > 1) & (vshare > 0) & (vshare + EPS < 1)).cast(pl.Int64)
    return n1 - bump_v, nv0 + bump_v


def _positions(users: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Each row's 0-based position among its user's rows, given ``perm``: the rows sorted by
    user (any order of the users), then by the within-user order."""
    grouped = users[perm]
    first = np.ones(perm.size, dtype=bool)
    first[1:] = grouped[1:] != grouped[:-1]
    start = np.maximum.accumulate(np.where(first, np.arange(perm.size), 0))
    pos = np.empty(perm.size, dtype=np.int64)
    pos[perm] = np.arange(perm.size) - start
    return pos


def _time_order(df: pl.DataFrame) -> np.ndarray:
    """The rows sorted by user, timestamp, then input row order."""
    return df.select(pl.arg_sort_by(USER, TS, ROW)).to_series().to_numpy()


def _key_order(users: np.ndarray, key: np.ndarray) -> np.ndarray:
    """The rows sorted by user, then by distinct non-negative ``key`` (one Int64 sort of
    ``user · K + key``)."""
    return np.argsort(users.astype(np.int64) * (int(key.max(initial=0)) + 1) + key)


def _labels(
    users: np.ndarray, pos: np.ndarray, n_train: np.ndarray, n_valid: np.ndarray
) -> np.ndarray:
    """Split codes from positions: the first ``n_train[u]`` rows of a user train, the next
    ``n_valid[u]`` valid, the rest test."""
    train_end = n_train[users]
    valid_end = train_end + n_valid[users]
    return np.where(pos < train_end, TRAIN, np.where(pos < valid_end, VALID, TEST)).astype(np.int8)


def _by_position(users: np.ndarray, perm: np.ndarray, valid: float, test: float) -> np.ndarray:
    """Split codes by each user's position in ``perm`` using :func:`ratio_counts`."""
    n_train, n_valid = ratio_counts(pl.col("n"), valid, test)
    counts = pl.DataFrame({"n": np.bincount(users).astype(np.int64)}).select(
        n_train.alias("train"), n_valid.alias("valid")
    )
    pos = _positions(users, perm)
    return _labels(users, pos, counts["train"].to_numpy(), counts["valid"].to_numpy())


def _with_split(df: pl.DataFrame, codes: np.ndarray) -> pl.DataFrame:
    return in_row_order(df.with_columns(pl.Series(SPLIT, codes, dtype=pl.Int8)))


def _shuffle_key(df: pl.DataFrame, seed: int, component: str) -> np.ndarray:
    rng = np.random.default_rng(derive_seed(seed, component))
    return rng.permutation(df.height).astype(np.int64)


def random_split(df: pl.DataFrame, ratios: tuple[float, float, float], seed: int) -> pl.DataFrame:
    """Per-user random split (seeded shuffle, module rounding rule)."""
    _, b, c = normalised_ratios(ratios)
    users = id_codes(df.get_column(USER))
    perm = _key_order(users, _shuffle_key(df, seed, "split.random"))
    return _with_split(df, _by_position(users, perm, b, c))


def temporal_split(df: pl.DataFrame, ratios: tuple[float, float, float]) -> pl.DataFrame:
    """Per-user temporal split (timestamp, then input row order)."""
    _, b, c = normalised_ratios(ratios)
    users = id_codes(df.get_column(USER))
    return _with_split(df, _by_position(users, _time_order(df), b, c))


def global_temporal_split(df: pl.DataFrame, ratios: tuple[float, float, float]) -> pl.DataFrame:
    """One pair of time cutoffs for everyone; equal timestamps never straddle a cutoff."""
    a, b, _ = normalised_ratios(ratios)
    ts = df.get_column(TS).sort()
    n = ts.len()

    def cutoff(share: float) -> float:
        k = math.floor(share * n + EPS)
        return float(ts[k]) if k < n else math.inf

    t1, t2 = cutoff(a), cutoff(a + b)
    label = (
        pl.when(pl.col(TS) < t1)
        .then(pl.lit(TRAIN))
        .when(pl.col(TS) < t2)
        .then(pl.lit(VALID))
        .otherwise(pl.lit(TEST))
    )
    return df.with_columns(label.cast(pl.Int8).alias(SPLIT))


def loo_split(df: pl.DataFrame) -> pl.DataFrame:
    """Leave-one-out: latest to test (n >= 2), the one before to valid (n >= 3)."""
    users = id_codes(df.get_column(USER))
    pos = _positions(users, _time_order(df))
    n = np.bincount(users)
    n_valid = (n >= 3).astype(np.int64)
    n_train = n - (n >= 2) - n_valid
    return _with_split(df, _labels(users, pos, n_train, n_valid))


def carve_valid(df: pl.DataFrame, share: float, seed: int) -> pl.DataFrame:
    """Move ``share`` of each user's train rows to valid (seeded, module rounding rule)."""
    if share <= 0:
        return df
    if share >= 1:
        raise ConfigError(f"split.valid_from_train: must be in [0, 1), got {share}")
    codes = df.get_column(SPLIT).to_numpy().copy()
    train = codes == TRAIN
    users = id_codes(df.get_column(USER))[train]
    perm = _key_order(users, _shuffle_key(df, seed, "split.valid_from_train")[train])
    codes[train] = _by_position(users, perm, share, 0.0)
    return _with_split(df, codes)


def _need_timestamps(df: pl.DataFrame, method: str, label: str) -> None:
    missing = df.get_column(TS).null_count()
    if missing:
        raise DataError(
            f"{label}: split.method {method!r} needs timestamps but {missing} rows have none "
            "(source.columns.timestamp)"
        )


def assign_split(df: pl.DataFrame, cfg: SplitConfig, label: str) -> pl.DataFrame:
    """Split a cleaned frame with a generated method (random, temporal, global_temporal, loo)."""
    if cfg.method == "random":
        return random_split(df, cfg.ratios, cfg.seed)
    _need_timestamps(df, cfg.method, label)
    if cfg.method == "temporal":
        return temporal_split(df, cfg.ratios)
    if cfg.method == "global_temporal":
        return global_temporal_split(df, cfg.ratios)
    if cfg.method == "loo":
        return loo_split(df)
    raise ConfigError(f"split.method {cfg.method!r} is not a generated split")


def _pairs(df: pl.DataFrame, split: int) -> pl.LazyFrame:
    return df.lazy().filter(pl.col(SPLIT) == split).select(USER, ITEM).unique()


def _pair_in(pairs: pl.Series, splits: pl.Series, split: int) -> pl.Series:
    """Whether each row's (user, item) code is among the pairs of the rows in ``split``."""
    return pairs.is_in(pairs.filter(splits == split).unique().implode())


def drop_repeats(df: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Drop valid/test rows whose pair is in train, and test rows whose pair is in valid."""
    pairs, splits = pl.Series(pair_codes(df)), df.get_column(SPLIT)
    drop = ((splits != TRAIN) & _pair_in(pairs, splits, TRAIN)) | (
        (splits == TEST) & _pair_in(pairs, splits, VALID)
    )
    n_drop = int(drop.sum())
    if n_drop == 0:
        return df, 0
    return df.filter(~drop), n_drop


def check_given_overlap(df: pl.DataFrame, names: dict[int, str]) -> None:
    """Raise when a (user, item) pair is in train and in valid or test of a pre-split source.

    Args:
        df: the pre-split frame.
        names: split code → where it came from (file, or column label), for the message.
    """
    for other in (VALID, TEST):
        both = (
            _pairs(df, TRAIN)
            .join(_pairs(df, other), on=[USER, ITEM], how="inner")
            .sort([USER, ITEM])
            .collect()
        )
        if both.height:
            u, i = both.row(0)
            raise DataError(
                f"given split: {both.height} (user, item) pairs are in both train "
                f"({names[TRAIN]}) and {SPLIT_NAMES[other]} ({names.get(other, '?')}), e.g. "
                f"(user {u!r}, item {i!r})"
            )


def _time_bounds() -> list[pl.Expr]:
    """Latest train, earliest valid/test, latest valid and earliest test timestamps."""
    ts = pl.col(TS)
    return [
        ts.filter(pl.col(SPLIT) == TRAIN).max().alias("train_max"),
        ts.filter(pl.col(SPLIT) != TRAIN).min().alias("eval_min"),
        ts.filter(pl.col(SPLIT) == VALID).max().alias("valid_max"),
        ts.filter(pl.col(SPLIT) == TEST).min().alias("test_min"),
    ]


def check_leakage(df: pl.DataFrame, temporal: Temporal, label: str) -> None:
    """Raise :class:`DataError` when valid/test leaks into train (see module doc).

    Args:
        df: a split frame.
        temporal: ``"none"``, ``"per_user"`` or ``"global"`` time checks.
        label: names the dataset in the message.
    """
    splits = df.get_column(SPLIT)
    in_train = _pair_in(pl.Series(pair_codes(df)), splits, TRAIN)
    leaked = df.filter((splits != TRAIN) & in_train).sort(ROW)
    if leaked.height:
        r = leaked.row(0, named=True)
        raise DataError(
            f"{label}: leakage: {leaked.height} valid/test rows have their (user, item) in "
            f"train, e.g. (user {r[USER]!r}, item {r[ITEM]!r})"
        )
    if temporal == "none":
        return
    lf = df.lazy()
    if temporal == "global":
        stats = lf.select(_time_bounds()).collect()
        tr, ev, vmax, tmin = stats.row(0)
        if tr is not None and ev is not None and tr >= ev:
            raise DataError(
                f"{label}: leakage: a train row at t={tr} is not before the earliest valid/test "
                f"row at t={ev} (global temporal cutoff)"
            )
        if vmax is not None and tmin is not None and vmax > tmin:
            raise DataError(
                f"{label}: leakage: a valid row at t={vmax} is after a test row at t={tmin}"
            )
        return
    per_user = (
        lf.group_by(USER)
        .agg(_time_bounds())
        .filter(
            (pl.col("train_max") > pl.col("eval_min")) | (pl.col("valid_max") > pl.col("test_min"))
        )
        .sort(USER)
        .collect()
    )
    if per_user.height:
        r = per_user.row(0, named=True)
        raise DataError(
            f"{label}: leakage: {per_user.height} users have a train (or valid) row later than "
            f"their valid/test rows, e.g. user {r[USER]!r} (train max t={r['train_max']}, "
            f"valid/test min t={r['eval_min']})"
        )


def split_protocol(cfg: SplitConfig) -> dict[str, Any]:
    """A JSON-ready description of the split (for the data card, DataSpec and reports)."""
    out: dict[str, Any] = {"method": cfg.method, "seed": cfg.seed}
    rounding = (
        "per user: floor(valid share * n) valid, floor(test share * n) test, train the rest; "
        "a share in (0, 1) still gets one row while >= 2 rows stay in train"
    )
    if cfg.method in ("random", "temporal", "global_temporal"):
        out["ratios"] = list(normalised_ratios(cfg.ratios))
    if cfg.method == "random":
        out["text"] = "per-user random split (seeded shuffle of each user's rows)"
        out["rounding"] = rounding
    elif cfg.method == "temporal":
        out["text"] = "per-user temporal split: oldest rows to train, newest to test"
        out["rounding"] = rounding
        out["ties"] = "equal timestamps ordered by input row order"
    elif cfg.method == "global_temporal":
        out["text"] = (
            "global temporal split: cutoffs at the floor(a*N)-th and floor((a+b)*N)-th "
            "timestamps over all rows"
        )
        out["ties"] = (
            "a group of equal timestamps never straddles a cutoff (goes to the later split)"
        )
    elif cfg.method == "loo":
        out["text"] = (
            "leave-one-out: latest row to test (users with >= 2 rows), the one before to "
            "valid (>= 3 rows), the rest to train"
        )
        out["ties"] = "equal timestamps ordered by input row order"
    else:
        out["text"] = {
            "given": "given train/valid/test files",
            "column": f"split column {cfg.column!r} with values {list(cfg.column_values)}",
            "lightgcn": "LightGCN-style train.txt / test.txt lists",
        }[cfg.method]
        out["valid"] = (
            f"carved from train when absent: share {cfg.valid_from_train} per user (seeded), "
            f"{rounding}"
            if cfg.valid_from_train > 0
            else "given only (none carved from train)"
        )
    out["leakage_check"] = "no valid/test (user, item) in train" + (
        {"per_user": "; per user no train row later than valid/test rows",
         "global": "; no train row at or after the valid/test cutoff"}.get(
            TEMPORAL.get(cfg.method, "none"), ""
        )
    )  # fmt: skip
    return out
