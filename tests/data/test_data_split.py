"""Splits: ratios and rounding, seeds, equal-timestamp rules, leakage checks, given splits."""

from __future__ import annotations

import math
from collections.abc import Sequence

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.data.config import SplitConfig
from recsys.data.prepare import encode_ids
from recsys.data.split import (
    assign_split,
    carve_valid,
    check_given_overlap,
    check_leakage,
    drop_repeats,
    global_temporal_split,
    loo_split,
    random_split,
    split_protocol,
    temporal_split,
)
from recsys.errors import ConfigError, DataError

R = (0.8, 0.1, 0.1)


def frame(
    users: list[str], items: list[str], ts: Sequence[float | None] | None = None
) -> pl.DataFrame:
    n = len(users)
    return pl.DataFrame(
        {
            "user_id": users,
            "item_id": items,
            "rating": [1.0] * n,
            "timestamp": list(ts) if ts is not None else [None] * n,
            "_row": list(range(n)),
        },
        schema={"user_id": pl.String, "item_id": pl.String, "rating": pl.Float64,
                "timestamp": pl.Float64, "_row": pl.Int64},
    )  # fmt: skip


def user_rows(sizes: dict[str, int]) -> pl.DataFrame:
    users = [u for u, n in sizes.items() for _ in range(n)]
    items = [f"{u}-i{k}" for u, n in sizes.items() for k in range(n)]
    ts = [float(k) for _, n in sizes.items() for k in range(n)]
    return frame(users, items, ts)


def counts(df: pl.DataFrame) -> dict[str, tuple[int, int, int]]:
    g = df.group_by("user_id").agg(*[(pl.col("split") == s).sum().alias(str(s)) for s in range(3)])
    return {r[0]: (r[1], r[2], r[3]) for r in g.iter_rows()}


# n → (train, valid, test) under (0.8, 0.1, 0.1): floors, then one row for a share in (0, 1)
# while >= 2 rows stay in train (test first, then valid).
ROUNDING = {1: (1, 0, 0), 2: (1, 0, 1), 3: (1, 1, 1), 5: (3, 1, 1), 10: (8, 1, 1),
            19: (17, 1, 1), 20: (16, 2, 2), 29: (25, 2, 2)}  # fmt: skip


def test_random_rounding_rule_per_user() -> None:
    df = user_rows({f"u{n}": n for n in ROUNDING})
    got = counts(random_split(df, R, seed=1))
    assert got == {f"u{n}": c for n, c in ROUNDING.items()}


def test_temporal_rounding_matches_random() -> None:
    df = user_rows({f"u{n}": n for n in ROUNDING})
    assert counts(temporal_split(df, R)) == {f"u{n}": c for n, c in ROUNDING.items()}


def test_ratios_are_normalised() -> None:
    df = user_rows({"u": 10})
    assert counts(random_split(df, (8, 1, 1), seed=0)) == {"u": (8, 1, 1)}


def test_random_is_seeded() -> None:
    df = user_rows({f"u{k}": 30 for k in range(20)})
    a, b = random_split(df, R, seed=7), random_split(df, R, seed=7)
    c = random_split(df, R, seed=8)
    assert a["split"].to_list() == b["split"].to_list()
    assert a["split"].to_list() != c["split"].to_list()
    assert a["_row"].to_list() == df["_row"].to_list()  # input order kept
    share = (a["split"] == 2).mean()
    assert share == pytest.approx(0.1)


def test_temporal_oldest_to_train_and_equal_timestamps_by_row_order() -> None:
    ts = [5.0, 1.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0]  # all but row 1 tie
    df = frame(["u"] * 10, [f"i{k}" for k in range(10)], ts)
    out = temporal_split(df, R)
    # order: row 1 (t=1), then rows 0, 2, 3, ..., 9 by input order
    assert out.filter(pl.col("split") == 2)["_row"].to_list() == [9]
    assert out.filter(pl.col("split") == 1)["_row"].to_list() == [8]
    check_leakage(out, "per_user", "toy")  # equal timestamps across splits are not leakage


def test_global_temporal_cutoff_never_splits_a_timestamp_group() -> None:
    ts = [1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0, 6.0, 7.0, 8.0]
    df = frame([f"u{k % 3}" for k in range(10)], [f"i{k}" for k in range(10)], ts)
    out = global_temporal_split(df, (0.5, 0.2, 0.3))
    # t1 = ts[5] = 5 → train ts < 5; t2 = ts[7] = 6 → valid 5 <= ts < 6, test ts >= 6
    assert out["split"].to_list() == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    check_leakage(out, "global", "toy")


def test_global_temporal_group_goes_to_later_split() -> None:
    ts = [1.0, 2.0, 2.0, 2.0, 3.0]
    out = global_temporal_split(frame(["u"] * 5, list("abcde"), ts), (0.4, 0.0, 0.6))
    # cutoff ts[2] = 2: the whole t=2 group goes to test
    assert out["split"].to_list() == [0, 2, 2, 2, 2]


def test_leave_one_out() -> None:
    df = frame(
        ["a", "a", "a", "a", "b", "b", "c"],
        ["1", "2", "3", "4", "1", "2", "1"],
        [4.0, 1.0, 3.0, 3.0, 2.0, 1.0, 1.0],
    )
    out = loo_split(df)
    # a: order rows 1 (t1), 2 (t3), 3 (t3, later row), 0 (t4) → 1, 2 train; 3 valid; 0 test
    assert out["split"].to_list() == [2, 0, 0, 1, 2, 0, 0]
    check_leakage(out, "per_user", "toy")


def test_temporal_methods_need_timestamps() -> None:
    df = frame(["u", "u"], ["a", "b"], [1.0, None])
    with pytest.raises(DataError, match=r"in.csv: split.method 'temporal' needs timestamps"):
        assign_split(df, SplitConfig(method="temporal"), "in.csv")


def test_bad_ratios() -> None:
    with pytest.raises(ConfigError, match=r"split.ratios"):
        random_split(user_rows({"u": 3}), (1.0, 0.0, 0.0), seed=0)


def with_split(df: pl.DataFrame, labels: list[int]) -> pl.DataFrame:
    return df.with_columns(pl.Series("split", labels, dtype=pl.Int8))


def test_leakage_check_raises_on_planted_pair() -> None:
    df = with_split(frame(["u", "u", "u"], ["a", "b", "a"], [1.0, 2.0, 3.0]), [0, 0, 2])
    with pytest.raises(DataError, match=r"toy: leakage: 1 valid/test rows .*user 'u', item 'a'"):
        check_leakage(df, "none", "toy")


def test_leakage_check_per_user_future_in_train() -> None:
    df = with_split(frame(["u", "u", "v"], ["a", "b", "a"], [5.0, 3.0, 1.0]), [0, 2, 0])
    with pytest.raises(DataError, match="user 'u'"):
        check_leakage(df, "per_user", "toy")
    check_leakage(df, "none", "toy")


def test_leakage_check_global_future_in_train() -> None:
    df = with_split(frame(["u", "v"], ["a", "b"], [5.0, 3.0]), [0, 2])
    with pytest.raises(DataError, match="global temporal cutoff"):
        check_leakage(df, "global", "toy")
    check_leakage(df, "per_user", "toy")  # different users: fine per user


def test_drop_repeats_of_train_pairs() -> None:
    df = with_split(frame(["u"] * 4, ["a", "a", "b", "b"], [1.0, 2.0, 3.0, 4.0]), [0, 2, 1, 2])
    out, n = drop_repeats(df)
    assert n == 2 and out["_row"].to_list() == [0, 2]
    check_leakage(out, "none", "toy")


def test_given_overlap_is_an_error() -> None:
    df = with_split(frame(["u", "u", "v"], ["a", "b", "a"]), [0, 2, 2])
    check_given_overlap(df, {0: "tr.csv", 2: "te.csv"})
    bad = with_split(frame(["u", "u", "v"], ["a", "a", "a"]), [0, 2, 2])
    with pytest.raises(DataError, match=r"in both train \(tr.csv\) and test \(te.csv\)"):
        check_given_overlap(bad, {0: "tr.csv", 2: "te.csv"})


def test_carve_valid_from_train_is_seeded_per_user() -> None:
    df = with_split(user_rows({"u": 10, "v": 20, "w": 1}), [0] * 30 + [2])
    a = carve_valid(df, 0.1, seed=3)
    assert counts(a) == {"u": (9, 1, 0), "v": (18, 2, 0), "w": (0, 0, 1)}
    assert a["split"].to_list() == carve_valid(df, 0.1, seed=3)["split"].to_list()
    assert carve_valid(df, 0.0, seed=3)["split"].to_list() == df["split"].to_list()


def test_protocol_text_states_rules() -> None:
    p = split_protocol(SplitConfig(method="global_temporal"))
    assert "never straddles" in p["ties"]
    assert "per user" in split_protocol(SplitConfig())["rounding"]
    assert "carved" in split_protocol(SplitConfig(method="lightgcn"))["valid"]


def reference_counts(n: int, valid: float, test: float) -> tuple[int, int]:
    """The module's rounding rule, by hand: ``(n_train, n_valid)``."""
    nv0, nt0 = math.floor(n * valid + 1e-9), math.floor(n * test + 1e-9)
    n0 = n - nv0 - nt0
    bump_t = int(n0 > 1 and n * test > 0 and n * test + 1e-9 < 1)
    bump_v = int(n0 - bump_t > 1 and n * valid > 0 and n * valid + 1e-9 < 1)
    return n0 - bump_t - bump_v, nv0 + bump_v


def reference_by_time(df: pl.DataFrame, counts: dict[str, tuple[int, int]]) -> list[int]:
    """Brute force: each user's rows by (time, row); the first n_train train, then valid."""
    out = [0] * df.height
    for user in set(df["user_id"].to_list()):
        mine = df.filter(pl.col("user_id") == user)
        rows = sorted(zip(mine["timestamp"], mine["_row"], strict=True))
        n_train, n_valid = counts[user]
        for pos, (_, r) in enumerate(rows):
            out[r] = 0 if pos < n_train else 1 if pos < n_train + n_valid else 2
    return out


TIMED = st.lists(
    st.tuples(st.sampled_from(["u1", "10", "9", "b"]), st.sampled_from([1.0, 2.0, 3.0])),
    min_size=1,
    max_size=40,
)


@settings(max_examples=50, deadline=None)
@given(rows=TIMED)
def test_temporal_and_loo_match_brute_force_on_strings_and_codes(
    rows: list[tuple[str, float]],
) -> None:
    df = frame([u for u, _ in rows], [f"i{k}" for k in range(len(rows))], [t for _, t in rows])
    sizes = dict(df.group_by("user_id").len().iter_rows())
    ratios = (0.6, 0.2, 0.2)
    per_user = {u: reference_counts(n, 0.2, 0.2) for u, n in sizes.items()}
    loo = {u: (n - (n >= 2) - (n >= 3), int(n >= 3)) for u, n in sizes.items()}
    for data in (df, encode_ids(df)):
        assert temporal_split(data, ratios)["split"].to_list() == reference_by_time(df, per_user)
        assert loo_split(data)["split"].to_list() == reference_by_time(df, loo)


@settings(max_examples=30, deadline=None)
@given(rows=TIMED, seed=st.integers(0, 3))
def test_random_split_and_carve_same_on_strings_and_codes(
    rows: list[tuple[str, float]], seed: int
) -> None:
    df = frame([u for u, _ in rows], [f"i{k}" for k in range(len(rows))], [t for _, t in rows])
    enc = encode_ids(df)
    a, b = random_split(df, R, seed), random_split(enc, R, seed)
    assert a["split"].to_list() == b["split"].to_list()
    sizes = dict(df.group_by("user_id").len().iter_rows())
    expected = {}
    for user, n in sizes.items():
        n_train, n_valid = reference_counts(n, 0.1, 0.1)
        expected[user] = (n_train, n_valid, n - n_train - n_valid)
    assert counts(a) == expected
    marked = with_split(df, [0] * df.height)
    carved = carve_valid(marked, 0.3, seed)["split"].to_list()
    assert carved == carve_valid(encode_ids(marked), 0.3, seed)["split"].to_list()


def test_leakage_message_names_original_ids_of_encoded_frames() -> None:
    df = encode_ids(with_split(frame(["u", "u", "u"], ["a", "b", "a"], [1.0, 2.0, 3.0]), [0, 0, 2]))
    with pytest.raises(DataError, match=r"1 valid/test rows .*user 'u', item 'a'"):
        check_leakage(df, "none", "toy")
    out, n = drop_repeats(df)
    assert n == 1 and out["_row"].to_list() == [0, 1]
