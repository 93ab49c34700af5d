"""RecBole adapter: export, model registry, list scorer, and real RecBole runs imported as runs.

The RecBole tests skip where RecBole is not installed (Python >= 3.12), except under CI on
Python < 3.12, where RecBole installs with the package and they must run.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys import api
from recsys.baselines import recbole_run
from recsys.baselines.recbole_export import (
    HEADER,
    export_spec,
    read_inter_file,
    write_benchmark_files,
)
from recsys.baselines.recbole_import import list_checks, list_scorer, read_lists
from recsys.baselines.recbole_models import (
    RECBOLE_MODELS,
    list_length,
    recbole_config,
    resolve_model,
    supported_models,
)
from recsys.baselines.recbole_run import (
    NOT_INSTALLED,
    parse_params,
    recbole_available,
    run_recbole,
    run_worker,
)
from recsys.errors import ConfigError, DataError, RecsysError
from recsys.eval.config import EvalConfig
from recsys.eval.protocol import evaluate
from recsys.experiment import Experiment
from recsys.report.runs_loader import comparable_protocol, load_runs
from recsys.report.standard import build_report
from recsys.spec import DataSpec
from recsys.train.config import TrainConfig
from recsys.types import Interactions

ROOT = Path(__file__).resolve().parents[2]
MF_EXP = ROOT / "conf" / "exp" / "ml100k-mf.toml"
CHECKED = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
EPOCHS = 2


def _under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="module")
def needs_recbole() -> None:
    """Skip without RecBole; under CI on Python < 3.12 (where it installs) fail instead."""
    if recbole_available():
        return
    if _under_ci() and sys.version_info < (3, 12):
        pytest.fail(f"{NOT_INSTALLED}: CI on Python < 3.12 must run the RecBole tests")
    pytest.skip(NOT_INSTALLED)


@pytest.fixture(scope="module")
def ml100k() -> tuple[Experiment, DataSpec]:
    exp = api.load_experiment(MF_EXP, [f"train.epochs={EPOCHS}"])
    _, spec = api.prepare_data(exp.cfg.data, exp.base_dir)
    return exp, spec


def toy_spec() -> DataSpec:
    """4 users, 6 items; user 3 has valid/test rows but no train row (not evaluated)."""

    def inter(pairs: list[tuple[int, int]]) -> Interactions:
        arr = np.array(pairs, dtype=np.int64).reshape(-1, 2)
        return Interactions(torch.from_numpy(arr[:, 0].copy()), torch.from_numpy(arr[:, 1].copy()))

    return DataSpec(
        name="toy",
        data_hash="0",
        n_users=4,
        n_items=6,
        train=inter([(0, 0), (0, 1), (1, 2), (2, 3), (2, 0)]),
        valid=inter([(0, 2), (1, 3), (3, 1)]),
        test=inter([(0, 3), (0, 4), (1, 5), (2, 1), (3, 0)]),
        user_ids=np.array(["u0", "u1", "u2", "u3"]),
        item_ids=np.array(["a", "b", "c", "d", "e", "f"]),
        eval_users_valid=torch.tensor([0, 1]),
        eval_users_test=torch.tensor([0, 1, 2]),
    )


# ----------------------------------------------------------------- registry and config


def test_supported_models_and_their_recbole_config() -> None:
    assert supported_models() == ("BPR", "LightGCN", "NGCF", "ENMF")
    assert resolve_model("lightgcn").name == "LightGCN"
    with pytest.raises(ConfigError, match="not supported; supported: BPR, LightGCN, NGCF, ENMF"):
        resolve_model("SASRec")
    train = TrainConfig(epochs=7, batch_size=512, lr=0.01, patience=3, monitor="recall@10")
    ecfg = EvalConfig(ks=(5, 10), export_topk=30)
    cfg = recbole_config(
        RECBOLE_MODELS["LightGCN"], {"n_layers": 3}, train=train, eval_cfg=ecfg, seed=4, epochs=7
    )
    assert cfg["n_layers"] == 3 and cfg["seed"] == 4 and cfg["epochs"] == 7
    assert cfg["train_batch_size"] == 512 and cfg["learning_rate"] == 0.01
    assert cfg["valid_metric"] == "Recall@10"
    # RecBole stops once cur_step > stopping_step; we stop once bad_rounds >= patience.
    assert cfg["stopping_step"] == 2
    assert cfg["topk"] == [5, 10, 30] and list_length(ecfg) == 30
    assert cfg["metrics"] == ["Recall", "NDCG", "Precision", "Hit", "MRR", "MAP"]
    assert cfg["train_neg_sample_args"]["sample_num"] == 1
    assert cfg["use_gpu"] is False and cfg["benchmark_filename"] == ["train", "valid", "test"]
    enmf = recbole_config(
        RECBOLE_MODELS["ENMF"], {}, train=TrainConfig(patience=0), eval_cfg=EvalConfig(), seed=0,
        epochs=5, device="cuda:1",
    )  # fmt: skip
    assert enmf["train_neg_sample_args"] is None  # non-sampling
    assert enmf["stopping_step"] == 5 and (enmf["use_gpu"], enmf["gpu_id"]) == (True, "1")
    with pytest.raises(ConfigError, match="unknown parameter 'layers'; its parameters"):
        recbole_config(
            RECBOLE_MODELS["LightGCN"], {"layers": 3}, train=train, eval_cfg=ecfg, seed=0, epochs=1
        )
    with pytest.raises(ConfigError, match="test_mask = 'train_valid'"):
        recbole_config(
            RECBOLE_MODELS["BPR"], {}, train=train, eval_cfg=EvalConfig(test_mask="train"), seed=0,
            epochs=1,
        )  # fmt: skip
    assert parse_params(["n_layers=3", "reg_weight=1e-4", "hidden_size_list=[32, 32]"]) == {
        "n_layers": 3,
        "reg_weight": 1e-4,
        "hidden_size_list": [32, 32],
    }
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_params(["n_layers"])


def test_absent_recbole_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recbole_run, "recbole_available", lambda: False)
    with pytest.raises(RecsysError, match=r"RecBole is not installed \(it needs Python < 3.12"):
        run_recbole(MF_EXP, "BPR", epochs=1, runs_dir="unused")


def test_importing_the_adapter_does_not_import_recbole() -> None:
    import recsys.baselines.recbole_import
    import recsys.baselines.recbole_run
    import recsys.baselines.recbole_shims
    import recsys.baselines.recbole_worker

    assert not [m for m in sys.modules if m == "recbole" or m.startswith("recbole.")]
    assert "float_" not in np.__dict__  # the shims patch only the worker process
    assert recsys.baselines.recbole_worker.main([]) == 2  # usage error, nothing imported


# ----------------------------------------------------------------- export


def test_export_round_trip_keeps_rows_and_original_ids(
    ml100k: tuple[Any, DataSpec], tmp_path: Path
) -> None:
    _, spec = ml100k
    out = export_spec(spec, tmp_path / "recsys-ml-100k")
    assert out.dataset == "recsys-ml-100k"
    assert out.dropped == {"train": 0, "valid": 0, "test": 0}  # every ml-100k user has train
    for split in ("train", "valid", "test"):
        path = tmp_path / "recsys-ml-100k" / f"recsys-ml-100k.{split}.inter"
        assert out.paths[split] == path
        assert path.read_text().split("\n", 1)[0] == "\t".join(HEADER)
        back = read_inter_file(path)
        part = getattr(spec, split)
        assert len(back) == len(part) == out.rows[split]
        assert back["user_id"].to_list() == spec.user_ids[part.users.numpy()].tolist()
        assert back["item_id"].to_list() == spec.item_ids[part.items.numpy()].tolist()
    assert out.rows == {"train": 80808, "valid": 9585, "test": 9581}


def test_export_drops_rows_of_users_we_do_not_evaluate(tmp_path: Path) -> None:
    spec = toy_spec()
    out = export_spec(spec, tmp_path / "toy")
    assert out.dropped == {"train": 0, "valid": 1, "test": 1}
    assert read_inter_file(out.paths["valid"]).rows() == [("u0", "c"), ("u1", "d")]
    assert read_inter_file(out.paths["test"])["user_id"].to_list() == ["u0", "u0", "u1", "u2"]
    whole = export_spec(spec, tmp_path / "whole", evaluated_only=False)
    assert whole.rows == {"train": 5, "valid": 3, "test": 5}


@pytest.mark.parametrize("bad", ["NA", "", "null", "a\tb", 'say "hi"', "x\ny"])
def test_ids_recbole_would_misread_are_refused(bad: str, tmp_path: Path) -> None:
    users = {s: np.array(["1", bad]) for s in ("train", "valid", "test")}
    items = {s: np.array(["i", "j"]) for s in ("train", "valid", "test")}
    with pytest.raises(DataError, match="cannot be written to a RecBole atomic file"):
        write_benchmark_files(tmp_path / "bad", users, items)
    assert not (tmp_path / "bad").exists()


# ----------------------------------------------------------------- list scorer


def _lists_frame(spec: DataSpec, users: np.ndarray, table: np.ndarray) -> pl.DataFrame:
    k = table.shape[1]
    ok = table.reshape(-1) >= 0
    return pl.DataFrame(
        {
            "user_id": np.repeat(spec.user_ids[users], k)[ok],
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), len(users))[ok],
            "item_id": spec.item_ids[table.reshape(-1)[ok]],
        }
    )


def test_list_scorer_metrics_by_hand(tmp_path: Path) -> None:
    spec = toy_spec()
    cfg = EvalConfig(ks=(1, 2), metrics=("recall", "ndcg", "precision"), export_topk=2)
    # Test-time lists (train and valid items excluded); user 1's list is one item short.
    users = np.array([0, 1, 2])
    table = np.array([[4, 5], [5, -1], [4, 1]])
    path = tmp_path / "lists.parquet"
    _lists_frame(spec, users, table).write_parquet(path)
    read_users, read_table = read_lists(path, spec, 2)
    np.testing.assert_array_equal(read_users, users)
    np.testing.assert_array_equal(read_table, table)
    res = evaluate(list_scorer(users, table, spec.n_users, spec.n_items), spec, "test", cfg)
    assert res.topk is not None
    np.testing.assert_array_equal(res.topk, table)  # the lists, in order; -1 past a short one
    # user 0: truth {3, 4}, list [4, 5] → hit at rank 1; user 1: truth {5}, list [5];
    # user 2: truth {1}, list [4, 1] → hit at rank 2.
    d2 = 1 / np.log2(3)
    expected = {
        "recall@1": [0.5, 1.0, 0.0],
        "recall@2": [0.5, 1.0, 1.0],
        "ndcg@1": [1.0, 1.0, 0.0],
        "ndcg@2": [1 / (1 + d2), 1.0, d2],
        "precision@2": [0.5, 0.5, 0.5],
    }
    for key, values in expected.items():
        np.testing.assert_allclose(res.per_user[key], values, rtol=1e-12)
    assert list_checks(spec, "test", users, table) == {
        "users_without_list": 0,
        "extra_list_users": 0,
        "masked_listed": 0,
    }
    # A listed valid item (masked by us at test) and a user we do not evaluate are reported.
    odd = np.array([[2, 5], [5, -1], [4, 1], [0, 5]])
    assert list_checks(spec, "test", np.array([0, 1, 2, 3]), odd) == {
        "users_without_list": 0,
        "extra_list_users": 1,
        "masked_listed": 1,
    }
    assert list_checks(spec, "valid", np.array([0]), table[:1]) == {
        "users_without_list": 1,
        "extra_list_users": 0,
        "masked_listed": 0,
    }


def test_read_lists_refuses_unknown_ids_and_bad_ranks(tmp_path: Path) -> None:
    spec = toy_spec()
    path = tmp_path / "l.parquet"
    pl.DataFrame({"user_id": ["u0"], "rank": [1], "item_id": ["zzz"]}).write_parquet(path)
    with pytest.raises(DataError, match="not in dataset 'toy'"):
        read_lists(path, spec, 2)
    pl.DataFrame({"user_id": ["u0", "u0"], "rank": [1, 1], "item_id": ["e", "f"]}).write_parquet(
        path
    )
    with pytest.raises(DataError, match=r"ranks must be 1\.\.2 and unique per user"):
        read_lists(path, spec, 2)


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), short=st.integers(0, 3))
def test_list_scorer_reproduces_any_unmasked_lists(
    ml100k: tuple[Experiment, DataSpec], seed: int, short: int
) -> None:
    """Random lists of unmasked items on ml-100k come back as the evaluator's top-K, exactly."""
    _, spec = ml100k
    rng = np.random.default_rng(seed)
    users = spec.eval_users_test.numpy()[rng.random(spec.eval_users_test.numel()) < 0.9]
    k = 20
    mask = np.zeros((spec.n_users, spec.n_items), dtype=bool)
    for part in (spec.train, spec.valid):
        mask[part.users.numpy(), part.items.numpy()] = True
    noise = np.where(mask[users], np.inf, rng.random((len(users), spec.n_items)))
    table = np.argsort(noise, axis=1)[:, :k]
    table[: len(users) // 2, k - short :] = -1  # some short lists
    cfg = EvalConfig(ks=(10, 20), export_topk=k)
    res = evaluate(list_scorer(users, table, spec.n_users, spec.n_items), spec, "test", cfg)
    assert res.topk is not None
    listed = np.isin(res.users, users)
    np.testing.assert_array_equal(res.topk[listed], table)
    assert (res.topk[~listed] == -1).all()  # evaluated users without a list get nothing
    assert (res.per_user["recall@20"][~listed] == 0).all()


# ----------------------------------------------------------------- real RecBole runs


@pytest.fixture(scope="module")
def runs(needs_recbole: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Our MF and RecBole's BPR, both 2 epochs on the embedded ml-100k split."""
    runs_dir = tmp_path_factory.mktemp("recbole") / "runs"
    exp = api.load_experiment(MF_EXP, [f"train.epochs={EPOCHS}"])
    mf = api.train(exp, runs_dir=runs_dir).dir
    bpr = run_recbole(exp, "BPR", {"embedding_size": 32}, epochs=EPOCHS, runs_dir=runs_dir)
    return {"mf": mf, "bpr": bpr, "runs_dir": runs_dir}


def _agreement(run_dir: Path) -> dict[str, Any]:
    results = json.loads((run_dir / "results.json").read_text())
    rb = results["recbole"]
    for split in ("valid", "test"):
        assert rb["checks"][split] == {
            "users_without_list": 0,
            "extra_list_users": 0,
            "masked_listed": 0,
        }
        assert results[f"{split}_users"] == rb["users_evaluated"][split] == 943
        for key in CHECKED:
            assert results[split][key] == pytest.approx(rb[split][key], abs=1e-9), (split, key)
            assert abs(rb["difference"][split][key]) < 1e-9
        # every metric RecBole reported agrees, not only recall and NDCG
        assert max(abs(v) for v in rb["difference"][split].values()) < 1e-9
        assert len(rb["difference"][split]) == 12
    return results


def test_recbole_bpr_run_is_imported_and_agrees_with_recbole(runs: dict[str, Path]) -> None:
    run_dir = runs["bpr"]
    assert run_dir.name.startswith("recbole-bpr-")
    for name in (
        "config.json",
        "manifest.json",
        "results.json",
        "metrics.jsonl",
        "per_user_valid.parquet",
        "per_user_test.parquet",
        "topk_test.parquet",
        "recbole/recbole.json",
        "recbole/topk_test.parquet",
        "recbole/worker.log",
    ):
        assert (run_dir / name).is_file(), name
    results = _agreement(run_dir)
    assert results["epochs_run"] == EPOCHS and results["test"]["ndcg@20"] > 0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"] == {"name": "recbole", "model": "BPR", "embedding_size": 32}
    assert config["name"] == "recbole-bpr" and config["train"]["epochs"] == EPOCHS
    assert results["recbole"]["model_params"] == {"embedding_size": 32}
    # Our exported lists are RecBole's lists, user by user and rank by rank.
    ours = pl.read_parquet(run_dir / "topk_test.parquet").sort("user_id", "rank")
    theirs = pl.read_parquet(run_dir / "recbole/topk_test.parquet").sort("user_id", "rank")
    assert ours.select("user_id", "rank", "item_id").equals(
        theirs.select("user_id", "rank", "item_id")
    )
    per_user = pl.read_parquet(run_dir / "per_user_test.parquet")
    assert per_user["ndcg@20"].mean() == pytest.approx(results["test"]["ndcg@20"], rel=1e-12)
    history = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in history] == [1, 2] and "valid/ndcg@20" in history[0]


def test_report_compares_our_run_with_the_recbole_run(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    records = load_runs([runs["mf"], runs["bpr"]])
    protocol = comparable_protocol(records)
    assert records[0].manifest["data_hash"] == records[1].manifest["data_hash"]
    assert protocol["test_mask"] == "train_valid"
    paths = build_report([runs["mf"], runs["bpr"]], tmp_path / "report")
    table = paths.table
    assert set(table["method"].to_list()) == {"mf", "recbole-bpr"}
    bpr = json.loads((runs["bpr"] / "results.json").read_text())["test"]
    row = table.filter((pl.col("method") == "recbole-bpr") & (pl.col("metric") == "ndcg@20"))
    assert row["mean"].item() == pytest.approx(bpr["ndcg@20"], rel=1e-12)
    assert (tmp_path / "report" / "report.html").is_file()
    lists = pl.read_parquet(tmp_path / "report" / "lists.parquet")  # cohorts from both lists
    assert set(lists["method"].to_list()) == {"mf", "recbole-bpr"}


def test_finished_recbole_run_is_not_rerun(runs: dict[str, Path]) -> None:
    exp = api.load_experiment(MF_EXP, [f"train.epochs={EPOCHS}"])
    with pytest.raises(api.AlreadyDone):
        run_recbole(exp, "bpr", {"embedding_size": 32}, epochs=EPOCHS, runs_dir=runs["runs_dir"])


def test_worker_failure_shows_the_end_of_its_log(needs_recbole: None, tmp_path: Path) -> None:
    job = {
        "model": "BPR",
        "param_names": [],
        "data_dir": str(tmp_path / "missing" / "recsys-none"),
        "out_dir": str(tmp_path / "out"),
        "config": {"benchmark_filename": ["train", "valid", "test"], "use_gpu": False},
        "list_k": 10,
        "load_best_model": True,
        "threads": 1,
    }
    with pytest.raises(
        RecsysError,
        match=r"(?s)RecBole BPR failed \(exit 1\).*recsys-none lacks recsys-none.train.inter",
    ):
        run_worker(job, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "params"),
    [("LightGCN", {"n_layers": 2}), ("NGCF", {}), ("ENMF", {})],
)
def test_recbole_graph_and_nonsampling_models_agree(
    runs: dict[str, Path], model: str, params: dict[str, Any]
) -> None:
    exp = api.load_experiment(MF_EXP, [f"train.epochs={EPOCHS}"])
    run_dir = run_recbole(exp, model, params, epochs=EPOCHS, runs_dir=runs["runs_dir"])
    _agreement(run_dir)
    comparable_protocol(load_runs([runs["mf"], run_dir]))
