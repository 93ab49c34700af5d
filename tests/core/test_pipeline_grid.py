"""Pipeline train-stage grids: override expansion, TOML round trips and run order."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.config import apply_overrides, validate
from recsys.errors import ConfigError
from recsys.pipeline import PipelineConfig, TrainStage, grid_points, run_pipeline, train_overrides

ROOT = Path(__file__).resolve().parents[2]


def roundtrip(value: Any) -> Any:
    """What ``--set k=<toml_value(value)>`` puts into a config."""
    [[item]] = grid_points({"k": [value]})
    return apply_overrides({}, [item])["k"]


def test_grid_points_order_and_format() -> None:
    assert grid_points({}) == [[]]
    points = grid_points({"data.noise.ratio": [0.0, 0.1], "name": ["a b", "true"]})
    assert points == [
        ["data.noise.ratio=0.0", 'name="a b"'],
        ["data.noise.ratio=0.0", 'name="true"'],
        ["data.noise.ratio=0.1", 'name="a b"'],
        ["data.noise.ratio=0.1", 'name="true"'],
    ]
    nested = grid_points({"eval.ks": [[10, 20]], "model": [{"name": "mf", "dim": 8}]})
    assert nested == [["eval.ks=[10, 20]", 'model={name = "mf", dim = 8}']]


def test_values_read_back_unchanged() -> None:
    assert roundtrip("true") == "true" and roundtrip(True) is True
    assert roundtrip('say "hi"\\ \n\t\x7f') == 'say "hi"\\ \n\t\x7f'
    assert roundtrip(1e-3) == 1e-3 and isinstance(roundtrip(1.0), float)
    assert roundtrip(float("inf")) == float("inf") and math.isnan(roundtrip(float("nan")))
    assert roundtrip({"a.b": 1, "": [True]}) == {"a.b": 1, "": [True]}
    assert roundtrip(dt.date(2024, 2, 29)) == dt.date(2024, 2, 29)
    assert roundtrip(dt.datetime(2024, 1, 2, 3, 4, 5)) == dt.datetime(2024, 1, 2, 3, 4, 5)


SCALARS = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(VALUES)
def test_any_toml_value_round_trips(value: Any) -> None:
    got = roundtrip(value)
    assert got == value and type(got) is type(value)


def test_bad_grids_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="not a dotted config key"):
        grid_points({"a..b": [1]})
    with pytest.raises(ConfigError, match="not a dotted config key"):
        grid_points({"a=b": [1]})
    with pytest.raises(ConfigError, match="has no values"):
        grid_points({"a": []})
    with pytest.raises(ConfigError, match="cannot write None"):
        grid_points({"a": [None]})
    raw = {"name": "p", "stages": [{"kind": "train", "exp": ["e.toml"], "grid": {"seed": []}}]}
    with pytest.raises(ConfigError, match=r"stages\.0\.grid\.seed"):
        validate(PipelineConfig, raw, "p.toml")


def test_train_overrides_order_exp_grid_seed() -> None:
    stage = TrainStage(
        kind="train",
        exp=["a.toml", "b.toml"],
        seeds=[0, 1],
        sets=["train.epochs=3"],
        grid={"data.noise.ratio": [0.0, 0.2]},
    )
    got = train_overrides(stage, ["train.lr=0.01"])
    expected = [
        (exp, ["train.epochs=3", f"data.noise.ratio={rho}", "train.lr=0.01", f"seed={seed}"])
        for exp in ("a.toml", "b.toml")
        for rho in ("0.0", "0.2")
        for seed in (0, 1)
    ]
    assert got == expected
    plain = TrainStage(kind="train", exp=["a.toml"])
    assert train_overrides(plain) == [("a.toml", [])]


def test_pipeline_runs_the_grid_and_a_denoise_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    exp = ROOT / "conf" / "exp" / "ml100k-pop.toml"
    (tmp_path / "p.toml").write_text(
        f"""
name = "grid"
[[stages]]
kind = "train"
exp = ["{exp.as_posix()}"]
seeds = [0, 1]
grid = {{ "data.noise.ratio" = [0.0, 0.1], "eval.ks" = [[20]] }}
[[stages]]
kind = "report"
style = "denoise"
out = "rep"
title = "grid"
"""
    )
    result = run_pipeline(tmp_path / "p.toml")
    got = [
        (r.config["data"]["noise"]["ratio"], r.config["seed"], r.config["eval"]["ks"])
        for r in result.runs
    ]
    assert got == [(0.0, 0, [20]), (0.0, 1, [20]), (0.1, 0, [20]), (0.1, 1, [20])]
    assert len({r.dir for r in result.runs}) == 4
    [report] = result.reports
    assert report.html.is_file() and (tmp_path / "rep" / "results.csv").is_file()
    table = report.table.filter(report.table["metric"] == "recall@20")
    assert table["noise"].to_list() == [0.0, 0.1] and table["n_seeds"].to_list() == [2, 2]
