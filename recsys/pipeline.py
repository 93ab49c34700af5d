"""Pipelines (pipelines/*.toml): ordered stages prepare → train → report.

Paths to configs are relative to the pipeline file; outputs (``runs_dir``, report ``out``) are
relative to the working directory. Every stage is idempotent: prepared data comes from the
cache, finished runs are reused (``force`` retrains), unfinished runs resume.

A train stage may sweep a grid of overrides; every grid point is run for every experiment and
seed (experiment, then grid point, then seed)::

    [[stages]]
    kind = "train"
    exp = ["../conf/exp/ml100k-mf.toml"]
    seeds = [0, 1, 2]
    grid = { "data.noise.ratio" = [0.0, 0.1, 0.2] }

    [[stages]]
    kind = "report"
    style = "denoise"      # method × noise-ratio tables (see recsys.report.denoise)
    out = "reports/denoise"
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from recsys import api
from recsys.config import StrictModel, read_toml, validate
from recsys.errors import ConfigError
from recsys.experiment import load_data_config, load_experiment
from recsys.report.build import ReportPaths
from recsys.report.compare import build_compare_report
from recsys.report.denoise import build_denoise_report
from recsys.report.multitask import build_multitask_report
from recsys.report.standard import build_report

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
    data: str | None = None
    """A data config (relative to the pipeline file) that replaces every experiment's data."""
    grid: dict[str, Annotated[list[Any], Field(min_length=1)]] = Field(default_factory=dict)
    """Dotted config key → values (TOML values, as ``--set`` takes them); the cartesian product
    is run for every experiment and seed. Empty: one point with no overrides."""
    ablate_modalities: bool = False
    """Also run every multimodal experiment once per modality with that modality dropped
    (``model.modalities`` = the others; the run is named ``<name>-no-<modality>``)."""


class RecboleStage(StrictModel):
    """RecBole models trained on an experiment's split, imported as runs
    (:func:`recsys.baselines.recbole_run.run_recbole`)."""

    kind: Literal["recbole"]
    exp: str
    """The experiment supplying data, split, evaluation and training settings."""
    models: list[str] = Field(min_length=1)
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Model name → its RecBole hyperparameters."""
    epochs: int | None = None
    seeds: list[int] | None = None
    sets: list[str] = Field(default_factory=list)
    required: bool = False
    """Without RecBole installed (it needs Python < 3.12): fail (True) or skip with a warning."""


class ReportStage(StrictModel):
    kind: Literal["report"]
    out: str
    title: str = "recsys report"
    baseline: str | None = None
    """``standard``: experiment name of the baseline run (default: the first run).
    ``denoise``: the baseline method label (default ``"BPR"``)."""
    style: Literal["standard", "denoise", "compare", "multitask"] = "standard"
    runs: Literal["all", "since_last_report"] = "all"
    """Which of the pipeline's runs the report covers: all so far, or those of the stages
    after the previous report (one report per dataset in one pipeline)."""
    """``standard``: runs × metrics@K; ``denoise``: methods × noise ratio, means over seeds;
    ``compare``: experiments × metrics, means over seeds, paired tests against ``baseline``.
    ``multitask``: per-task AUC/GAUC/LogLoss and paired AUC tests against ``baseline``
    (:mod:`recsys.report.multitask`)."""


Stage = Annotated[
    PrepareStage | TrainStage | RecboleStage | ReportStage, Field(discriminator="kind")
]


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
    reported = 0  # out.runs[:reported] were trained before the previous report stage
    for i, stage in enumerate(cfg.stages):
        log.info("stage %d/%d: %s", i + 1, len(cfg.stages), stage.kind)
        if isinstance(stage, PrepareStage):
            data_cfg, data_dir = load_data_config(base / stage.data, [*stage.sets])
            prepared, _ = api.prepare_data(data_cfg, data_dir)
            log.info("data %s: %s", "cache hit" if prepared.cache_hit else "prepared", prepared.dir)
        elif isinstance(stage, TrainStage):
            for exp_path, extra in train_overrides(stage, sets):
                data = base / stage.data if stage.data is not None else None
                exp = load_experiment(base / exp_path, extra, data=data)
                out.runs.append(_train_or_reuse(exp, cfg.runs_dir, force, progress))
                if stage.ablate_modalities:
                    for ablation in modality_ablations(exp):
                        variant = load_experiment(base / exp_path, [*extra, *ablation], data=data)
                        out.runs.append(_train_or_reuse(variant, cfg.runs_dir, force, progress))
        elif isinstance(stage, RecboleStage):
            out.runs += _recbole(stage, base, sets, cfg.runs_dir, force)
        else:
            runs = out.runs if stage.runs == "all" else out.runs[reported:]
            if not runs:
                raise ConfigError(f"{path}: stage {i + 1} (report): no runs to report on")
            out.reports.append(_report(stage, runs))
            reported = len(out.runs)
    return out


def _recbole(
    stage: RecboleStage, base: Path, sets: Sequence[str], runs_dir: str, force: bool
) -> list[api.TrainedRun]:
    from recsys.baselines.recbole_run import recbole_available, run_recbole

    if not recbole_available():
        if stage.required:
            from recsys.baselines.recbole_run import require_recbole

            require_recbole()
        log.warning("recbole stage skipped: RecBole is not installed (it needs Python < 3.12)")
        return []
    runs = []
    for model in stage.models:
        seeds: list[int | None] = list(stage.seeds) if stage.seeds else [None]
        for seed in seeds:
            extra = [*stage.sets, *sets, *([f"seed={seed}"] if seed is not None else [])]
            try:
                path = run_recbole(
                    base / stage.exp,
                    model,
                    stage.params.get(model, {}),
                    epochs=stage.epochs,
                    runs_dir=runs_dir,
                    sets=extra,
                    force=force,
                )
            except api.AlreadyDone as done:
                log.info("reusing finished run %s", done.run_dir)
                path = done.run_dir
            runs.append(api.TrainedRun(path))
    return runs


def modality_ablations(exp: api.Experiment) -> list[list[str]]:
    """Overrides that drop one modality at a time from a multimodal experiment.

    The modalities are the model's ``modalities`` setting, or every modality of the data when
    it is empty. Experiments whose model takes no modalities, or uses only one, get none.
    """
    settings = exp.model.cfg.model_dump()
    if "modalities" not in settings:
        return []
    names = list(settings["modalities"]) or list(exp.cfg.data.features)
    if len(names) < 2:
        return []
    out = []
    for name in names:
        rest = [n for n in names if n != name]
        weights = list(settings.get("modality_weights") or [])
        sets = [
            f"model.modalities={toml_value(rest)}",
            f"name={toml_value(f'{exp.cfg.name}-no-{name}')}",
        ]
        if weights:
            kept = [w for n, w in zip(names, weights, strict=True) if n != name]
            sets.append(f"model.modality_weights={toml_value(kept)}")
        out.append(sets)
    return out


def train_overrides(stage: TrainStage, sets: Sequence[str] = ()) -> list[tuple[str, list[str]]]:
    """``(experiment path, overrides)`` for every run of ``stage``, in run order.

    Order: for each experiment, for each grid point, for each seed. Overrides apply in the
    order stage ``sets``, grid point, command-line ``sets``, ``seed=<seed>`` (later wins).
    """
    seeds: list[int | None] = list(stage.seeds) if stage.seeds else [None]
    out = []
    for exp_path in stage.exp:
        for point in grid_points(stage.grid):
            for seed in seeds:
                seed_set = [f"seed={seed}"] if seed is not None else []
                out.append((exp_path, [*stage.sets, *point, *sets, *seed_set]))
    return out


_KEY = re.compile(r"[^.=\s]+(\.[^.=\s]+)*")


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[list[str]]:
    """The cartesian product of ``grid`` as lists of ``key=value`` overrides.

    Keys vary in the order given, the last key fastest. Each value is written as TOML so that
    :func:`recsys.config.apply_overrides` reads back exactly the value given (strings are
    always quoted, so ``"true"`` stays a string). An empty grid is one point with no overrides.

    Raises:
        ConfigError: a key that is not a dotted config key, or a key with no values.
    """
    for key, values in grid.items():
        if not _KEY.fullmatch(key):
            raise ConfigError(f"train stage grid: {key!r} is not a dotted config key (a.b.c)")
        if len(values) == 0:
            raise ConfigError(f"train stage grid: key {key!r} has no values")
    columns = [[f"{key}={toml_value(v)}" for v in values] for key, values in grid.items()]
    return [list(point) for point in itertools.product(*columns)]


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def toml_value(value: Any) -> str:
    """``value`` as an inline TOML value (the inverse of :func:`recsys.config.parse_value`).

    Supports booleans, integers, floats (``inf``/``nan`` included), strings, dates and times,
    lists and tables (as inline tables).

    Raises:
        ConfigError: a value TOML cannot express (e.g. None).
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Mapping):
        items = (f"{_toml_key(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise ConfigError(f"train stage grid: cannot write {value!r} as a TOML value")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _report(stage: ReportStage, trained: list[api.TrainedRun]) -> ReportPaths:
    runs = list(dict.fromkeys(r.dir for r in trained))  # a grid point may repeat a run
    if stage.style == "denoise":
        return build_denoise_report(
            runs, Path(stage.out), baseline=stage.baseline or "BPR", title=stage.title
        )
    if stage.style == "multitask":
        return build_multitask_report(
            runs, Path(stage.out), baseline=stage.baseline, title=stage.title
        )
    if stage.style == "compare":
        return build_compare_report(
            runs, Path(stage.out), baseline=stage.baseline, title=stage.title
        )
    return build_report(runs, Path(stage.out), baseline=stage.baseline, title=stage.title)


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
