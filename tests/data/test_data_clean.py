"""Cleaning: dedup policies, rating threshold and iterative k-core on hand-computed frames."""

from __future__ import annotations

import math
from collections import Counter

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.data.clean import clean, dedup, frame_stats, id_codes, kcore, pair_codes, threshold
from recsys.data.config import CleanConfig
from recsys.data.prepare import encode_ids
from recsys.errors import DataError


def frame(rows: list[tuple[str, str, float | None, float | None]]) -> pl.DataFrame:
    df = pl.DataFrame(
        rows,
        schema={
            "user_id": pl.String,
            "item_id": pl.String,
            "rating": pl.Float64,
            "timestamp": pl.Float64,
        },
        orient="row",
    )
    return df.with_row_index("_row").with_columns(pl.col("_row").cast(pl.Int64))


DUPES = frame(
    [
        ("u1", "i1", 1.0, 5.0),  # row 0
        ("u1", "i1", 2.0, 3.0),  # row 1: earliest
        ("u1", "i1", 3.0, 5.0),  # row 2: ties row 0 on time, later in row order
        ("u2", "i1", 4.0, None),  # row 3: no timestamp counts as earliest
        ("u2", "i1", 5.0, 1.0),  # row 4
        ("u2", "i2", 1.0, 9.0),  # row 5: unique
    ]
)


@pytest.mark.parametrize(
    ("policy", "kept"), [("first", [1, 3, 5]), ("last", [2, 4, 5]), ("none", [0, 1, 2, 3, 4, 5])]
)
def test_dedup_policies(policy: str, kept: list[int]) -> None:
    out = dedup(DUPES.lazy(), policy).collect()
    assert out["_row"].to_list() == kept


def test_dedup_by_split_keeps_one_per_split() -> None:
    df = DUPES.with_columns(pl.Series("split", [0, 0, 2, 0, 0, 0], dtype=pl.Int8))
    out = dedup(df.lazy(), "last", by_split=True).collect()
    assert out["_row"].to_list() == [0, 2, 4, 5]


def test_threshold_drops_low_and_missing_ratings() -> None:
    df = frame(
        [("u", "a", 1.0, 1.0), ("u", "b", 3.5, 1.0), ("u", "c", None, 1.0), ("u", "d", 4.0, 1.0)]
    )
    assert threshold(df.lazy(), 3.5).collect()["item_id"].to_list() == ["b", "d"]
    assert threshold(df.lazy(), None).collect().height == 4


# Each removal exposes the next: u3 → i3 → u2 → i2 → u1; five rounds, then stable.
CHAIN = frame(
    [
        ("u1", "i1", 1.0, 1.0), ("u1", "i2", 1.0, 1.0), ("u2", "i2", 1.0, 1.0),
        ("u2", "i3", 1.0, 1.0), ("u3", "i3", 1.0, 1.0), ("u4", "i1", 1.0, 1.0),
        ("u4", "i4", 1.0, 1.0), ("u5", "i4", 1.0, 1.0), ("u5", "i1", 1.0, 1.0),
    ]
)  # fmt: skip


def test_kcore_needs_several_rounds() -> None:
    out, rounds = kcore(CHAIN, 2, 2)
    assert [r["rows"] for r in rounds] == [8, 7, 6, 5, 4]
    assert sorted(zip(out["user_id"], out["item_id"], strict=True)) == [
        ("u4", "i1"), ("u4", "i4"), ("u5", "i1"), ("u5", "i4"),
    ]  # fmt: skip
    assert rounds[-1]["users"] == 2 and rounds[-1]["items"] == 2
    assert rounds[-1]["density"] == pytest.approx(1.0)


def test_kcore_user_only_is_one_round() -> None:
    out, rounds = kcore(CHAIN, 2, 0)
    assert len(rounds) == 1 and out.height == 8


def test_clean_records_every_step_and_rounds() -> None:
    dupes = DUPES.with_columns(
        pl.col("_row") + 100, (pl.lit("d") + pl.col("user_id")).alias("user_id")
    )
    df = pl.concat([CHAIN, dupes])
    out, steps = clean(df, CleanConfig(dedup="first", user_core=2, item_core=2), "x.csv")
    names = [s["step"] for s in steps]
    assert names[:2] == ["dedup", "threshold"] and names[-1] == "k-core"
    assert steps[-1]["rounds"] == sum(n.startswith("k-core round") for n in names)
    assert steps[0]["rows"] == 9 + 3  # DUPES dedups to 3 rows
    assert steps[-1]["rows"] == out.height


def test_empty_after_kcore_names_step_and_settings() -> None:
    with pytest.raises(
        DataError, match=r"x\.csv: dataset empty after k-core \(user_core=5, item_core=5\)"
    ):
        clean(CHAIN, CleanConfig(user_core=5, item_core=5), "x.csv")


def test_empty_after_threshold() -> None:
    with pytest.raises(DataError, match="empty after rating threshold"):
        clean(CHAIN, CleanConfig(min_rating=4.0), "x.csv")


def test_frame_stats_density() -> None:
    s = frame_stats(CHAIN, "read")
    assert (s["rows"], s["users"], s["items"]) == (9, 5, 4)
    assert s["density"] == pytest.approx(9 / 20)


def test_id_codes_of_enum_and_strings_agree() -> None:
    df = frame([("b", "x", 1.0, 1.0), ("10", "y", 1.0, 1.0), ("b", "x", 1.0, 1.0)])
    enc = encode_ids(df)
    dtype = enc["user_id"].dtype
    assert isinstance(dtype, pl.Enum) and dtype.categories.to_list() == ["10", "b"]
    assert id_codes(enc["user_id"]).tolist() == [1, 0, 1] == id_codes(df["user_id"]).tolist()
    assert pair_codes(enc).tolist() == pair_codes(df).tolist()
    assert pair_codes(df)[0] == pair_codes(df)[2] != pair_codes(df)[1]


def reference_dedup(
    rows: list[tuple[str, str, float | None, float | None]], policy: str
) -> list[int]:
    """Brute force: per (user, item), the row with the smallest / largest (time, row), a
    missing time counting as the earliest."""
    best: dict[tuple[str, str], tuple[float, int]] = {}
    for r, (u, i, _, t) in enumerate(rows):
        cand = (-math.inf if t is None else t, r)
        old = best.get((u, i))
        if old is None or (cand < old if policy == "first" else cand > old):
            best[(u, i)] = cand
    return sorted(r for _, r in best.values())


def reference_kcore(pairs: list[tuple[str, str]], uc: int, ic: int) -> tuple[list[int], int]:
    """Brute force: kept row numbers and the number of rounds that removed something."""
    alive, rounds = list(range(len(pairs))), 0
    while True:
        nu, ni = Counter(pairs[r][0] for r in alive), Counter(pairs[r][1] for r in alive)
        keep = [r for r in alive if nu[pairs[r][0]] >= uc and ni[pairs[r][1]] >= ic]
        if len(keep) == len(alive):
            return alive, rounds
        alive, rounds = keep, rounds + 1


ROWS = st.lists(
    st.tuples(
        st.sampled_from(["u1", "u2", "10", "9", "a"]),
        st.sampled_from(["i1", "i2", "i3", "7", "07"]),
        st.just(1.0),
        st.one_of(st.none(), st.sampled_from([1.0, 2.0, 3.0])),
    ),
    min_size=1,
    max_size=40,
)


CORES = st.tuples(st.integers(0, 4), st.integers(0, 4))


@settings(max_examples=60, deadline=None)
@given(rows=ROWS, policy=st.sampled_from(["first", "last"]), cores=CORES)
def test_clean_matches_brute_force_on_strings_and_codes(
    rows: list[tuple[str, str, float | None, float | None]], policy: str, cores: tuple[int, int]
) -> None:
    df = frame(rows)
    kept = reference_dedup(rows, policy)
    assert dedup(df.lazy(), policy).collect()["_row"].to_list() == kept
    after, n_rounds = reference_kcore([(rows[r][0], rows[r][1]) for r in kept], *cores)
    cfg = CleanConfig.model_validate(
        {"dedup": policy, "user_core": cores[0], "item_core": cores[1]}
    )
    results = []
    for data in (df, encode_ids(df)):
        if not after:
            with pytest.raises(DataError, match="empty after k-core"):
                clean(data, cfg, "x.csv")
            continue
        out, steps = clean(data, cfg, "x.csv")
        assert out["_row"].to_list() == [kept[k] for k in after]
        assert steps[-1]["rounds"] == (n_rounds if max(cores) > 1 else 0)
        results.append(steps)
    assert not results or results[0] == results[1]
