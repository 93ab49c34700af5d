"""Tune configs: strict validation against the experiment, conditional spaces, overrides."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from tune_files import MF_EXP, write_tune

from recsys.config import apply_overrides
from recsys.errors import ConfigError, RecsysError
from recsys.tune.config import load_tune_config
from recsys.tune.context import load_context
from recsys.tune.space import suggest, with_values
from recsys.tune.storage import open_storage


def _param(name: str, body: str) -> str:
    return f'[params."{name}"]\n{body}\n'


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            _param("model.dims", 'type = "int"\nlow = 8\nhigh = 16'),
            "unknown parameter 'model.dims'",
        ),
        (_param("train.lrr", 'type = "float"\nlow = 0.1\nhigh = 0.2'), "unknown parameter"),
        (_param("losses.3.reg_weight", 'type = "float"\nlow = 0.1\nhigh = 0.2'), "unknown"),
        (_param("train.lr", 'type = "float"\nlow = 0.2\nhigh = 0.1'), "empty range"),
        (_param("model.dim", 'type = "int"\nlow = 9\nhigh = 3'), "empty range"),
        (_param("train.lr", 'type = "float"\nlow = 0.0\nhigh = 0.1\nlog = true'), "log scale"),
        (_param("model.dim", 'type = "categorical"\nchoices = []'), "choices"),
        (_param("train.optimizer", 'type = "categorical"\nchoices = ["adam", "lion"]'), "'lion'"),
        (_param("model.dim", 'type = "int"\nlow = 0\nhigh = 8'), "model.dim' = 0"),
        (
            _param(
                "train.lr", 'type = "float"\nlow = 0.1\nhigh = 0.2\nwhen = { "model.dim" = [8] }'
            )
            + _param("model.dim", 'type = "int"\nlow = 8\nhigh = 16'),
            "not an earlier parameter",
        ),
    ],
)
def test_bad_spaces_name_the_parameter(tmp_path: Path, params: str, message: str) -> None:
    path = write_tune(tmp_path / "t.toml", params=params)
    with pytest.raises(ConfigError, match=message):
        load_context(path, [], tmp_path / "runs")


def test_unknown_tune_key_and_metric_and_files(tmp_path: Path) -> None:
    path = write_tune(tmp_path / "t.toml", extra="n_trails = 3")
    with pytest.raises(ConfigError, match="unknown key 'n_trails'"):
        load_tune_config(path)
    path = write_tune(tmp_path / "t.toml")
    with pytest.raises(ConfigError, match="'metric' = 'ndcg@50'"):
        load_context(path, ["metric=ndcg@50"], tmp_path)
    with pytest.raises(ConfigError, match="'experiment': no such file"):
        load_context(path, ["experiment=nope.toml"], tmp_path)
    with pytest.raises(ConfigError, match="pruning needs a single objective"):
        load_tune_config(path, ["cost=params", "pruner.name=median"])
    with pytest.raises(ConfigError, match="nsga2"):
        load_tune_config(path, ["sampler.name=nsga2"])


def test_multi_objective_defaults_to_no_pruning(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(
        f'name = "m"\nexperiment = "{MF_EXP}"\ncost = "params"\n'
        '[params."model.dim"]\ntype = "categorical"\nchoices = [8, 16]\n'
    )
    ctx = load_context(path, [], tmp_path)
    assert ctx.cfg.multi_objective and ctx.cfg.pruner_name == "none" and not ctx.pruning
    single = load_context(path, ["cost=none"], tmp_path)
    assert single.cfg.pruner_name == "median" and single.pruning


def test_conditional_parameters_are_sampled_only_when_their_condition_holds(
    tmp_path: Path,
) -> None:
    params = _param("train.optimizer", 'type = "categorical"\nchoices = ["adam", "sgd"]')
    params += _param(
        "train.weight_decay",
        'type = "float"\nlow = 1e-6\nhigh = 1e-3\nlog = true\n'
        'when = { "train.optimizer" = ["sgd"] }',
    )
    ctx = load_context(write_tune(tmp_path / "t.toml", params=params), [], tmp_path)
    adam = suggest(optuna.trial.FixedTrial({"train.optimizer": "adam"}), ctx.cfg.params)
    assert adam == {"train.optimizer": "adam"}
    sgd = suggest(
        optuna.trial.FixedTrial({"train.optimizer": "sgd", "train.weight_decay": 1e-4}),
        ctx.cfg.params,
    )
    assert sgd == {"train.optimizer": "sgd", "train.weight_decay": 1e-4}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(20):
        values = suggest(study.ask(), ctx.cfg.params)
        seen.add(tuple(sorted(values)))
        assert ("train.weight_decay" in values) == (values["train.optimizer"] == "sgd")
    assert len(seen) == 2


def test_values_apply_to_list_elements_and_keep_the_rest(tmp_path: Path) -> None:
    ctx = load_context(write_tune(tmp_path / "t.toml"), [], tmp_path)
    raw = with_values(ctx.raw, {"losses.0.reg_weight": 0.5, "train.lr": 0.01}, name="x", seed=3)
    assert raw["losses"][0] == {"name": "bpr", "reg_weight": 0.5}
    assert raw["train"]["lr"] == 0.01 and raw["train"]["epochs"] == 2
    assert raw["name"] == "x" and raw["seed"] == 3
    assert ctx.raw["losses"][0]["reg_weight"] == 1e-3  # the context's raw is untouched


def test_set_overrides_index_lists_and_refuse_bad_indices() -> None:
    raw = {"losses": [{"name": "bpr"}], "train": {"lr": 1.0}}
    out = apply_overrides(raw, ["losses.0.reg_weight=0.1", "train.lr=0.5"])
    assert out["losses"][0]["reg_weight"] == 0.1 and out["train"]["lr"] == 0.5
    assert "reg_weight" not in raw["losses"][0]
    with pytest.raises(ConfigError, match="is a list of 1; '2' is not an index"):
        apply_overrides(raw, ["losses.2.reg_weight=0.1"])
    with pytest.raises(ConfigError, match=r"'train\.lr' is not a table"):
        apply_overrides(raw, ["train.lr.x=1"])


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nonsense", "is not a database URL"),
        ("postgresql+psycopg2://u:secret@127.0.0.1:1/db", "cannot open tuning storage"),
        ("sqlite:////proc/forbidden/x.db", "cannot open tuning storage|Permission|No such"),
    ],
)
def test_unreachable_storage_is_a_clear_error(url: str, message: str) -> None:
    with pytest.raises(RecsysError, match=message) as info:
        open_storage(url, 5)
    assert "secret" not in str(info.value)


def test_value_errors_name_the_parameter_as_written(tmp_path: Path) -> None:
    """A validator error of a tagged union member names the key, not the tag."""
    params = _param("train.lr", 'type = "float"\nlow = 0.2\nhigh = 0.1')
    with pytest.raises(ConfigError) as info:
        load_tune_config(write_tune(tmp_path / "t.toml", params=params))
    assert "key 'params.\"train.lr\"': Value error, empty range" in str(info.value)
