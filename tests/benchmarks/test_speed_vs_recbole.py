"""Tests of the RecBole speed benchmark helpers (the shims run in a subprocess only)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
HAS_RECBOLE = importlib.util.find_spec("recbole") is not None


def _load_driver() -> ModuleType:
    spec = importlib.util.spec_from_file_location("speed_vs_recbole", BENCH / "speed_vs_recbole.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["speed_vs_recbole"] = module
    spec.loader.exec_module(module)
    return module


driver = _load_driver()

SHIM_CHECK = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import recbole_shims
recbole_shims.apply()
import numpy as np, scipy.sparse as sp, torch
from types import SimpleNamespace
from recbole.model.general_recommender.lightgcn import LightGCN
# users 0,1; items 0,1,2; edges u0-i0, u0-i1, u1-i1, u1-i2 (i1 listed twice: dict semantics)
inter = sp.coo_matrix((np.ones(5), ([0, 0, 1, 1, 0], [0, 1, 1, 2, 1])), shape=(2, 3))
fake = SimpleNamespace(n_users=2, n_items=3, interaction_matrix=inter)
adj = LightGCN.get_norm_adj_mat(fake).to_dense().tolist()
print(json.dumps({"adj": adj, "float_": np.float_ is np.float64,
                  "wo": torch.load.__wrapped__ is not None}))
"""


@pytest.mark.skipif(not HAS_RECBOLE, reason="recbole is not installed")
def test_shims_make_recbole_lightgcn_adjacency_correct() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SHIM_CHECK, str(BENCH)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["float_"] and out["wo"]
    # Hand-computed: degrees u0=2, u1=2, i0=1, i1=2, i2=1; node order u0 u1 i0 i1 i2.
    a = 1 / np.sqrt(2 * 1)
    b = 1 / np.sqrt(2 * 2)
    expected = np.zeros((5, 5))
    for u, i, w in [(0, 2, a), (0, 3, b), (1, 3, b), (1, 4, a)]:
        expected[u, i] = expected[i, u] = w
    np.testing.assert_allclose(np.array(out["adj"]), expected, rtol=1e-5)


def _toy_split() -> object:
    users = {
        "train": np.array(["10", "10", "20", "30"]),
        "valid": np.array(["10", "40"]),
        "test": np.array(["20"]),
    }
    items = {
        "train": np.array(["a", "b", "a", "c"]),
        "valid": np.array(["c", "a"]),
        "test": np.array(["b"]),
    }
    return driver.Split("toy", users, items)


def test_spec_from_split_keeps_original_ids_and_eval_users() -> None:
    split = _toy_split()
    spec = driver.spec_from_split(split)
    assert (spec.n_users, spec.n_items) == (4, 3)
    for name in driver.SPLITS:
        part = getattr(spec, name)
        assert list(spec.user_ids[part.users.numpy()]) == list(split.users[name])
        assert list(spec.item_ids[part.items.numpy()]) == list(split.items[name])
    # user "40" has no train rows, so only "10" is a valid-split eval user.
    assert spec.user_ids[spec.eval_users_valid.numpy()].tolist() == ["10"]
    assert spec.user_ids[spec.eval_users_test.numpy()].tolist() == ["20"]


def test_write_atomic_files_writes_recbole_benchmark_files(tmp_path: Path) -> None:
    data_dir = tmp_path / "bench"
    driver.write_atomic_files(_toy_split(), data_dir)
    lines = (data_dir / "bench.valid.inter").read_text().splitlines()
    assert lines == ["user_id:token\titem_id:token", "10\tc", "40\ta"]
    assert len((data_dir / "bench.train.inter").read_text().splitlines()) == 5


@pytest.mark.skipif(not HAS_RECBOLE, reason="recbole is not installed (fallback uses its ml-100k)")
def test_fallback_split_is_per_user_80_10_10_partition() -> None:
    split = driver.fallback_split(seed=2020)
    pairs = {
        s: set(zip(split.users[s].tolist(), split.items[s].tolist(), strict=True))
        for s in driver.SPLITS
    }
    assert sum(len(p) for p in pairs.values()) == 100_000
    assert not (pairs["train"] & pairs["valid"]) and not (pairs["valid"] & pairs["test"])
    users, counts = np.unique(np.concatenate(list(split.users.values())), return_counts=True)
    n = dict(zip(users.tolist(), counts.tolist(), strict=True))
    valid_users, valid_counts = np.unique(split.users["valid"], return_counts=True)
    for user, count in zip(valid_users.tolist(), valid_counts.tolist(), strict=True):
        assert count == n[user] // 10
    assert driver.fallback_split(seed=2020).items["test"].tolist() == split.items["test"].tolist()


def test_history_seconds_and_timing_stats() -> None:
    history = [{"epoch": 1, "seconds": 0.5}, {"epoch": 2, "seconds": 0.25}]
    assert driver._history_seconds(history) == [0.5, 0.25]
    assert driver._history_seconds([{"epoch": 1, "loss": 0.1}]) is None
    t = driver.Timing([1.0, 3.0, 2.0], "x")
    assert (t.mean, t.median, t.sd) == (2.0, 2.0, 1.0)
    ours, theirs = driver.Timing([0.2, 0.1, 0.3], "a"), driver.Timing([1.0, 0.5, 0.5], "b")
    # medians 0.2 / 0.5; minima 0.1 / 0.5; paired ratios 0.2, 0.2, 0.6 → median 0.2.
    assert driver.ratio(ours, theirs) == "0.400 | 0.200 | 0.200 | yes"
    unpaired = driver.Timing([0.2, 0.1, 0.3], "wall, unpaired")
    assert driver.ratio(unpaired, theirs) == "0.400 | 0.200 | n/a | no"
