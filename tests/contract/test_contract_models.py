"""Contract tests: every registered model, loss and sampler honours the interfaces."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from recsys.errors import ConfigError
from recsys.losses import LOSSES
from recsys.models import MODELS, build_model
from recsys.samplers import SAMPLERS
from recsys.train.config import TrainConfig
from recsys.train.loop import fit
from recsys.types import Batch, ModelOutput
from tests.contract.toy_data import block_spec, with_features

ROOT = Path(__file__).resolve().parents[2]
# Pairwise components; the multi-task ones (task_model) have tests/multitask/test_task_contract.py.
PAIR_MODELS = [n for n in MODELS if not MODELS[n].task_model]
PAIR_LOSSES = [n for n in LOSSES if not getattr(LOSSES[n], "task_model", False)]
PAIR_SAMPLERS = [n for n in SAMPLERS if not getattr(SAMPLERS[n], "task_model", False)]


@pytest.fixture(scope="module")
def spec():  # type: ignore[no-untyped-def]
    return with_features(block_spec(n_users=12, n_items=10))


def first_batch(spec, n_negatives: int = 1) -> Batch:  # type: ignore[no-untyped-def]
    sampler = SAMPLERS["uniform"](SAMPLERS["uniform"].Config(n_negatives=n_negatives))
    return next(iter(sampler.epoch(spec, 16, torch.Generator().manual_seed(0), None)))


def all_scores(model, spec) -> torch.Tensor:  # type: ignore[no-untyped-def]
    model.eval()
    with torch.no_grad():
        return model.scorer()(torch.arange(spec.n_users))


@pytest.mark.parametrize("name", list(MODELS))
def test_model_config_roundtrip_and_strict(name: str) -> None:
    cls = MODELS[name]
    cfg = cls.Config()
    assert cls.Config.model_validate(cfg.model_dump(mode="json")) == cfg
    with pytest.raises(ValueError, match="no_such_key"):
        cls.Config.model_validate({"no_such_key": 1})


@pytest.mark.parametrize("name", PAIR_MODELS)
def test_model_scores_shape_seed_and_state_dict(name: str, spec) -> None:  # type: ignore[no-untyped-def]
    a = build_model(name, None, spec, seed=0)
    b = build_model(name, None, spec, seed=0)
    scores = all_scores(a, spec)
    assert scores.shape == (spec.n_users, spec.n_items)
    assert torch.isfinite(scores).all()
    torch.testing.assert_close(scores, all_scores(b, spec), rtol=0, atol=0)
    sub = a.scorer()(torch.tensor([3, 0]))
    torch.testing.assert_close(sub, scores[[3, 0]])
    c = build_model(MODELS[name], None, spec, seed=1)
    if MODELS[name].trainable:
        assert not torch.equal(all_scores(c, spec), scores)
    c.load_state_dict(a.state_dict())
    torch.testing.assert_close(all_scores(c, spec), scores, rtol=0, atol=0)
    emb = a.embeddings()
    if emb is not None:
        assert emb[0].shape[0] == spec.n_users and emb[1].shape[0] == spec.n_items


@pytest.mark.parametrize("name", [n for n in PAIR_MODELS if MODELS[n].trainable])
def test_trainable_model_gradients_and_one_epoch(name: str, spec) -> None:  # type: ignore[no-untyped-def]
    model = build_model(name, None, spec, seed=0)
    batch = first_batch(spec, n_negatives=2)
    out = model(batch)
    assert isinstance(out, ModelOutput)
    assert out.pos_scores.shape == (len(batch),) and out.neg_scores.shape == (len(batch), 2)
    terms = LOSSES["bpr"](LOSSES["bpr"].Config())(batch, out)
    assert {"user", "pos", "neg"} <= set(out.extra), "alignment/uniformity need these vectors"
    torch.stack([*terms.values(), *out.aux.values()]).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname
    model = build_model(name, None, spec, seed=0)
    res = fit(
        model,
        [LOSSES["bpr"]()],
        SAMPLERS["uniform"](),
        spec,
        TrainConfig(epochs=1, batch_size=32),
        seed=0,
    )
    assert res.epochs_run == 1 and torch.isfinite(torch.tensor(res.history[0]["loss"]))


def test_untrainable_model_refuses_forward(spec) -> None:  # type: ignore[no-untyped-def]
    for name in MODELS:
        if not MODELS[name].trainable:
            with pytest.raises(TypeError):
                build_model(name, None, spec, seed=0)(first_batch(spec))


@pytest.mark.parametrize("name", PAIR_LOSSES)
def test_loss_contract(name: str, spec) -> None:  # type: ignore[no-untyped-def]
    cls = LOSSES[name]
    cfg = cls.Config()
    assert cls.Config.model_validate(cfg.model_dump(mode="json")) == cfg
    # Calibrated uniformity reads the fused item vectors, which CM3 exposes.
    model = build_model("cm3" if name == "calibrated_uniformity" else "mf", None, spec, seed=0)
    batch = first_batch(spec, n_negatives=3)
    terms = cls(cfg)(batch, model(batch))
    assert terms and all(t.ndim == 0 and torch.isfinite(t) for t in terms.values())
    total = torch.stack(list(terms.values())).sum()
    total.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("model", [n for n in PAIR_MODELS if MODELS[n].trainable])
@pytest.mark.parametrize("loss", PAIR_LOSSES)
def test_every_trainable_model_takes_every_loss(model: str, loss: str, spec) -> None:  # type: ignore[no-untyped-def]
    """Losses plug into any model: one step of every (model, loss) pair runs and is finite
    (calibrated uniformity takes fixed feature content for models without fused vectors)."""
    cls = LOSSES[loss]
    cfg = cls.Config()
    if loss == "calibrated_uniformity" and model != "cm3":
        cfg = cls.Config(content="features")
    instance = cls(cfg)
    bind = getattr(instance, "bind", None)
    if callable(bind):
        bind(spec)
    m = build_model(model, None, spec, seed=0)
    batch = first_batch(spec, n_negatives=2)
    out = m(batch)
    terms = instance(batch, out)
    total = torch.stack([*terms.values(), *out.aux.values()]).sum()
    assert torch.isfinite(total)
    total.backward()


@pytest.mark.parametrize("name", PAIR_SAMPLERS)
def test_sampler_contract(name: str, spec) -> None:  # type: ignore[no-untyped-def]
    cls = SAMPLERS[name]
    cfg = cls.Config()
    assert cls.Config.model_validate(cfg.model_dump(mode="json")) == cfg
    batches = list(cls(cfg).epoch(spec, 7, torch.Generator().manual_seed(0), None))
    assert sum(len(b) for b in batches) == len(spec.train)
    for b in batches:
        assert b.neg_items.ndim == 2 and b.neg_items.shape[0] == len(b)
        assert b.users.dtype == b.pos_items.dtype == b.neg_items.dtype == torch.int64


def test_registries_list_valid_names() -> None:
    for registry in (MODELS, LOSSES, SAMPLERS):
        with pytest.raises(ConfigError, match="valid: "):
            registry["no-such-component"]


def test_models_never_import_polars_or_optuna() -> None:
    banned = {"polars", "optuna"}
    for path in sorted((ROOT / "recsys" / "models").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for n in names:
                assert n.split(".")[0] not in banned, f"{path} imports {n}"
