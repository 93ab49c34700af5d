"""The multi-task loss, sampler, per-task metrics and experiment checks."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from recsys.errors import ConfigError
from recsys.eval.task_metrics import TaskPredictions, task_metrics
from recsys.experiment import load_experiment
from recsys.losses.task_bce import TaskBCE, TaskBCEConfig
from recsys.samplers.task_rows import TaskRowSampler
from recsys.spec import DataSpec
from recsys.types import TaskBatch, TaskOutput
from tests.multitask.conftest import ROOT

EXP = ROOT / "conf" / "exp" / "multitask"


def _batch(labels: list[list[float]], mask: list[list[bool]]) -> TaskBatch:
    n = len(labels)
    z = torch.zeros(n, dtype=torch.int64)
    return TaskBatch(
        z, z, torch.zeros(n, 0, dtype=torch.int64), torch.zeros(n, 0),
        torch.zeros(n, 0, 0, dtype=torch.int64), torch.tensor(labels), torch.tensor(mask),
    )  # fmt: skip


def _bound(ml100k_mt: DataSpec, **kw: object) -> TaskBCE:
    loss = TaskBCE(TaskBCEConfig(**kw))  # type: ignore[arg-type]
    loss.bind(ml100k_mt)
    return loss


def test_task_bce_by_hand(ml100k_mt: DataSpec) -> None:
    batch = _batch([[1, 1], [0, 0], [1, 0]], [[True, True], [True, False], [True, True]])
    logits = torch.tensor([[0.5, -1.0], [2.0, 9.0], [-0.3, 0.7]])
    terms = _bound(ml100k_mt, weights={"like": 2.0})(batch, TaskOutput(logits))

    def bce(x: float, y: float) -> float:
        p = 1 / (1 + math.exp(-x))
        return -(y * math.log(p) + (1 - y) * math.log(1 - p))

    watch = (bce(0.5, 1) + bce(2.0, 0) + bce(-0.3, 1)) / 3
    like = (bce(-1.0, 1) + bce(0.7, 0)) / 2  # the masked 9.0 does not count
    assert terms["bce/watch"].item() == pytest.approx(watch, rel=1e-6)
    assert terms["bce/like"].item() == pytest.approx(2 * like, rel=1e-6)
    assert set(terms) == {"bce/watch", "bce/like"}


def test_uncertainty_weighting_learns_log_variances(ml100k_mt: DataSpec) -> None:
    loss = _bound(ml100k_mt, weighting="uncertainty")
    batch = _batch([[1, 0]] * 4, [[True, True]] * 4)
    logits = torch.zeros(4, 2, requires_grad=True)
    with torch.no_grad():
        loss.log_vars.copy_(torch.tensor([0.5, -1.0]))
    terms = loss(batch, TaskOutput(logits))
    ln2 = math.log(2)
    assert terms["bce/watch"].item() == pytest.approx(math.exp(-0.5) * ln2, rel=1e-6)
    assert terms["bce/like"].item() == pytest.approx(math.exp(1.0) * ln2, rel=1e-6)
    assert terms["uncertainty"].item() == pytest.approx(0.5 * (0.5 - 1.0))
    sum(terms.values()).backward()  # type: ignore[union-attr]
    assert loss.log_vars.grad is not None and bool((loss.log_vars.grad != 0).all())
    assert "log_vars" in loss.state_dict()  # checkpointed with the loop's loss states


def test_task_bce_errors(ml100k_mt: DataSpec) -> None:
    with pytest.raises(ConfigError, match="unknown task 'click'"):
        _bound(ml100k_mt, weights={"click": 1.0})
    with pytest.raises(ConfigError, match="not bound"):
        TaskBCE()(_batch([[1, 1]], [[True, True]]), TaskOutput(torch.zeros(1, 2)))


def test_sampler_visits_every_train_sample_once(ml100k_mt: DataSpec) -> None:
    mt = ml100k_mt.multitask
    assert mt is not None
    rows = mt.rows["train"]
    gen = torch.Generator().manual_seed(3)
    seen = [b.labels.shape[0] for b in TaskRowSampler().epoch(ml100k_mt, 50_000, gen)]
    assert sum(seen) == len(rows) and max(seen) == 50_000
    first = next(iter(TaskRowSampler().epoch(ml100k_mt, 64, torch.Generator().manual_seed(3))))
    again = next(iter(TaskRowSampler().epoch(ml100k_mt, 64, torch.Generator().manual_seed(3))))
    assert torch.equal(first.items, again.items) and torch.equal(first.history, again.history)
    assert first.history.shape == (64, 3, 20)


def test_task_metrics_agree_with_sklearn() -> None:
    rng = np.random.default_rng(0)
    n = 600
    users = rng.integers(0, 25, n)
    labels = (rng.random((n, 2)) < 0.4).astype(np.float32)
    probs = np.clip(0.3 * labels + rng.random((n, 2)) * 0.7, 0.01, 0.99)
    mask = np.ones((n, 2), dtype=bool)
    mask[::3, 1] = False
    out = task_metrics(TaskPredictions(probs, labels, mask, users), ("a", "b"))
    m = mask[:, 1]
    assert out["b/auc"] == pytest.approx(roc_auc_score(labels[m, 1], probs[m, 1]), abs=1e-9)
    num = den = 0.0
    for u in np.unique(users[m]):
        sel = users[m] == u
        y, p = labels[m, 1][sel], probs[m, 1][sel]
        if 0 < y.sum() < y.size:
            num += sel.sum() * roc_auc_score(y, p)
            den += sel.sum()
    assert out["b/gauc"] == pytest.approx(num / den, abs=1e-9)
    y, p = labels[:, 0], probs[:, 0]
    direct = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert out["a/logloss"] == pytest.approx(direct, abs=1e-9)
    assert out["mean/auc"] == pytest.approx((out["a/auc"] + out["b/auc"]) / 2)
    no_users = task_metrics(TaskPredictions(probs, labels, mask, np.full(n, -1)), ("a", "b"))
    assert math.isnan(no_users["a/gauc"])


def test_experiment_checks(tmp_path: Path) -> None:
    exp = load_experiment(EXP / "ml100k-mmoe.toml")
    assert exp.sampler.name == "task-rows" and [c.name for c in exp.losses] == ["task-bce"]
    with pytest.raises(ConfigError, match="multi-task model; its data config needs"):
        load_experiment(EXP / "ml100k-mmoe.toml", data=ROOT / "conf/data/ml-100k.toml")
    with pytest.raises(ConfigError, match="'sampler' = 'uniform' does not fit model 'mmoe'"):
        load_experiment(EXP / "ml100k-mmoe.toml", ['sampler={name="uniform"}'])
    with pytest.raises(ConfigError, match="expected TASK/auc or TASK/gauc"):
        load_experiment(EXP / "ml100k-mmoe.toml", ["train.monitor=click/auc"])
    with pytest.raises(ConfigError, match="has no top-N ranking"):
        load_experiment(EXP / "census-mmoe.toml", ["train.monitor=ndcg@20"])
    with pytest.raises(ConfigError, match="samples without users and items"):
        load_experiment(
            ROOT / "conf/exp/ml100k-mf.toml", data=ROOT / "conf/data/census-income.toml"
        )
    # a pairwise model on the multi-task data ranks the liked test items (same targets)
    mf = load_experiment(
        ROOT / "conf/exp/ml100k-mf.toml", data=ROOT / "conf/data/ml-100k-multitask.toml"
    )
    assert mf.model.name == "mf"
