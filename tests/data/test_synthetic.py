"""Synthetic logs: determinism, schema, duplicates, power laws, k-core rounds, planted structure."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.data.config import DataConfig
from recsys.data.prepare import load_spec, prepare
from recsys.data.synthetic import (
    SyntheticData,
    cap_shares,
    cluster_mix,
    default_sizes,
    generate,
    generate_arrays,
    grouped_draw,
    to_frame,
    write_raw,
)
from recsys.errors import ConfigError
from recsys.eval.config import EvalConfig
from recsys.eval.protocol import evaluate
from recsys.spec import DataSpec

N = 100_000


@pytest.fixture(scope="module")
def data() -> SyntheticData:
    return generate_arrays(N, seed=0)


@pytest.fixture(scope="module")
def prepared(data: SyntheticData, tmp_path_factory: pytest.TempPathFactory) -> DataSpec:
    """The 10^5 set written as CSV, then 5-core + random 80/10/10 split by ``prepare``."""
    root = tmp_path_factory.mktemp("synthetic")
    write_raw(data, root / "raw.csv")
    cfg = DataConfig.model_validate(
        {
            "name": "synthetic",
            "source": {"format": "csv", "path": "raw.csv"},
            "clean": {"dedup": "last", "user_core": 5, "item_core": 5},
            "split": {"method": "random"},
            "cache_dir": str(root / "cache"),
        }
    )
    return load_spec(prepare(cfg, base_dir=root))


def pair_keys(d: SyntheticData) -> np.ndarray:
    return d.users.astype(np.int64) * d.n_items + d.items


def test_sizes_follow_the_formulas_and_grow_sublinearly() -> None:
    assert default_sizes(10**5) == (3162, 800, 7)
    assert default_sizes(10**6) == (25119, 5048, 18)
    assert default_sizes(5 * 10**7) == (849323, 115416, 85)
    u1, i1, _ = default_sizes(10**6)
    u2, i2, _ = default_sizes(10**7)
    assert u2 / u1 == pytest.approx(10**0.9, rel=1e-3)  # users ∝ N^0.9
    assert i2 / i1 == pytest.approx(10**0.8, rel=1e-3)  # items ∝ N^0.8


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    a, b = generate(20_000, seed=3), generate(20_000, seed=3)
    assert a.equals(b)
    assert not a.equals(generate(20_000, seed=4))


def test_schema_string_ids_ratings_and_time_order(data: SyntheticData) -> None:
    df = to_frame(data)
    assert df.schema == pl.Schema(
        {"user_id": pl.String, "item_id": pl.String, "rating": pl.Int8, "timestamp": pl.Int64}
    )
    assert df.height == N
    # Zero-padded to the width of the largest index: "u0042" for index 42 of 3162 users.
    assert df["user_id"].str.contains(r"^u\d{4}$").all()
    assert df["item_id"].str.contains(r"^i\d{3}$").all()
    assert df["user_id"].str.slice(1).cast(pl.Int32).to_numpy().tolist() == data.users.tolist()
    assert df["item_id"][0] == f"i{data.items[0]:03d}"
    assert set(df["rating"].unique().to_list()) == {1, 2, 3, 4, 5}
    assert df["timestamp"].is_sorted()
    assert int(data.timestamps[0]) > 1_600_000_000


def test_duplicates_are_exactly_dup_rate_and_later(data: SyntheticData) -> None:
    n_dup = round(0.05 * N)
    assert N - np.unique(pair_keys(data)).size == n_dup
    assert int(data.is_duplicate.sum()) == n_dup
    df = pl.DataFrame(
        {"key": pair_keys(data), "ts": data.timestamps, "dup": data.is_duplicate}
    ).with_row_index("row")
    # The original of each pair is its one non-duplicate row; every copy is strictly later.
    first = df.filter(~pl.col("dup")).select("key", pl.col("ts").alias("ts0"), pl.col("row"))
    assert first["key"].n_unique() == first.height == N - n_dup
    copies = df.filter(pl.col("dup")).join(first, on="key", how="left", suffix="0")
    assert copies["ts0"].null_count() == 0
    assert (copies["ts"] > copies["ts0"]).all() and (copies["row"] > copies["row0"]).all()
    clean = generate_arrays(20_000, dup_rate=0.0)
    assert np.unique(pair_keys(clean)).size == 20_000


def test_activity_and_popularity_are_heavy_tailed(data: SyntheticData) -> None:
    def top_decile_share(counts: np.ndarray) -> float:
        counts = np.sort(counts[counts > 0])[::-1]
        return float(counts[: counts.size // 10].sum() / counts.sum())

    users = np.bincount(data.users, minlength=data.n_users)
    items = np.bincount(data.items, minlength=data.n_items)
    assert top_decile_share(users) > 0.4  # uniform activity would give 0.1
    assert top_decile_share(items) > 0.4
    active = users[users > 0]
    assert np.mean(active < 5) > 0.1  # a long tail of light users ...
    assert np.mean(active <= 2) > 0.02  # ... down to one or two rows
    assert users.max() > 10 * np.median(active)


def test_five_core_needs_several_rounds(prepared: DataSpec) -> None:
    steps = {s["step"]: s for s in prepared.card["steps"]}
    assert steps["read"]["rows"] == N
    assert steps["dedup"]["rows"] == N - round(0.05 * N)  # dedup removes the planted copies
    rounds = [s for s in prepared.card["steps"] if s["step"].startswith("k-core round")]
    assert prepared.card["kcore_rounds"] == len(rounds) >= 3
    rows = [steps["dedup"]["rows"]] + [s["rows"] for s in rounds]
    assert all(a > b for a, b in itertools.pairwise(rows))  # every round removes rows
    # The fringe is peeled away: the core is smaller than the raw catalogue.
    assert rounds[-1]["items"] < 0.8 * steps["read"]["items"]


def test_item_knn_beats_popularity_on_the_planted_structure(prepared: DataSpec) -> None:
    spec = prepared
    x = torch.zeros(spec.n_users, spec.n_items)
    x[spec.train.users, spec.train.items] = 1.0
    cooc = x.T @ x
    cooc.fill_diagonal_(0.0)
    pop = spec.item_popularity()
    cfg = EvalConfig(ks=(20,), metrics=("recall",), export_topk=0)
    knn = evaluate(lambda u: x[u] @ cooc, spec, "test", cfg).summary["recall@20"]
    popular = evaluate(lambda u: pop.expand(len(u), -1).clone(), spec, "test", cfg)
    assert knn > popular.summary["recall@20"] + 0.08  # measured 0.48 vs 0.32


def test_noise_rows_ignore_the_clusters() -> None:
    d = generate_arrays(50_000, noise=0.3, fringe=0.0, seed=1)
    assert d.is_noise.mean() == pytest.approx(0.3, abs=0.02)
    same = d.user_cluster[d.users] == d.item_cluster[d.items]
    # Clean rows stay home often (home_share 0.8 before saturation); noise rows land in the
    # home cluster about 1 / n_clusters of the time.
    assert same[~d.is_noise].mean() > 0.5
    assert same[d.is_noise].mean() == pytest.approx(1 / d.n_clusters, abs=0.03)
    ratings = d.ratings.astype(float)
    assert ratings[same].mean() > ratings[~same].mean() + 0.8  # affinity drives ratings


def test_write_raw_gzip_round_trip_and_no_leftovers(tmp_path: Path) -> None:
    d = generate_arrays(20_000, seed=2)
    path = write_raw(d, tmp_path / "raw.csv.gz")
    back = pl.read_csv(path, schema_overrides={"rating": pl.Int8})
    assert back.equals(to_frame(d))
    write_raw(to_frame(d), tmp_path / "plain.csv")
    assert (tmp_path / "plain.csv").read_text().startswith("user_id,item_id,rating,timestamp\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.csv", "raw.csv.gz"]


@settings(max_examples=15, deadline=None)
@given(
    n=st.integers(10_000, 40_000),
    seed=st.integers(0, 2**31),
    noise=st.floats(0.0, 1.0),
    dup_rate=st.floats(0.0, 0.5),
)
def test_invariants_hold_for_any_arguments(
    n: int, seed: int, noise: float, dup_rate: float
) -> None:
    d = generate_arrays(n, seed=seed, noise=noise, dup_rate=dup_rate)
    assert len(d) == d.ratings.size == d.timestamps.size == n
    assert d.users.dtype == d.items.dtype == np.int32
    assert d.users.min() >= 0 and d.users.max() < d.n_users
    assert d.items.min() >= 0 and d.items.max() < d.n_items
    assert np.all(np.diff(d.timestamps) >= 0)
    assert n - np.unique(pair_keys(d)).size == round(dup_rate * n) == d.is_duplicate.sum()
    assert d.draws >= n - round(dup_rate * n)


def test_helpers() -> None:
    p = cap_shares(np.array([0.7, 0.2, 0.1]), 0.5)
    assert p.tolist() == pytest.approx([0.5, 0.5 * 2 / 3, 0.5 / 3])
    s = np.array([[1.0, 0.5, -0.5], [0.5, 1.0, 0.0], [-0.5, 0.0, 1.0]])
    mix = cluster_mix(s, 0.8, 0.25)
    assert np.allclose(mix.sum(axis=1), 1.0) and np.allclose(np.diag(mix), 0.8)
    # Off-home mass ∝ exp(S / T): row 0 splits 0.2 as e^2 : e^-2.
    assert mix[0, 1] / mix[0, 2] == pytest.approx(np.exp(4.0))
    rng = np.random.default_rng(0)
    groups = np.repeat(np.array([0, 1], dtype=np.int32), [30_000, 10_000])
    draws = grouped_draw(
        groups,
        [np.array([5, 6], dtype=np.int32), np.array([7], dtype=np.int32)],
        [np.array([0.25, 0.75]), np.array([1.0])],
        rng,
    )
    assert set(draws[:30_000].tolist()) == {5, 6} and set(draws[30_000:].tolist()) == {7}
    assert np.mean(draws[:30_000] == 6) == pytest.approx(0.75, abs=0.01)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"noise": 1.5}, "noise must be in [0, 1]"),
        ({"dup_rate": 0.6}, "dup_rate must be in [0, 0.5]"),
        ({"home_share": -0.1}, "home_share must be in [0, 1]"),
        ({"temperature": 0.0}, "temperature must be > 0"),
        ({"fringe": 1.0}, "fringe must be in [0, 1)"),
        ({"n_users": 5, "n_items": 5}, "do not fit 5 users x 5 items"),
        ({"noise_items": "zipf"}, "noise_items must be 'uniform' or 'popularity'"),
    ],
)
def test_bad_arguments_name_the_problem(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        generate_arrays(20_000, **kwargs)  # type: ignore[arg-type]
