"""Every shipped pipeline validates and every experiment it names loads with its overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys.config import read_toml, validate
from recsys.experiment import load_experiment
from recsys.pipeline import PipelineConfig, TrainStage, train_overrides

ROOT = Path(__file__).resolve().parents[2]
PIPELINES = sorted((ROOT / "pipelines").glob("*.toml"))


@pytest.mark.parametrize("path", PIPELINES, ids=[p.name for p in PIPELINES])
def test_pipeline_experiments_load(path: Path) -> None:
    cfg = validate(PipelineConfig, read_toml(path), str(path))
    for stage in cfg.stages:
        if not isinstance(stage, TrainStage):
            continue
        data = path.parent / stage.data if stage.data is not None else None
        for exp_path, extra in train_overrides(stage):
            exp = load_experiment(path.parent / exp_path, extra, data=data)
            assert exp.cfg.name
            if data is not None:
                assert exp.base_dir == data.resolve().parent
