"""The shipped search spaces (conf/tune/*.toml): each loads against its experiment, every
trainable model has one, and random draws from each build valid experiments carrying the drawn
values. Configs only: nothing is trained and no data is prepared."""

from __future__ import annotations

import math
import random
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from recsys.experiment import build_experiment
from recsys.models import MODELS
from recsys.tune.config import CategoricalParam, FloatParam, IntParam, Param
from recsys.tune.context import TuneContext, load_context
from recsys.tune.space import active, suggest, with_values

ROOT = Path(__file__).resolve().parents[2]
TUNE_DIR = ROOT / "conf" / "tune"
FILES = sorted(TUNE_DIR.glob("*.toml"))
IDS = [p.stem for p in FILES]
N_DRAWS = 5


class SeededTrial:
    """A seeded stand-in for ``optuna.Trial`` (the ``Suggests`` protocol): uniform draws,
    log-uniform for ``log`` floats and ints, recorded in ``params``."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.params: dict[str, Any] = {}

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        if log:
            value = math.exp(self.rng.uniform(math.log(low), math.log(high)))
            value = min(max(value, low), high)
        elif step is not None:
            value = low + step * self.rng.randint(0, math.floor((high - low) / step + 1e-9))
        else:
            value = self.rng.uniform(low, high)
        self.params[name] = value
        return value

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        if log:
            value = round(math.exp(self.rng.uniform(math.log(low), math.log(high))))
            value = min(max(value, low), high)
        else:
            value = self.rng.choice(range(low, high + 1, step))
        self.params[name] = value
        return value

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        value = self.rng.choice(list(choices))
        self.params[name] = value
        return value


def _load(path: Path, runs_dir: Path) -> TuneContext:
    return load_context(path, [], runs_dir)


def _get_path(node: Any, key: str) -> Any:
    for part in key.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _in_space(p: Param, value: Any) -> bool:
    if isinstance(p, CategoricalParam):
        return value in p.choices
    if isinstance(p, IntParam):
        return isinstance(value, int) and p.low <= value <= p.high
    assert isinstance(p, FloatParam)
    return p.low <= value <= p.high


def _check_draw(ctx: TuneContext, values: dict[str, Any], seed: int) -> None:
    """The drawn values respect the space and land in a valid experiment."""
    params = ctx.cfg.params
    chosen: dict[str, Any] = {}
    for name, p in params.items():
        if active(p, chosen):
            assert name in values, f"active parameter {name} not drawn"
            assert _in_space(p, values[name]), (name, values[name])
            chosen[name] = values[name]
        else:
            assert name not in values, f"{name} drawn though its condition fails"
    assert list(values) == [n for n in params if n in values]
    raw = with_values(ctx.raw, values, name=f"{ctx.cfg.name}-t{seed:04d}", seed=seed)
    exp = build_experiment(raw, ctx.source, ctx.exp_base_dir)
    resolved = exp.resolved()
    for name, value in values.items():
        assert _get_path(resolved, name) == value, name
    for name in params.keys() - values.keys():
        assert _get_path(resolved, name) == _get_path(ctx.base.resolved(), name), name
    assert exp.model.name == ctx.base.model.name
    assert exp.cfg.seed == seed


def test_files_exist() -> None:
    assert len(FILES) >= len([n for n in MODELS if MODELS[n].trainable])


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_loads_against_its_experiment(path: Path, tmp_path: Path) -> None:
    ctx = load_context(path, [], tmp_path)
    assert ctx.cfg.name == path.stem
    assert ctx.base.model.name in MODELS
    # every parameter names a key of the untuned experiment
    resolved = ctx.base.resolved()
    for name in ctx.cfg.params:
        _get_path(resolved, name)


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_sampler_and_pruner_pinned(path: Path) -> None:
    raw = tomllib.loads(path.read_text())
    assert {"name", "seed", "n_startup_trials"} <= set(raw["sampler"]), "sampler not pinned"
    assert "pruner" in raw and "name" in raw["pruner"], "pruner not set explicitly"
    if raw.get("cost", "none") != "none":
        assert raw["pruner"]["name"] == "none"


@pytest.mark.parametrize("path", [p for p in FILES if p.stem.startswith("mm-")])
def test_multimodal_spaces_select_on_recall20(path: Path, tmp_path: Path) -> None:
    ctx = load_context(path, [], tmp_path)
    assert ctx.cfg.metric == "recall@20"
    assert 20 in ctx.base.cfg.eval.ks and "recall" in ctx.base.cfg.eval.metrics


def test_every_trainable_model_has_a_space(tmp_path: Path) -> None:
    used = {_load(p, tmp_path).base.model.name for p in FILES}
    trainable = {name for name in MODELS if MODELS[name].trainable}
    assert trainable, "no trainable model in the registry"
    assert trainable <= used, f"no tune file for {sorted(trainable - used)}"


def test_readme_describes_every_file_and_untrainable_model() -> None:
    readme = (TUNE_DIR / "README.md").read_text()
    for path in FILES:
        assert f"`{path.name}`" in readme, path.name
    for name in MODELS:
        if not MODELS[name].trainable:
            assert f"`{name}`" in readme, name


def test_multi_objective_example(tmp_path: Path) -> None:
    ctx = _load(TUNE_DIR / "ml100k-lightgcn-moo.toml", tmp_path)
    assert ctx.cfg.multi_objective and ctx.cfg.cost == "params" and not ctx.pruning
    dim = ctx.cfg.params["model.dim"]
    assert isinstance(dim, CategoricalParam) and len(set(dim.choices)) >= 3
    assert "model.layers" in ctx.cfg.params


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_random_draws_build(path: Path, tmp_path: Path) -> None:
    ctx = load_context(path, [], tmp_path)
    for seed in range(N_DRAWS):
        trial = SeededTrial(seed)
        values = suggest(trial, ctx.cfg.params)
        assert values == trial.params
        _check_draw(ctx, values, seed)


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_optuna_draws_build(path: Path, tmp_path: Path) -> None:
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ctx = load_context(path, [], tmp_path)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for seed in range(N_DRAWS):
        trial = study.ask()
        values = suggest(trial, ctx.cfg.params)
        assert values == trial.params
        _check_draw(ctx, values, seed)


def test_conditional_parameter_absent_when_condition_fails(tmp_path: Path) -> None:
    """A ``when`` parameter is drawn exactly when its condition holds, and the experiment
    keeps its own value otherwise (checked on a CM3 space conditioned on the fusion)."""
    exp = (ROOT / "conf" / "exp" / "mm" / "cm3.toml").as_posix()
    spec = tmp_path / "cond.toml"
    spec.write_text(
        f'name = "cond"\nexperiment = "{exp}"\nmetric = "recall@20"\n'
        '[params."model.fusion"]\ntype = "categorical"\nchoices = ["bezier", "dirichlet"]\n'
        '[params."model.alpha"]\ntype = "categorical"\nchoices = [0.1, 0.9]\n'
        'when = { "model.fusion" = ["bezier"] }\n'
    )
    ctx = load_context(spec, [], tmp_path)
    seen = set()
    for seed in range(20):
        values = suggest(SeededTrial(seed), ctx.cfg.params)
        seen.add(values["model.fusion"])
        assert ("model.alpha" in values) == (values["model.fusion"] == "bezier")
        _check_draw(ctx, values, seed)
    assert seen == {"bezier", "dirichlet"}
