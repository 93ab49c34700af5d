"""Cleaning: dedup policies, rating threshold and iterative k-core on hand-computed frames."""

from __future__ import annotations

import polars as pl
import pytest

from recsys.data.clean import clean, dedup, frame_stats, kcore, threshold
from recsys.data.config import CleanConfig
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
