"""The noise stage: injected false positives, natural (rating) labels, capping, real SGDL data."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any
from unittest.mock import patch

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.data import noise
from recsys.data.config import DataConfig
from recsys.data.prepare import Prepared, build, load_spec, locate_inputs, prepare
from recsys.errors import ConfigError, DataError
from recsys.experiment import load_data_config

ROOT = Path(__file__).resolve().parents[2]
SHARED = (ROOT / ".." / "shared" / "data").resolve()
PLD, NATURAL, SGDL = (ROOT / "conf" / "data" / f for f in
                      ("ml-100k-pld.toml", "ml-100k-natural.toml", "ml100k-sgdl.toml"))  # fmt: skip
SPLITS = ("train", "valid", "test")
U, IT, N = "user_idx", "item_idx", "is_noise"
Frames = dict[str, pl.DataFrame]


def prep(conf: Path, cache: Path, *sets: str) -> Prepared:
    cfg, base = load_data_config(conf, [*sets, f"cache_dir={str(cache)!r}"])
    return prepare(cfg, base_dir=base)


def frames(p: Prepared) -> Frames:
    return {s: pl.read_parquet(p.dir / f"{s}.parquet") for s in SPLITS}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the module: a config prepared twice is a cache hit."""
    return tmp_path_factory.mktemp("noise_cache")


INJ = pl.col(N) & pl.col("rating").is_null()
"""Injected rows: noisy rows without a rating (natural noisy rows keep theirs)."""


def check_injection(fr: Frames, n_items: int, permille: int, exclude: str = "all_splits") -> int:
    """Assert per-user counts ``min(floor(permille/1000 · n_u), free_u)``; return capped users.

    ``n_u`` counts the user's train rows before injection, ``free_u`` the items it may still get
    (not in any of its splits, or not in its train with ``exclude = "train"``). Exact integer
    arithmetic, so float rounding in ``ratio · n_u`` (e.g. 0.29 · 100 = 28.999…) is caught.
    """
    train = fr["train"]
    inj = train.filter(INJ)
    own = {s: fr[s].filter(~INJ) for s in SPLITS}
    seen = pl.concat([own[s].select(U, IT) for s in (SPLITS if exclude == "all_splits" else
                                                    ("train",))]).unique()  # fmt: skip
    per_user = (
        own["train"].group_by(U).len("n")
        .join(seen.group_by(U).len("seen"), on=U, how="left")
        .join(inj.group_by(U).len("got"), on=U, how="left")
        .fill_null(0)
        .with_columns(want=pl.col("n") * permille // 1000, free=n_items - pl.col("seen"))
    )  # fmt: skip
    expected = pl.min_horizontal("want", "free")
    bad = per_user.filter(pl.col("got") != expected)
    assert bad.height == 0, bad.head()
    # never an item the user already has (in the excluded splits), never twice, valid ids
    assert inj.join(seen, on=[U, IT], how="semi").height == 0
    assert not inj.select(U, IT).is_duplicated().any()
    assert inj[IT].is_between(0, n_items - 1).all()
    # injected rows are flagged, have no timestamp, and come after the user's own rows
    assert inj["timestamp"].null_count() == inj.height
    assert train.select(pl.col(U).cast(pl.Int64) * 2 + INJ.cast(pl.Int64)).to_series().is_sorted()
    return int(per_user.filter(pl.col("want") > pl.col("free")).height)


# --- injection on ml-100k -----------------------------------------------------------------------


def test_injection_counts_no_duplicates_clean_eval(cache: Path) -> None:
    p = prep(PLD, cache, "noise.ratio=0.2")
    fr = frames(p)
    assert check_injection(fr, p.card["n_items"], 200) == 0 == p.card["noise"]["capped_users"]
    every = pl.concat([fr[s].select(U, IT) for s in SPLITS])
    assert not every.is_duplicated().any()  # all_splits: no pair anywhere twice
    assert fr["valid"][N].sum() == fr["test"][N].sum() == 0
    inj = int(fr["train"][N].sum())
    assert inj > 10_000 and p.card["noise"]["injected"] == p.card["noise"]["train_noisy"] == inj
    assert p.card["noise"]["users_with_injected"] == p.card["n_users"] == 943
    spec = load_spec(p)
    assert spec.train_noise is not None and spec.train_noise.shape == spec.train.users.shape
    assert spec.train_noise.tolist() == fr["train"][N].to_list()


def test_exclude_train_may_hit_eval_items(cache: Path) -> None:
    p = prep(PLD, cache, "noise.ratio=0.9", "noise.exclude='train'")
    fr = frames(p)
    check_injection(fr, p.card["n_items"], 900, exclude="train")
    inj = fr["train"].filter(pl.col(N)).select(U, IT)
    evals = pl.concat([fr[s].select(U, IT) for s in ("valid", "test")])
    # ~63k injected, each user's ~30 valid/test items among ~1,550 candidates: ~2,700 hits
    # (zero would mean the rule silently excludes all splits)
    assert inj.join(evals, on=[U, IT], how="semi").height > 1000


def test_same_seed_same_artifacts_other_seed_other_noise(tmp_path: Path, cache: Path) -> None:
    a = frames(prep(PLD, cache, "noise.ratio=0.2"))
    b = frames(prep(PLD, tmp_path / "fresh", "noise.ratio=0.2"))  # rebuilt from scratch
    c = frames(prep(PLD, cache, "noise.ratio=0.2", "noise.seed=7"))
    for s in SPLITS:
        assert a[s].equals(b[s])
        assert a[s].filter(~pl.col(N)).equals(c[s].filter(~pl.col(N)))  # split untouched
    a_inj, c_inj = (f["train"].filter(pl.col(N)).select(U, IT) for f in (a, c))
    assert a_inj.height == c_inj.height  # same counts, other items
    assert a_inj.join(c_inj, on=[U, IT], how="semi").height < a_inj.height // 10  # ~2% by chance


def test_zero_ratio_has_no_noise_labels(cache: Path) -> None:
    p = prep(PLD, cache)
    assert load_spec(p).train_noise is None and p.card["protocol"]["noise"]["active"] is False
    assert frames(p)["train"][N].sum() == 0 and "injected" not in p.card["noise"]


def test_popularity_sampling_prefers_popular_items(cache: Path) -> None:
    # ratio 0.58: 0.58 · n_u lands just below an integer for 13 users (0.58 · 100 = 57.99…),
    # so check_injection's exact floor guards the rounding too
    means = {}
    for sampling in ("uniform", "popularity"):
        p = prep(PLD, cache, "noise.ratio=0.58", f"noise.sampling='{sampling}'")
        train = frames(p)["train"]
        pop = train.filter(~pl.col(N)).group_by(IT).len("pop")
        inj = train.filter(pl.col(N)).join(pop, on=IT, how="left").fill_null(0)
        means[sampling] = inj["pop"].sum() / inj.height
        check_injection(frames(p), p.card["n_items"], 580)
    # uniform ~34 (users already hold the popular items); popularity ~90
    assert means["popularity"] > 2 * means["uniform"], means


# --- capping (hand-computed) --------------------------------------------------------------------

CAP_TRAIN = {"u0": range(8), "u1": range(5, 10), "u2": (0, 9)}
CAP_TEST = {"u0": 8, "u1": 0, "u2": 1}


@pytest.mark.parametrize(
    ("exclude", "injected", "got"),
    [("all_splits", 6, {"u0": {9}, "u1": {1, 2, 3, 4}}), ("train", 7, {"u0": {8, 9}})],
)
def test_capping_at_free_items(
    tmp_path: Path, exclude: str, injected: int, got: dict[str, set[int]]
) -> None:
    # items i0..i9; ratio 0.9 wants 7 for u0 (8 train rows), 4 for u1 (5), 1 for u2 (2).
    # all_splits: u0 has 1 free item (capped), u1 exactly 4 (not capped); exclude=train: u0 has
    # 2 free items (its test item i8 among them), u1 4 of 5.
    hdr = "user_id,item_id,rating,timestamp\n"
    tr = "".join(f"{u},i{i},5,1\n" for u, its in CAP_TRAIN.items() for i in its)
    (tmp_path / "tr.csv").write_text(hdr + tr)
    (tmp_path / "te.csv").write_text(hdr + "".join(f"{u},i{i},5,2\n" for u, i in CAP_TEST.items()))
    raw = {"name": "cap", "cache_dir": str(tmp_path / "c"), "source": {"format": "csv"},
           "split": {"method": "given", "given": {"train": "tr.csv", "test": "te.csv"},
                     "valid_from_train": 0.0},
           "noise": {"ratio": 0.9, "exclude": exclude}}  # fmt: skip
    c = DataConfig.model_validate(raw)
    p = prepare(c, base_dir=tmp_path)
    assert p.card["noise"]["capped_users"] == 1 and p.card["noise"]["injected"] == injected
    train = frames(p)["train"].filter(pl.col(N))
    per_user = {f"u{u}": set(g[IT].to_list()) for (u,), g in train.group_by(U)}
    assert per_user.get("u2") is not None and len(per_user.pop("u2")) == 1
    for user, items in got.items():
        assert per_user[user] == items  # item_idx == k for item "ik" (ids sort lexicographically)


# --- natural noise ------------------------------------------------------------------------------


def test_natural_labels_and_clean_test(cache: Path) -> None:
    p = prep(NATURAL, cache)
    fr = frames(p)
    raw = frames(prep(NATURAL, cache, "noise.natural='none'"))  # same split, no labels
    assert fr["train"][N].to_list() == (fr["train"]["rating"] < 4).to_list()
    assert fr["train"].drop(N).equals(raw["train"].drop(N))
    assert fr["test"].filter(pl.col("rating") < 4).height == 0
    removed = raw["test"].filter(pl.col("rating") < 4).height
    assert removed > 1000 and p.card["dropped"]["test_rows_noisy"] == removed
    assert fr["test"].height == raw["test"].height - removed
    assert fr["valid"][N].sum() == (fr["valid"]["rating"] < 4).sum() > 0  # valid keeps them
    assert fr["valid"].height == raw["valid"].height
    spec = load_spec(p)
    assert spec.train_noise is not None
    assert int(spec.train_noise.sum()) == p.card["noise"]["natural_noisy_train"]

    q = prep(NATURAL, cache, "noise.clean_valid=true")
    valid = frames(q)["valid"]
    assert valid[N].sum() == 0 and valid.filter(pl.col("rating") < 4).height == 0
    assert q.card["dropped"]["valid_rows_noisy"] == raw["valid"].height - valid.height > 0


def test_natural_plus_injected(cache: Path) -> None:
    p = prep(NATURAL, cache, "noise.ratio=0.1")
    fr = frames(p)
    train = fr["train"]
    natural = train.filter(pl.col("rating").is_not_null())
    assert natural[N].to_list() == (natural["rating"] < 4).to_list()
    # n_u counts every pre-injection train row, natural noisy ones included
    check_injection(fr, p.card["n_items"], 100)
    nc = p.card["noise"]
    assert nc["train_noisy"] == nc["natural_noisy_train"] + nc["injected"] == train[N].sum()
    assert nc["natural_noisy_train"] == frames(prep(NATURAL, cache))["train"][N].sum()


def test_natural_without_ratings_is_data_error(tmp_path: Path) -> None:
    rows = "".join(f"u{u},i{(u + k) % 7},{k}\n" for u in range(5) for k in range(6))
    (tmp_path / "in.csv").write_text("user_id,item_id,timestamp\n" + rows)
    raw = {"name": "nr", "cache_dir": str(tmp_path / "c"), "noise": {"natural": "rating"},
           "source": {"format": "csv", "path": "in.csv", "columns": {"rating": ""}}}  # fmt: skip
    c = DataConfig.model_validate(raw)
    with pytest.raises(DataError, match=r"in\.csv: noise\.natural = 'rating' needs a rating"):
        prepare(c, base_dir=tmp_path)
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())


def test_all_test_rows_noisy_names_the_threshold(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"test split is empty after dropping \d+ noisy rows"):
        prep(NATURAL, tmp_path / "c", "noise.clean_min_rating=6")


# --- SGDL ml-100k (real labels) -----------------------------------------------------------------


def test_sgdl_ml100k_counts(cache: Path) -> None:
    d = SHARED / "ml100k_sgdl_denoise"
    if not (d / "ml100k.train.rating.gz").is_file():
        pytest.skip(f"SGDL ml-100k files not found at {d}")
    p = prep(SGDL, cache)
    fr, card = frames(p), p.card
    # Train defines the id maps, so all 66,899 train rows stay (55,000 clean + 11,899 noisy).
    # 10 items occur only in valid/test: 6 valid rows (2 of them noisy) and 5 test rows go cold.
    assert (card["n_users"], card["n_items"]) == (497, 1502)
    assert (fr["train"].height, int(fr["train"][N].sum())) == (66_899, 11_899)
    assert (fr["valid"].height, int(fr["valid"][N].sum())) == (7_120 + 1_532 - 6, 1_530)
    assert (fr["test"].height, int(fr["test"][N].sum())) == (7_208 - 5, 0)
    assert card["dropped"] | {"items_only_in_valid_test": 10} == {
        "valid_rows_cold": 6, "test_rows_cold": 5, "users_only_in_valid_test": 0,
        "items_only_in_valid_test": 10, "test_rows_noisy": 0,
    }  # fmt: skip
    assert card["noise"] == {"natural_noisy_train": 11_899, "train_noisy": 11_899,
                             "train_rows": 66_899}  # fmt: skip
    spec = load_spec(p)
    assert spec.train_noise is not None and int(spec.train_noise.sum()) == 11_899
    assert card["evaluated_users"] == {"valid": 497, "test": 497}


# --- bad config ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1.0", "-0.1"])
def test_bad_ratio_is_config_error(value: str) -> None:
    with pytest.raises(ConfigError, match=r"ml-100k-pld\.toml: key 'noise\.ratio'"):
        load_data_config(PLD, [f"noise.ratio={value}"])


# --- property: random small datasets ------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    matrix=st.lists(st.lists(st.booleans(), min_size=12, max_size=12), min_size=3, max_size=8),
    permille=st.integers(0, 899),
    seed=st.integers(0, 2**31 - 1),
    exclude=st.sampled_from(["all_splits", "train"]),
    sampling=st.sampled_from(["uniform", "popularity"]),
    block_cells=st.sampled_from([1, 30, noise.BLOCK_CELLS]),  # 1 or 2 users per block, or all
)
def test_property_counts_and_no_duplicates(
    matrix: list[list[bool]],
    permille: int,
    seed: int,
    exclude: str,
    sampling: str,
    block_cells: int,
) -> None:
    rows = [
        f"u{u},i{i},4,{u * 100 + i}" for u, r in enumerate(matrix) for i, v in enumerate(r) if v
    ]
    rows += [f"u0,i{i},4,{i}" for i in range(12) if not matrix[0][i]]  # u0 holds every item
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "in.csv").write_text("user_id,item_id,rating,timestamp\n" + "\n".join(rows))
        raw: dict[str, Any] = {
            "name": "prop", "cache_dir": str(Path(tmp) / "c"),
            "source": {"format": "csv", "path": str(Path(tmp) / "in.csv")},
            "split": {"ratios": [0.6, 0.2, 0.2], "seed": seed % 97},
            "noise": {"ratio": permille / 1000, "seed": seed, "exclude": exclude,
                      "sampling": sampling},
        }  # fmt: skip
        c = DataConfig.model_validate(raw)
        try:
            with patch.object(noise, "BLOCK_CELLS", block_cells):
                built = build(c, locate_inputs(c, None))
        except DataError as e:  # tiny random splits may leave test empty
            assert "split is empty" in str(e)
            return
    fr = {s: built.frames[s] for s in SPLITS}
    capped = check_injection(fr, built.card["n_items"], permille, exclude)
    if permille:
        assert built.card["noise"]["capped_users"] == capped
        assert built.card["noise"]["injected"] == fr["train"][N].sum()
    if exclude == "all_splits":
        assert not pl.concat([fr[s].select(U, IT) for s in SPLITS]).is_duplicated().any()
    assert fr["valid"][N].sum() == fr["test"][N].sum() == 0
