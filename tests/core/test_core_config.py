"""Strict config loading: unknown keys, overrides, component validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys.config import apply_overrides, parse_value, read_toml, validate
from recsys.errors import ConfigError
from recsys.experiment import load_experiment
from recsys.registry import Registry

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_parse_value_types() -> None:
    assert parse_value("1e-3") == pytest.approx(1e-3)
    assert parse_value("10") == 10
    assert parse_value("true") is True
    assert parse_value("[10, 20]") == [10, 20]
    assert parse_value("mf") == "mf"


def test_overrides_nested_and_errors() -> None:
    raw = {"train": {"lr": 1.0}}
    out = apply_overrides(raw, ["train.lr=0.5", "model.dim=32"])
    assert out == {"train": {"lr": 0.5}, "model": {"dim": 32}}
    assert raw == {"train": {"lr": 1.0}}  # input untouched
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides(raw, ["train.lr"])
    with pytest.raises(ConfigError, match="not a table"):
        apply_overrides(raw, ["train.lr.x=1"])


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        read_toml(tmp_path / "nope.toml")
    bad = write(tmp_path, "bad.toml", "a = [1,\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: invalid TOML"):
        read_toml(bad)


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "exp.toml",
        'name = "x"\nmodel = { name = "mf" }\n[train]\nepochz = 3\n',
    )
    with pytest.raises(ConfigError) as e:
        load_experiment(path)
    assert "exp.toml" in str(e.value) and "train.epochz" in str(e.value)


def test_unknown_component_param_and_name(tmp_path: Path) -> None:
    path = write(tmp_path, "e.toml", 'name = "x"\nmodel = { name = "mf", dimm = 3 }\n')
    with pytest.raises(ConfigError, match=r"e\.toml: unknown key 'model\.dimm'"):
        load_experiment(path)
    path = write(tmp_path, "f.toml", 'name = "x"\nmodel = { name = "nope" }\n')
    with pytest.raises(ConfigError, match=r"unknown model 'nope'; valid: .*lightgcn"):
        load_experiment(path)


def test_monitor_must_be_evaluated(tmp_path: Path) -> None:
    path = write(tmp_path, "m.toml", 'name = "x"\nmodel = { name = "mf" }\n')
    with pytest.raises(ConfigError, match=r"K=50 is not in eval\.ks"):
        load_experiment(path, ["train.monitor=ndcg@50"])
    with pytest.raises(ConfigError, match="expected METRIC@K"):
        load_experiment(path, ["train.monitor=foo"])


def test_shipped_experiments_load_with_data_overrides() -> None:
    for path in sorted((ROOT / "conf" / "exp").glob("*.toml")):
        exp = load_experiment(path)
        assert exp.resolved()["model"]["name"] == exp.model.name
    exp = load_experiment(ROOT / "conf" / "exp" / "ml100k-mf.toml", ["data.split.seed=7"])
    assert exp.cfg.data.split.seed == 7


def test_registry_lists_valid_names() -> None:
    reg = Registry("widget", {"a": 1, "b": 2})
    assert reg["a"] == 1 and len(reg) == 2 and list(reg) == ["a", "b"]
    with pytest.raises(ConfigError, match="unknown widget 'c'; valid: a, b"):
        reg["c"]


def test_validate_reports_type_errors() -> None:
    from recsys.train.config import TrainConfig

    with pytest.raises(ConfigError, match=r"src: key 'train\.lr'"):
        validate(TrainConfig, {"lr": "fast"}, "src", "train")


def test_errors_name_keys_as_written_through_tagged_unions() -> None:
    """A modality is a union tagged by ``kind``; the message must not show the tag as a key."""
    from recsys.data.config import DataConfig

    cases = {
        "unknown key 'features.kg.dims'": {"kind": "kg", "dims": 3},
        "key 'features.kg.dim': Input should be greater than 0": {"kind": "kg", "dim": 0},
        "missing required key 'features.kg.path'": {"kind": "npy"},
    }
    for needle, table in cases.items():
        with pytest.raises(ConfigError) as err:
            validate(DataConfig, {"features": {"kg": table}}, "d.toml")
        assert f"d.toml: {needle}" in str(err.value)
