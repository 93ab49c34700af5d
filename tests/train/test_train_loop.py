"""The training loop: resume after a kill, early stopping, hooks, NaN guard, devices."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
import torch

from recsys.config import StrictModel
from recsys.errors import ConfigError, RecsysError
from recsys.losses import LOSSES
from recsys.losses.bpr import BPRConfig
from recsys.models import build_model
from recsys.samplers import SAMPLERS
from recsys.spec import DataSpec
from recsys.train.checkpoint import load_checkpoint
from recsys.train.config import TrainConfig
from recsys.train.device import resolve_device
from recsys.train.early_stop import EarlyStopper
from recsys.train.loop import fit, make_optimizer
from recsys.types import Batch, ModelOutput
from tests.contract.toy_data import block_spec, held_out_auc


class Killed(Exception):
    pass


@pytest.fixture(scope="module")
def spec() -> DataSpec:
    return block_spec(n_users=30, n_items=20, seed=1)


def auc_validate(spec: DataSpec):  # type: ignore[no-untyped-def]
    def validate(model) -> dict[str, float]:  # type: ignore[no-untyped-def]
        assert not model.training and not torch.is_grad_enabled()
        return {"auc@0": held_out_auc(model.scorer()(torch.arange(spec.n_users)), spec)}

    return validate


def run(  # type: ignore[no-untyped-def]
    spec: DataSpec,
    cfg: TrainConfig,
    path: Path | None,
    name: str = "lightgcn",
    validate: bool = True,
    **kw,
):
    model = build_model(name, None, spec, seed=7)
    res = fit(
        model,
        [LOSSES["bpr"]()],
        SAMPLERS["uniform"](),
        spec,
        cfg,
        seed=7,
        validate=auc_validate(spec) if validate else None,
        checkpoint_path=path,
        **kw,
    )
    return model, res


@pytest.mark.parametrize("name", ["mf", "lightgcn"])
def test_killed_run_resumes_bit_for_bit(tmp_path: Path, spec: DataSpec, name: str) -> None:
    cfg = TrainConfig(
        epochs=6,
        batch_size=32,
        lr=0.01,
        monitor="auc@0",
        patience=0,
        eval_every=2,
        restore_best=False,
    )
    whole_model, whole = run(spec, cfg, tmp_path / "whole.pt", name)

    def kill(epoch: int, row: dict[str, float]) -> bool:
        if epoch == 4:
            raise Killed
        return False

    path = tmp_path / "killed.pt"
    with pytest.raises(Killed):
        run(spec, cfg, path, name, hooks=[kill])
    assert load_checkpoint(path).epoch == 3
    model, res = run(spec, cfg, path, name)
    assert res.resumed_from == 3 and whole.resumed_from is None
    strip = [{k: v for k, v in r.items() if "seconds" not in k} for r in res.history]
    ref = [{k: v for k, v in r.items() if "seconds" not in k} for r in whole.history]
    assert strip == ref and len(ref) == 6
    assert res.best_epoch == whole.best_epoch and res.best_value == whole.best_value
    for (k, a), (_, b) in zip(
        whole_model.state_dict().items(), model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), k
    # A finished checkpoint resumes to the same result without training.
    again_model, again = run(spec, cfg, path, name)
    assert again.epochs_run == 6 and again.resumed_from == 6
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), again_model.state_dict().values(), strict=True)
    )


def test_early_stopping_and_restore_best(spec: DataSpec) -> None:
    values = iter([0.1, 0.5, 0.4, 0.45, 0.3, 0.9, 0.95])
    snapshots: dict[int, torch.Tensor] = {}

    def validate(model) -> dict[str, float]:  # type: ignore[no-untyped-def]
        snapshots[len(snapshots) + 1] = model.user_emb.detach().clone()
        return {"ndcg@20": next(values)}

    model = build_model("mf", None, spec, seed=0)
    cfg = TrainConfig(epochs=7, batch_size=64, patience=3)
    res = fit(model, [LOSSES["bpr"]()], SAMPLERS["uniform"](), spec, cfg, seed=0, validate=validate)
    assert res.epochs_run == 5 and res.stopped_early
    assert res.best_epoch == 2 and res.best_value == pytest.approx(0.5)
    assert [r["valid/ndcg@20"] for r in res.history] == pytest.approx([0.1, 0.5, 0.4, 0.45, 0.3])
    assert torch.equal(model.state_dict()["user_emb"], snapshots[2])


def test_hook_stops_training(spec: DataSpec) -> None:
    seen: list[int] = []
    rows: list[dict[str, float]] = []

    def prune(epoch: int, row: dict[str, float]) -> bool:
        seen.append(epoch)
        return epoch == 2

    cfg = TrainConfig(epochs=10)
    _, res = run(spec, cfg, None, "mf", validate=False, hooks=[prune], on_epoch=rows.append)
    assert seen == [1, 2] and res.epochs_run == 2 and res.stopped_early
    assert [r["epoch"] for r in rows] == [1, 2]
    assert {"loss", "loss/bpr", "loss/reg", "seconds"} <= set(rows[0])
    assert res.best_value is None and res.best_epoch == 2


class ExplodingLoss:
    """A zero loss term that turns NaN at the ``bad_call``-th call (0-based)."""

    Config: ClassVar[type[StrictModel]] = BPRConfig

    def __init__(self, bad_call: int) -> None:
        self.calls = 0
        self.bad_call = bad_call

    def __call__(self, batch: Batch, out: ModelOutput) -> dict[str, torch.Tensor]:
        value = out.pos_scores.mean() * 0
        if self.calls == self.bad_call:
            value = value + float("nan")
        self.calls += 1
        return {"boom": value}


def test_non_finite_loss_raises_and_keeps_last_checkpoint(tmp_path: Path, spec: DataSpec) -> None:
    steps = -(-len(spec.train) // 64)
    path = tmp_path / "ck.pt"
    model = build_model("mf", None, spec, seed=0)
    bad = ExplodingLoss(bad_call=steps + 1)  # epoch 2, step 1 (0-based)
    with pytest.raises(RecsysError, match=r"non-finite loss at epoch 2 step 1 \(terms: .*boom=nan"):
        fit(
            model,
            [LOSSES["bpr"](), bad],
            SAMPLERS["uniform"](),
            spec,
            TrainConfig(epochs=5, batch_size=64),
            seed=0,
            checkpoint_path=path,
        )
    ck = load_checkpoint(path)
    assert ck.epoch == 1 and torch.isfinite(ck.model["user_emb"]).all()


def test_closed_form_model_validates_once(spec: DataSpec) -> None:
    calls: list[int] = []

    def validate(model) -> dict[str, float]:  # type: ignore[no-untyped-def]
        calls.append(1)
        return {"ndcg@20": 0.25}

    model = build_model("pop", None, spec, seed=0)
    res = fit(model, [], SAMPLERS["uniform"](), spec, TrainConfig(), seed=0, validate=validate)
    assert calls == [1] and res.epochs_run == 0 and res.best_value == 0.25
    assert res.history[0]["valid/ndcg@20"] == 0.25


def test_errors_name_the_problem(tmp_path: Path, spec: DataSpec) -> None:
    model = build_model("mf", None, spec, seed=0)
    with pytest.raises(RecsysError, match=r"monitor 'ndcg@20' is not among .*'recall@20'"):
        fit(
            model,
            [LOSSES["bpr"]()],
            SAMPLERS["uniform"](),
            spec,
            TrainConfig(epochs=1),
            seed=0,
            validate=lambda m: {"recall@20": 0.1},
        )
    with pytest.raises(ConfigError, match="no loss"):
        fit(model, [], SAMPLERS["uniform"](), spec, TrainConfig(epochs=1), seed=0)
    path = tmp_path / "ck.pt"
    fit(
        model,
        [LOSSES["bpr"]()],
        SAMPLERS["uniform"](),
        spec,
        TrainConfig(epochs=1),
        seed=0,
        checkpoint_path=path,
    )
    with pytest.raises(RecsysError, match=r"another run .*seed"):
        fit(
            model,
            [LOSSES["bpr"]()],
            SAMPLERS["uniform"](),
            spec,
            TrainConfig(epochs=2),
            seed=1,
            checkpoint_path=path,
        )
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(RecsysError, match="cannot read checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_optimizers(name: str, spec: DataSpec) -> None:
    model = build_model("mf", None, spec, seed=0)
    cfg = TrainConfig(optimizer=name, lr=0.1, weight_decay=0.01)  # type: ignore[arg-type]
    opt = make_optimizer(model.parameters(), cfg)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[0]["weight_decay"] == 0.01


def test_early_stopper_modes() -> None:
    s = EarlyStopper("logloss", patience=2)
    assert s.update(1, 0.5) and s.update(2, 0.4) and not s.update(3, 0.45)
    assert not s.should_stop and not s.update(4, float("nan")) and s.should_stop
    off = EarlyStopper("ndcg@10", patience=0)
    for e in range(10):
        off.update(e, 0.0)
    assert not off.should_stop and off.best_epoch == 0


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ConfigError, match="device 'tpu9'"):
        resolve_device("tpu9")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")


def test_progress_bar_runs(spec: DataSpec, capsys: pytest.CaptureFixture[str]) -> None:
    _, res = run(spec, TrainConfig(epochs=2), None, "mf", validate=False, progress=True)
    assert res.epochs_run == 2
    assert "train" in capsys.readouterr().out
