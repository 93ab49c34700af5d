"""Multi-task datasets: labels, masks, negatives, behaviour sequences without leakage,
features, the census table, and bad input."""

from __future__ import annotations

import bisect
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from recsys.data.multitask.config import ColumnSpec, TableTasks, TaskLabel
from recsys.data.multitask.encode import encode
from recsys.data.multitask.ratings import load_events
from recsys.data.multitask.sequences import last_before
from recsys.data.multitask.table import build_table_tasks, split_rows
from recsys.data.multitask.tensors import take_batch
from recsys.data.prepare import prepare
from recsys.errors import ConfigError, DataError
from recsys.experiment import load_data_config
from recsys.spec import DataSpec
from tests.multitask.conftest import CONF


def _events(spec: DataSpec, cache: Path) -> pl.DataFrame:
    cfg, base = load_data_config(CONF / "ml-100k-multitask.toml", [f"cache_dir={cache}"])
    return load_events(prepare(cfg, base_dir=base).dir)


def test_last_before_matches_a_loop() -> None:
    rng = np.random.default_rng(0)
    eu, et, ei = (
        rng.integers(0, 6, 300),
        rng.integers(0, 20, 300).astype(float),
        rng.integers(0, 30, 300),
    )
    qu, qt = rng.integers(0, 8, 100), rng.integers(0, 22, 100).astype(float)
    qt[:3] = np.inf
    out = last_before(eu, et, ei, qu, qt, 5)
    for q in range(100):
        idx = np.nonzero((eu == qu[q]) & (et < qt[q]))[0]
        idx = idx[np.lexsort((idx, et[idx]))][-5:]
        expected = [0] * (5 - idx.size) + list(ei[idx] + 1)
        assert out[q].tolist() == expected


def test_sequences_hold_only_strictly_earlier_events(ml100k_mt: DataSpec, tmp_path: Path) -> None:
    """No sample's sequence contains its own event, a same-time event or a later one."""
    mt = ml100k_mt.multitask
    assert mt is not None and mt.behaviours == ("watched", "liked", "disliked")
    ev = _events(ml100k_mt, tmp_path).sort(["user", "time", "split"], maintain_order=True)
    users, items = ev["user"].to_numpy(), ev["item"].to_numpy()
    times, ratings = ev["time"].to_numpy(), ev["rating"].to_numpy()
    # (user, item) -> time of the rating (dedup keeps one per pair)
    when = {(int(u), int(i)): t for u, i, t in zip(users, items, times, strict=True)}
    liked = {(int(u), int(i)) for u, i, r in zip(users, items, ratings, strict=True) if r >= 4}
    disliked = {(int(u), int(i)) for u, i, r in zip(users, items, ratings, strict=True) if r <= 2}
    assert len(mt.histories) == ev.height
    times_of: dict[int, list[float]] = {}
    for (u, _), t in sorted(when.items(), key=lambda kv: kv[1]):
        times_of.setdefault(u, []).append(t)
    ties = 0
    for e in range(0, ev.height, 7):  # every 7th event: ~14k sequences
        u, t = int(users[e]), times[e]
        ties += int(((users == u) & (times == t)).sum() > 1)
        for b, seq in enumerate(mt.histories[e].tolist()):
            seen = [i - 1 for i in seq if i > 0]
            assert all(when[(u, i)] < t for i in seen), (e, b)
            if b == 1:
                assert all((u, i) in liked for i in seen)
            if b == 2:
                assert all((u, i) in disliked for i in seen)
            if b == 0:  # the last L earlier events, none left out
                n_earlier = bisect.bisect_left(times_of[u], t)
                assert len(seen) == min(n_earlier, mt.seq_len)
    assert ties > 100  # ml-100k has many same-second events: the rule is exercised


def test_rank_histories_stop_before_the_split(ml100k_mt: DataSpec, tmp_path: Path) -> None:
    mt = ml100k_mt.multitask
    assert mt is not None
    ev = _events(ml100k_mt, tmp_path)
    for code, split in ((1, "valid"), (2, "test")):
        start = ev.filter(pl.col("split") == code).group_by("user").agg(pl.col("time").min())
        first = dict(zip(start["user"].to_list(), start["time"].to_list(), strict=True))
        when = {(u, i): t for u, i, t in ev.select("user", "item", "time").iter_rows()}
        hist = mt.rank_histories[split]
        for u in list(first)[:200]:
            items = [i - 1 for i in hist[u, 0].tolist() if i > 0]
            assert items and all(when[(u, i)] < first[u] for i in items)


def test_labels_masks_and_negatives(ml100k_mt: DataSpec, tmp_path: Path) -> None:
    mt = ml100k_mt.multitask
    assert mt is not None and mt.tasks == ("watch", "like")
    ev = _events(ml100k_mt, tmp_path)
    rated = set(zip(ev["user"].to_list(), ev["item"].to_list(), strict=True))
    rating = {(u, i): r for u, i, r in ev.select("user", "item", "rating").iter_rows()}
    for split in ("train", "valid", "test"):
        rows = mt.rows[split]
        pos = rows.labels[:, 0] == 1
        assert int(pos.sum()) * 5 == len(rows)  # 4 negatives per event
        assert bool(rows.mask[:, 0].all()) and torch.equal(rows.mask[:, 1], pos)
        assert float(rows.labels[~pos, 1].abs().sum()) == 0.0
        pairs = list(zip(rows.users.tolist(), rows.items.tolist(), strict=True))
        for (u, i), p, like in zip(pairs, pos.tolist(), rows.labels[:, 1].tolist(), strict=True):
            if p:
                assert (rating[(u, i)] >= 4) == bool(like)
            else:
                assert (u, i) not in rated  # a negative is an item the user never rated
    # top-N targets: the split's liked events; train stays every watched train event
    test = set(zip(ml100k_mt.test.users.tolist(), ml100k_mt.test.items.tolist(), strict=True))
    assert test and all(rating[p] >= 4 for p in test)


def test_negatives_share_their_positive_history(ml100k_mt: DataSpec) -> None:
    mt = ml100k_mt.multitask
    assert mt is not None
    rows = mt.rows["train"]
    neg = torch.nonzero(rows.labels[:, 0] == 0).squeeze(1)[:500]
    owner = rows.history[neg]
    pos = torch.nonzero(rows.labels[:, 0] == 1).squeeze(1)
    # the positive with the same history index is the same user's event
    by_history = dict(zip(rows.history[pos].tolist(), rows.users[pos].tolist(), strict=True))
    assert [by_history[h] for h in owner.tolist()] == rows.users[neg].tolist()
    batch = take_batch(mt, rows, neg)
    assert torch.equal(batch.history, mt.histories[owner])


def test_user_and_item_features(ml100k_mt: DataSpec) -> None:
    mt = ml100k_mt.multitask
    assert mt is not None
    users, items = mt.user_features, mt.item_features
    assert users.sparse_names == ("user_id", "age", "gender", "occupation", "zip_code")
    assert users.sparse[:, 0].tolist() == list(range(1, ml100k_mt.n_users + 1))
    assert users.cardinalities[1] == 8  # missing + 7 age buckets
    assert items.sparse_names == ("item_id", "release_year")
    genres = [n for n in items.dense_names if n.startswith("class=")]
    assert len(genres) == 19 and set(np.unique(items.dense.numpy()).tolist()) <= {0.0, 1.0}
    ids = ml100k_mt.item_ids.tolist()
    assert items.dense[ids.index("1"), items.dense_names.index("class=Animation")] == 1.0


def test_census_table(census: DataSpec) -> None:
    mt = census.multitask
    assert mt is not None and mt.tasks == ("income", "never_married") and not mt.rankable
    sizes = [len(mt.rows[s]) for s in ("train", "valid", "test")]
    assert sum(sizes) == 99_762 and sizes[0] == 49_881
    pos = sum(int(mt.rows[s].labels[:, 0].sum()) for s in ("train", "valid", "test"))
    assert pos == 6_186  # rows with income 50000+.
    married = sum(int(mt.rows[s].labels[:, 1].sum()) for s in ("train", "valid", "test"))
    assert abs(married / 99_762 - 0.432) < 0.001
    names = mt.rows["train"].features.sparse_names + mt.rows["train"].features.dense_names
    assert "marital_stat" not in names and "income_50k" not in names  # labels are not features
    assert "instance_weight" not in names


def _table(tmp_path: Path, text: str, **kw: object) -> TableTasks:
    path = tmp_path / "t.csv"
    path.write_text(text)
    args: dict[str, object] = {
        "path": str(path),
        "tasks": {"a": TaskLabel(column="y", positive=("1",))},
        "ratios": (0.6, 0.2, 0.2),
        **kw,
    }
    return TableTasks(**args)  # type: ignore[arg-type]


def test_table_errors(tmp_path: Path) -> None:
    rows = "\n".join(f"{i % 3},{i % 2},{i}" for i in range(30))
    with pytest.raises(DataError, match="label column 'y' of task 'a' not found"):
        build_table_tasks(_table(tmp_path, "f,g,h\n" + rows), None)
    with pytest.raises(DataError, match="positive value '1' never occurs in column 'y'"):
        build_table_tasks(_table(tmp_path, "f,y,h\n" + rows.replace(",1,", ",x,")), None)
    constant = "\n".join(f"{i % 3},0,{i}" for i in range(29)) + "\n0,1,5"
    with pytest.raises(DataError, match="only negative labels"):
        build_table_tasks(_table(tmp_path, "f,y,h\n" + constant, seed=3), None)
    with pytest.raises(DataError, match="column 'h' is numeric but has 1 non-numeric"):
        build_table_tasks(_table(tmp_path, "f,y,h\n" + rows + "\n1,1,abc", numeric=("h",)), None)
    with pytest.raises(DataError, match="line 3: expected 3 fields"):
        build_table_tasks(_table(tmp_path, "f,y,h\n1,1,1\n1,0\n" + rows), None)
    with pytest.raises(DataError, match="empty label"):
        build_table_tasks(_table(tmp_path, "f,y,h\n" + rows + "\n1,,3"), None)
    with pytest.raises(ValueError, match="sum to 1"):
        _table(tmp_path, "f,y,h\n" + rows, ratios=(0.5, 0.2, 0.2))


def test_table_vocabulary_comes_from_train_rows(tmp_path: Path) -> None:
    rows = "\n".join(f"v{i},{i % 2},{float(i)}" for i in range(40))
    data = build_table_tasks(_table(tmp_path, "f,y,h\n" + rows, numeric=("h",)), None)
    train = data.rows["train"].features
    # every train value has its own code; valid/test values are unseen in train: code 0
    assert sorted(train.sparse[:, 0].tolist()) == list(range(1, len(data.rows["train"]) + 1))
    assert int(data.rows["test"].features.sparse.abs().sum()) == 0
    assert abs(float(train.dense[:, 0].mean())) < 1e-6  # z-scored on train
    assert split_rows(40, (0.6, 0.2, 0.2), 2020).tolist().count(0) == 24


def test_encode_missing_and_unknown() -> None:
    frame = pl.DataFrame({"c": ["a", "b", None, "a", ""], "n": ["1", "x", "3", None, "5"]})
    t = encode(frame, {"c": ColumnSpec(), "n": ColumnSpec(kind="numeric", invalid="missing")})
    assert t.sparse[:, 0].tolist() == [1, 2, 0, 1, 0]
    z = t.dense[:, 0].numpy()
    assert z[1] == 0 and z[3] == 0 and np.isclose(z[[0, 2, 4]].mean(), 0.0, atol=1e-6)
    with pytest.raises(DataError, match="feature column 'zz' not found"):
        encode(frame, {"zz": ColumnSpec()}, where="users")
    with pytest.raises(ValueError, match="strictly increasing"):
        ColumnSpec(kind="bins", edges=(3, 1))


def test_bad_multitask_configs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        load_data_config(
            CONF / "ml-100k-multitask.toml",
            ['multitask.table={path="x", tasks={a={column="y", positive=["1"]}}}'],
        )
    with pytest.raises(ConfigError, match="rank"):
        load_data_config(CONF / "ml-100k-multitask.toml", ["multitask.ratings.rank={click=1}"])
