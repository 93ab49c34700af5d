"""Contract of every multi-task model, with the task sampler and loss, on small real data:
ml-100k (watch, like; sequences) and census-income (income, never married; rows only).

Each model trains two epochs on a seeded subsample of the train samples with a finite loss,
every task's test AUC is clearly above chance, a state-dict round trip reproduces its
predictions, the same seed gives the same model, and on ml-100k it ranks all items."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from recsys.data.multitask.tensors import MultiTaskData, TaskRows
from recsys.eval.config import EvalConfig
from recsys.eval.protocol import evaluate_model
from recsys.eval.task_metrics import evaluate_tasks
from recsys.losses import LOSSES
from recsys.models import MODELS, build_model
from recsys.samplers import SAMPLERS
from recsys.spec import DataSpec
from recsys.train.config import TrainConfig
from recsys.train.loop import fit

TASK_MODELS = [n for n in MODELS if MODELS[n].task_model]
SIZES = {"train": 12_000, "valid": 3_000, "test": 6_000}


def _subsample(spec: DataSpec) -> DataSpec:
    mt = spec.multitask
    assert mt is not None
    gen = torch.Generator().manual_seed(0)

    def take(rows: TaskRows, n: int) -> TaskRows:
        idx = torch.randperm(len(rows), generator=gen)[:n].sort().values
        return TaskRows(
            rows.labels[idx], rows.mask[idx], rows.users[idx], rows.items[idx],
            rows.features.take(idx), rows.history[idx],
        )  # fmt: skip

    rows = {s: take(r, SIZES[s]) for s, r in mt.rows.items()}
    small: MultiTaskData = dataclasses.replace(mt, rows=rows)
    users = spec.eval_users_test[:48]  # ranking all items for a few users is enough here
    return dataclasses.replace(spec, multitask=small, eval_users_test=users, _cache={})


@pytest.fixture(scope="module")
def datasets(ml100k_mt: DataSpec, census: DataSpec) -> dict[str, DataSpec]:
    return {"ml100k": _subsample(ml100k_mt), "census": _subsample(census)}


def _train(name: str, spec: DataSpec, seed: int = 0):  # type: ignore[no-untyped-def]
    model = build_model(name, None, spec, seed=seed)
    loss = LOSSES["task-bce"]()
    loss.bind(spec)
    cfg = TrainConfig(epochs=2, batch_size=256, lr=3e-3, monitor="mean/auc")
    result = fit(model, [loss], SAMPLERS["task-rows"](), spec, cfg, seed=seed)
    return model, result


def test_every_task_model_is_covered() -> None:
    assert set(TASK_MODELS) == {"shared-bottom", "mmoe", "ple", "dtrn", "single-task"}


@pytest.mark.parametrize("data", ["census", "ml100k"])
@pytest.mark.parametrize("name", TASK_MODELS)
def test_trains_and_beats_chance(name: str, data: str, datasets: dict[str, DataSpec]) -> None:
    spec = datasets[data]
    assert spec.multitask is not None
    model, result = _train(name, spec)
    assert result.epochs_run == 2
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in result.history)
    metrics, pred = evaluate_tasks(model, spec.multitask, "test")
    for task in spec.multitask.tasks:
        assert metrics[f"{task}/auc"] > 0.6, (task, metrics)
        assert 0 < metrics[f"{task}/logloss"] < 0.7, (task, metrics)
    # a state-dict round trip (fresh seed) reproduces the predictions exactly
    clone = build_model(name, None, spec, seed=5)
    clone.load_state_dict(model.state_dict())
    _, again = evaluate_tasks(clone, spec.multitask, "test")
    assert (again.probs == pred.probs).all()
    if spec.multitask.rankable:
        res = evaluate_model(model, spec, "test", EvalConfig(ks=(20,), metrics=("ndcg",)))
        assert 0 < res.summary["ndcg@20"] < 1


def test_same_seed_same_model(datasets: dict[str, DataSpec]) -> None:
    spec = datasets["census"]
    a = build_model("mmoe", None, spec, seed=3).state_dict()
    b = build_model("mmoe", None, spec, seed=3).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_task_loss_and_sampler_contract(datasets: dict[str, DataSpec]) -> None:
    for registry, name in ((LOSSES, "task-bce"), (SAMPLERS, "task-rows")):
        cls = registry[name]
        cfg = cls.Config()
        assert cls.Config.model_validate(cfg.model_dump(mode="json")) == cfg
    spec = datasets["census"]
    batches = list(SAMPLERS["task-rows"]().epoch(spec, 999, torch.Generator().manual_seed(0)))
    assert sum(len(b) for b in batches) == SIZES["train"]


def test_graph_multimodal_multitask_in_one_run(tmp_path_factory: pytest.TempPathFactory) -> None:
    """LightGCN backbone + a modality field + DTRN train together: gradients reach the graph's
    ego embeddings and the modality projection; freezing stops both."""
    from tests.multitask.conftest import load

    tab = 'features.tab={kind="tabular", multi_hot=["class"], numeric=["release_year"]}'
    spec = _subsample(load("ml-100k-multitask.toml", tmp_path_factory.mktemp("mm"), (tab,)))
    cfg = MODELS["dtrn"].Config(graph_layers=2, modalities=("tab",))
    model = build_model("dtrn", cfg, spec, seed=0)
    loss = LOSSES["task-bce"]()
    loss.bind(spec)
    assert spec.multitask is not None
    batch = next(iter(SAMPLERS["task-rows"]().epoch(spec, 512, torch.Generator())))
    total = sum(loss(batch, model(batch)).values())
    total.backward()  # type: ignore[union-attr]
    grads = {n: p.grad for n, p in model.named_parameters()}
    ego = [n for n in grads if n.endswith("user_ego") or n.endswith("item_ego")]
    proj = [n for n in grads if "projections" in n]
    assert ego and proj
    assert all(grads[n] is not None and float(grads[n].abs().sum()) > 0 for n in ego + proj)
    frozen = build_model("dtrn", cfg.model_copy(update={"freeze_backbone": True}), spec, seed=0)
    assert not any(p.requires_grad for n, p in frozen.named_parameters() if n in ego + proj)
    res = evaluate_model(model, spec, "test", EvalConfig(ks=(20,), metrics=("ndcg",)))
    assert res.n_users_evaluated == 48


def test_resume_is_exact_with_learned_task_weights(
    datasets: dict[str, DataSpec], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A run killed during epoch 2 and resumed from its epoch-1 checkpoint ends with the same
    weights (model and uncertainty log-variances) as an uninterrupted run."""
    spec = datasets["census"]
    ckpt = tmp_path_factory.mktemp("ckpt") / "checkpoint.pt"

    class Killed(Exception):
        pass

    def kill_at_2(epoch: int, row: dict[str, float]) -> bool:
        if epoch == 2:
            raise Killed  # before epoch 2's checkpoint is written
        return False

    def run(
        path: object, hooks: tuple[object, ...] = ()
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        model = build_model("mmoe", None, spec, seed=1)
        loss = LOSSES["task-bce"](LOSSES["task-bce"].Config(weighting="uncertainty"))
        loss.bind(spec)
        cfg = TrainConfig(epochs=3, batch_size=1024, lr=3e-3, monitor="mean/auc")
        fit(model, [loss], SAMPLERS["task-rows"](), spec, cfg, seed=1, checkpoint_path=path,  # type: ignore[arg-type]
            hooks=hooks)  # type: ignore[arg-type]  # fmt: skip
        return model.state_dict(), loss.log_vars.detach().clone()

    straight, s_vars = run(None)
    with pytest.raises(Killed):
        run(ckpt, (kill_at_2,))
    resumed, r_vars = run(ckpt)
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert torch.equal(s_vars, r_vars) and bool((s_vars != 0).all())
