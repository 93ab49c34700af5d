"""Pipelines (pipelines/*.toml): ordered stages prepare → train → report.

Paths to configs are relative to the pipeline file; outputs (``runs_dir``, report ``out``) are
relative to the working directory. Every stage is idempotent: prepared data comes from the
cache, finished runs are reused (``force`` retrains), unfinished runs resume.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from recsys import api
from recsys.config import StrictModel, read_toml, validate
from recsys.experiment import load_data_config, load_experiment
from recsys.report.build import ReportPaths, build_report

log = logging.getLogger(__name__)


class PrepareStage(StrictModel):
    kind: Literal["prepare"]
    data: str
    sets: list[str] = Field(default_factory=list)


class TrainStage(StrictModel):
    kind: Literal["train"]
    exp: list[str]
    seeds: list[int] | None = None
    """Model seeds to run each experiment with (default: the experiment's own seed)."""
    sets: list[str] = Field(default_factory=list)


class ReportStage(StrictModel):
    kind: Literal["report"]
    out: str
    title: str = "recsys report"
    baseline: str | None = None
    """Experiment name of the baseline run (default: the first run)."""


Stage = Annotated[PrepareStage | TrainStage | ReportStage, Field(discriminator="kind")]


class PipelineConfig(StrictModel):
    name: str
    runs_dir: str = "runs"
    stages: list[Stage]


@dataclass
class PipelineResult:
    runs: list[api.TrainedRun] = field(default_factory=list)
    reports: list[ReportPaths] = field(default_factory=list)


def run_pipeline(
    path: str | Path,
    sets: list[str] | tuple[str, ...] = (),
    force: bool = False,
    progress: bool = False,
) -> PipelineResult:
    """Run every stage of ``path`` in order; ``sets`` apply to every experiment."""
    path = Path(path)
    cfg = validate(PipelineConfig, read_toml(path), str(path))
    base = path.parent
    out = PipelineResult()
    for i, stage in enumerate(cfg.stages):
        log.info("stage %d/%d: %s", i + 1, len(cfg.stages), stage.kind)
        if isinstance(stage, PrepareStage):
            data_cfg, data_dir = load_data_config(base / stage.data, [*stage.sets])
            prepared, _ = api.prepare_data(data_cfg, data_dir)
            log.info("data %s: %s", "cache hit" if prepared.cache_hit else "prepared", prepared.dir)
        elif isinstance(stage, TrainStage):
            for exp_path in stage.exp:
                seeds: list[int | None] = list(stage.seeds) if stage.seeds else [None]
                for seed in seeds:
                    extra = [*stage.sets, *sets] + ([f"seed={seed}"] if seed is not None else [])
                    exp = load_experiment(base / exp_path, extra)
                    out.runs.append(_train_or_reuse(exp, cfg.runs_dir, force, progress))
        else:
            runs = [r.dir for r in out.runs]
            baseline = None
            if stage.baseline is not None:
                named = [r.dir for r in out.runs if r.config.get("name") == stage.baseline]
                baseline = named[0] if named else None
            report = build_report(runs, Path(stage.out), baseline=baseline, title=stage.title)
            out.reports.append(report)
    return out


def _train_or_reuse(
    exp: api.Experiment, runs_dir: str, force: bool, progress: bool
) -> api.TrainedRun:
    try:
        run = api.train(exp, runs_dir=runs_dir, force=force, progress=progress)
        log.info("trained %s", run.dir)
        return run
    except api.AlreadyDone as done:
        log.info("reusing finished run %s", done.run_dir)
        return api.TrainedRun(done.run_dir)
