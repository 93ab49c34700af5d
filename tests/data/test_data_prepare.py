"""prepare(): cache hits and misses, id maps, cold users, DataSpec, real data, bad input."""

from __future__ import annotations

import gzip
import logging
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import torch

from recsys.data.config import DataConfig
from recsys.data.prepare import describe, load_spec, prepare, sorted_ids
from recsys.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[2]
SHARED = (ROOT / ".." / "shared" / "data").resolve()
HEADER = "user_id,item_id,rating,timestamp\n"


def cfg(tmp_path: Path, **kw: Any) -> DataConfig:
    raw: dict[str, Any] = {"name": "toy", "cache_dir": str(tmp_path / "cache")}
    raw.update(kw)
    return DataConfig.model_validate(raw)


def toy_csv(path: Path, n_users: int = 6, n_items: int = 12) -> Path:
    rows = [f"u{u},i{(u * 3 + k) % n_items},{1 + k % 5},{100 * u + k}" for u in range(n_users)
            for k in range(10)]  # fmt: skip
    path.write_text(HEADER + "\n".join(rows) + "\n")
    return path


def entries(cache: Path) -> list[Path]:
    return [p for p in cache.iterdir()] if cache.exists() else []


def test_cache_hit_then_misses_on_config_and_input_change(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = toy_csv(tmp_path / "in.csv")
    c = cfg(tmp_path, source={"format": "csv", "path": "in.csv"})
    first = prepare(c, base_dir=tmp_path)
    assert not first.cache_hit and first.dir.name == f"toy-{first.hash[:12]}"
    assert {p.name for p in first.dir.iterdir()} == {
        "train.parquet", "valid.parquet", "test.parquet", "users.parquet", "items.parquet",
        "card.json",
    }  # fmt: skip
    with caplog.at_level(logging.INFO, logger="recsys.data.prepare"):
        second = prepare(c, base_dir=tmp_path)
    assert second.cache_hit and second.hash == first.hash and second.card == first.card
    assert any("cache hit" in r.getMessage() for r in caplog.records)
    assert prepare(c, base_dir=tmp_path, force=True).cache_hit is False

    c2 = cfg(tmp_path, source={"format": "csv", "path": "in.csv"}, split={"seed": 1})
    assert prepare(c2, base_dir=tmp_path).hash != first.hash
    data.write_text(data.read_text() + "u0,i99,1,1\n")
    third = prepare(c, base_dir=tmp_path)
    assert not third.cache_hit and third.hash != first.hash
    # cache_dir does not change the key
    c3 = cfg(tmp_path, source={"format": "csv", "path": "in.csv"}, cache_dir=str(tmp_path / "c3"))
    assert prepare(c3, base_dir=tmp_path).hash == third.hash


def test_artifacts_types_and_spec(tmp_path: Path) -> None:
    toy_csv(tmp_path / "in.csv")
    p = prepare(cfg(tmp_path, source={"format": "csv", "path": "in.csv"}), base_dir=tmp_path)
    train = pl.read_parquet(p.dir / "train.parquet")
    assert train.schema == pl.Schema(
        {
            "user_idx": pl.Int32,
            "item_idx": pl.Int32,
            "rating": pl.Float64,
            "timestamp": pl.Float64,
            "is_noise": pl.Boolean,
        }
    )
    assert pl.read_parquet(p.dir / "users.parquet")["user_id"].to_list() == [
        f"u{k}" for k in range(6)
    ]
    spec = load_spec(p)
    assert spec.n_users == 6 and spec.train.users.dtype == torch.int64
    assert len(spec.train) + len(spec.valid) + len(spec.test) == 60
    assert spec.eval_users_test.tolist() == list(range(6))
    assert spec.user_ids.dtype.kind == "U" and spec.item_ids[0] == "i0"
    assert spec.protocol["split"]["method"] == "random" and spec.data_hash == p.hash
    card = describe(cfg(tmp_path, source={"format": "csv", "path": "in.csv"}), tmp_path)
    assert [s["step"] for s in card["steps"]][:4] == ["read", "dedup", "threshold", "k-core"]
    assert card["evaluated_users"] == {"valid": 6, "test": 6}


def test_sorted_ids_numeric_then_lexicographic() -> None:
    assert sorted_ids(pl.Series(["10", "2", "1", "2"])).to_list() == ["1", "2", "10"]
    assert sorted_ids(pl.Series(["b10", "b2", "a"])).to_list() == ["a", "b10", "b2"]


def test_id_maps_order_and_indices_follow_the_original_ids(tmp_path: Path) -> None:
    orders = {u: ["07", "a9", "a10", "b", "zz"] for u in ("100", "9", "10")}
    orders["1"] = ["b", "zz", "07", "a9", "a10"]  # per user: 3 oldest train, 1 valid, 1 test
    rows = [f"{u},{i},1,{k}" for u, items in orders.items() for k, i in enumerate(items)]
    (tmp_path / "in.csv").write_text(HEADER + "\n".join(rows) + "\n")
    c = cfg(tmp_path, source={"format": "csv", "path": "in.csv"}, split={"method": "temporal"})
    p = prepare(c, base_dir=tmp_path)
    umap, imap = pl.read_parquet(p.dir / "users.parquet"), pl.read_parquet(p.dir / "items.parquet")
    assert umap["user_id"].to_list() == ["1", "9", "10", "100"]  # numeric: all are integers
    assert imap["item_id"].to_list() == ["07", "a10", "a9", "b", "zz"]  # lexicographic
    back: dict[str, set[tuple[str, str]]] = {}
    for split in ("train", "valid", "test"):
        part = pl.read_parquet(p.dir / f"{split}.parquet").join(umap, on="user_idx")
        back[split] = set(part.join(imap, on="item_idx").select("user_id", "item_id").iter_rows())
    assert back["test"] == {(u, items[-1]) for u, items in orders.items()}
    assert back["train"] == {(u, i) for u, items in orders.items() for i in items[:3]}


def test_global_temporal_counts_users_without_train(tmp_path: Path) -> None:
    rows = [f"u0,i{k},1,{k}" for k in range(5)] + [f"u1,i{k},1,{5 + k}" for k in range(5)]
    rows += ["u2,i0,1,20", "u2,i1,1,21", "u2,i2,1,22", "u3,i0,1,30", "u0,i5,1,10", "u1,i5,1,40"]
    (tmp_path / "in.csv").write_text(HEADER + "\n".join(rows) + "\n")
    c = cfg(tmp_path, source={"format": "csv", "path": "in.csv"},
            split={"method": "global_temporal", "ratios": [0.75, 0.0, 0.25]})  # fmt: skip
    p = prepare(c, base_dir=tmp_path)
    # N=16, cutoff = 13th smallest timestamp = 21: train ts < 21, test ts >= 21; u3 has no train
    card = p.card
    assert (card["n_users"], card["n_items"]) == (3, 6)
    assert card["dropped"]["users_only_in_valid_test"] == 1
    assert card["dropped"]["test_rows_cold"] == 1
    spec = load_spec(p)
    assert (len(spec.train), len(spec.valid), len(spec.test)) == (12, 0, 3)
    assert spec.eval_users_test.tolist() == [1, 2] and spec.eval_users_valid.numel() == 0


def test_empty_test_after_cold_drop_is_error(tmp_path: Path) -> None:
    rows = [f"u{u},i{k},1,{u * 10 + k}" for u in range(4) for k in range(5)]
    (tmp_path / "in.csv").write_text(HEADER + "\n".join(rows) + "\n")
    c = cfg(tmp_path, source={"format": "csv", "path": "in.csv"},
            split={"method": "global_temporal", "ratios": [0.5, 0.25, 0.25]})  # fmt: skip
    with pytest.raises(DataError, match=r"in\.csv: the test split is empty"):
        prepare(c, base_dir=tmp_path)
    assert entries(tmp_path / "cache") == []


def write_given(tmp_path: Path, train: str, test: str, valid: str | None = None) -> dict[str, Any]:
    (tmp_path / "tr.csv").write_text(HEADER + train)
    (tmp_path / "te.csv").write_text(HEADER + test)
    given = {"train": "tr.csv", "test": "te.csv"}
    if valid is not None:
        (tmp_path / "va.csv").write_text(HEADER + valid)
        given["valid"] = "va.csv"
    return {"method": "given", "given": given}


def test_given_split_with_carved_valid(tmp_path: Path) -> None:
    train = "".join(f"u{u},i{k},1,1\n" for u in range(3) for k in range(10))
    train += "u1,i10,1,1\nu2,i10,1,1\nu2,i11,1,1\n"
    split = write_given(tmp_path, train, "u0,i10,1,1\nu0,i99,1,1\nu9,i1,1,1\n")
    c = cfg(tmp_path, source={"format": "csv"}, split=split, clean={"user_core": 50})
    p = prepare(c, base_dir=tmp_path)  # cleaning (user_core=50) not applied to given splits
    spec = load_spec(p)
    assert len(spec.train) + len(spec.valid) == 33 and len(spec.valid) == 3  # 1 carved per user
    assert p.card["dropped"]["test_rows_cold"] == 2  # i99 and u9 are not in train
    assert len(spec.test) == 1
    assert p.card["protocol"]["clean"]["applied"] is False
    assert [r["role"] for r in p.card["inputs"]] == ["train", "test"]


def test_given_split_overlap_is_error(tmp_path: Path) -> None:
    split = write_given(tmp_path, "u0,i1,1,1\nu0,i2,1,1\n", "u0,i2,1,1\n")
    with pytest.raises(DataError, match=r"train \(.*tr\.csv\) and test \(.*te\.csv\)"):
        prepare(cfg(tmp_path, source={"format": "csv"}, split=split), base_dir=tmp_path)
    assert entries(tmp_path / "cache") == []


def test_column_split(tmp_path: Path) -> None:
    rows = "".join(
        f"u{u}\ti{(k + 3 * u) % 10}\t5\t{k}\t{0 if k < 8 else k - 7}\n"
        for u in range(4)
        for k in range(10)
    )
    (tmp_path / "x.inter").write_text("userID\titemID\trating\ttimestamp\tx_label\n" + rows)
    c = cfg(tmp_path, source={"path": "x.inter", "columns": {"user": "userID", "item": "itemID"}},
            split={"method": "column"})  # fmt: skip
    spec = load_spec(prepare(c, base_dir=tmp_path))
    assert (len(spec.train), len(spec.valid), len(spec.test)) == (32, 4, 4)


@pytest.mark.parametrize("method", ["temporal", "loo", "random", "global_temporal"])
def test_generated_splits_on_ml100k(tmp_path: Path, method: str) -> None:
    c = cfg(tmp_path, split={"method": method})
    t = time.perf_counter()
    p = prepare(c)
    elapsed = time.perf_counter() - t
    assert p.card["steps"][0] | {"density": 0} == {
        "step": "read", "rows": 100_000, "users": 943, "items": 1682, "density": 0,
    }  # fmt: skip
    spec = load_spec(p)
    assert len(spec.test) > 0 and elapsed < 5.0
    if method == "loo":
        steps = {s["step"]: s["rows"] for s in p.card["steps"]}
        assert steps["split test"] == steps["split valid"] == 943
        assert len(spec.test) + p.card["dropped"]["test_rows_cold"] == 943


def test_dedup_none_repeats_dropped_and_counted(tmp_path: Path) -> None:
    rows = (
        "u0,i0,1,0\nu0,i1,1,1\nu0,i0,1,2\nu0,i2,1,3\nu1,i2,1,0\nu1,i3,1,1\nu1,i1,1,2\nu1,i0,1,3\n"
    )
    (tmp_path / "in.csv").write_text(HEADER + rows)
    c = cfg(tmp_path, source={"format": "csv", "path": "in.csv"}, clean={"dedup": "none"},
            split={"method": "temporal", "ratios": [0.5, 0.0, 0.5]})  # fmt: skip
    p = prepare(c, base_dir=tmp_path)
    # u0's second (u0, i0) lands in test and repeats a train pair: dropped and counted
    assert p.card["dropped"]["repeated_pairs"] == 1
    assert len(load_spec(p).test) == 3


def gowalla() -> Path:
    d = SHARED / "gowalla_lightgcn"
    if not (d / "train.txt.gz").is_file():
        pytest.skip(f"gowalla lists not found at {d}")
    return d


def test_gowalla_lists_counts(tmp_path: Path) -> None:
    c = cfg(tmp_path, name="gowalla", source={"format": "lightgcn", "path": str(gowalla())},
            split={"method": "lightgcn", "valid_from_train": 0.0})  # fmt: skip
    t = time.perf_counter()
    p = prepare(c)
    assert time.perf_counter() - t < 10
    assert p.card["steps"][0]["rows"] == 810_128 + 217_242
    spec = load_spec(p)
    assert (spec.n_users, spec.n_items) == (29_858, 40_981)
    assert (len(spec.train), len(spec.valid), len(spec.test)) == (810_128, 0, 217_242)
    assert spec.user_ids[123] == "123" and spec.item_ids[40_980] == "40980"  # idx == id


BAD = {
    "misnamed column": ("user,item_id,rating,timestamp\n1,2,3,4\n", "", "available: user"),
    "malformed line": (HEADER + "1,2,3,4\n1,2,3\n", "", "line 3"),
    "nan rating": (HEADER + "1,2,3,4\n1,3,NaN,5\n", "", "line 3: rating"),
    "nan timestamp": (HEADER + "1,2,3,4\n1,3,4,NaN\n", "", "line 3: timestamp"),
    "empty after k-core": (HEADER + "1,2,3,4\n1,3,4,5\n2,2,4,5\n", "kcore",
                           r"empty after k-core \(user_core=5, item_core=5\)"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_leaves_no_cache(tmp_path: Path, case: str) -> None:
    content, extra, pattern = BAD[case]
    (tmp_path / "in.csv").write_text(content)
    clean = {"user_core": 5, "item_core": 5} if extra else {}
    c = cfg(tmp_path, source={"format": "csv", "path": "in.csv"}, clean=clean)
    with pytest.raises(DataError, match=r"in\.csv.*" + pattern):
        prepare(c, base_dir=tmp_path)
    assert entries(tmp_path / "cache") == []


def test_missing_inputs(tmp_path: Path) -> None:
    c = cfg(tmp_path, source={"format": "csv", "path": "nope.csv"})
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        prepare(c, base_dir=tmp_path)
    d = tmp_path / "lists"
    d.mkdir()
    (d / "train.txt").write_text("0 1 2\n1 2 x3\n")
    (d / "test.txt").write_text("0 3\n")
    c = cfg(tmp_path, source={"format": "lightgcn", "path": str(d)}, split={"method": "lightgcn"})
    with pytest.raises(DataError, match=r"train\.txt: line 2"):
        prepare(c)
    assert entries(tmp_path / "cache") == []
    with pytest.raises(ConfigError, match=r"needs source.format = 'lightgcn'"):
        prepare(cfg(tmp_path, split={"method": "lightgcn"}))


def test_relative_path_prefers_base_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = tmp_path / "conf"
    base.mkdir()
    toy_csv(base / "in.csv")
    monkeypatch.chdir(tmp_path)
    c = DataConfig.model_validate({"name": "t", "source": {"format": "csv", "path": "in.csv"}})
    p = prepare(c, base_dir=base)
    assert p.dir.parent == tmp_path / "data" / "cache"  # cache_dir: CWD unless under base_dir
    assert p.card["inputs"][0]["path"] == str(base / "in.csv")


def test_gz_input(tmp_path: Path) -> None:
    raw = toy_csv(tmp_path / "in.csv").read_bytes()
    (tmp_path / "in.csv.gz").write_bytes(gzip.compress(raw))
    a = prepare(cfg(tmp_path, source={"format": "csv", "path": "in.csv"}), base_dir=tmp_path)
    b = prepare(cfg(tmp_path, source={"format": "csv", "path": "in.csv.gz"}), base_dir=tmp_path)
    assert a.card["steps"][-1] == b.card["steps"][-1]
