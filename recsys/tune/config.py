"""Tuning configs (conf/tune/*.toml): the search space, objective, sampler, pruner, retraining.

A parameter is a dotted key into the experiment config (``train.lr``, ``model.layers``,
``losses.0.reg_weight``); its value in a trial replaces the experiment's. Example::

    name = "ml100k-lightgcn"
    experiment = "../exp/ml100k-lightgcn.toml"
    n_trials = 30
    metric = "ndcg@20"                 # validation metric (maximised; logloss is minimised)

    [sampler]                          # every setting pinned: TPE defaults changed in Optuna 5
    name = "tpe"
    seed = 0

    [pruner]
    name = "median"

    [params."train.lr"]
    type = "float"
    low = 1e-4
    high = 1e-1
    log = true

    [params."train.weight_decay"]      # only sampled when train.optimizer is "adamw"
    type = "categorical"
    choices = [0.0, 1e-6, 1e-4]
    when = { "train.optimizer" = ["adamw"] }
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from recsys.config import StrictModel, apply_overrides, read_toml, validate
from recsys.errors import ConfigError

Scalar = bool | int | float | str


class FloatParam(StrictModel):
    """A float in ``[low, high]``, optionally on a log scale or a grid of ``step``."""

    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = None
    when: dict[str, list[Scalar]] = Field(default_factory=dict)
    """Sample only when each named earlier parameter took one of the listed values."""

    @model_validator(mode="after")
    def _range(self) -> FloatParam:
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low > self.high:
            raise ValueError(f"empty range: low = {self.low} > high = {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"log scale needs low > 0 (got low = {self.low})")
        if self.log and self.step is not None:
            raise ValueError("step and log cannot be combined")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"step must be > 0 (got {self.step})")
        return self


class IntParam(StrictModel):
    """An integer in ``[low, high]`` (both included), optionally on a log scale."""

    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(default=1, ge=1)
    when: dict[str, list[Scalar]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _range(self) -> IntParam:
        if self.low > self.high:
            raise ValueError(f"empty range: low = {self.low} > high = {self.high}")
        if self.log and (self.low < 1 or self.step != 1):
            raise ValueError("log scale needs low >= 1 and step = 1")
        return self


class CategoricalParam(StrictModel):
    """One of ``choices`` (numbers, strings or booleans)."""

    type: Literal["categorical"]
    choices: list[Scalar] = Field(min_length=1)
    when: dict[str, list[Scalar]] = Field(default_factory=dict)


Param = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]


class SamplerConfig(StrictModel):
    """Optuna sampler, every setting pinned (Optuna 5 changed TPE's defaults)."""

    name: Literal["tpe", "random", "nsga2"] = "tpe"
    seed: int = 0
    n_startup_trials: int = Field(default=10, ge=0)
    """TPE: random trials before the model is used."""
    n_ei_candidates: int = Field(default=24, ge=1)
    multivariate: bool = True
    """TPE: model the parameters jointly (needed for conditional spaces to be modelled well)."""
    group: bool = True
    """TPE: with ``multivariate``, model each conditional subspace separately."""
    constant_liar: bool = True
    """TPE: treat running trials as bad, so parallel workers spread out."""
    population_size: int = Field(default=50, ge=2)
    """NSGA-II only."""


class PrunerConfig(StrictModel):
    """Pruning on the per-epoch validation metric (single-objective studies only)."""

    name: Literal["median", "hyperband", "none"] = "median"
    n_startup_trials: int = Field(default=5, ge=0)
    """median: never prune in the first trials."""
    n_warmup_steps: int = Field(default=10, ge=0)
    """median: never prune before this epoch."""
    interval_steps: int = Field(default=1, ge=1)
    min_resource: int = Field(default=5, ge=1)
    """hyperband: epochs before the first rung."""
    reduction_factor: int = Field(default=3, ge=2)


class RetrainConfig(StrictModel):
    """After the search: the chosen configuration with several model seeds, evaluated on test."""

    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    baseline: Literal["experiment", "defaults", "none"] = "experiment"
    """The paired baseline trained with the same seeds: the experiment as written
    (``experiment``), the experiment with every tuned key at its config class's default
    (``defaults``: what a user gets without choosing these values), or none."""


class TuneConfig(StrictModel):
    """One study."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    experiment: str
    """The experiment config (relative to this file)."""
    data: str | None = None
    """Optional data config replacing the experiment's (relative to this file)."""
    set: list[str] = Field(default_factory=list)
    """Fixed ``KEY=VALUE`` overrides applied to every trial (e.g. ``train.epochs=100``)."""
    n_trials: int = Field(default=30, ge=1)
    """Finished (complete or pruned) trials the study reaches, summed over all workers."""
    metric: str = "ndcg@20"
    """Validation metric to optimise (``METRIC@K`` of the experiment's eval config, or
    ``TASK/auc|gauc|logloss`` and ``mean/auc|gauc`` for multi-task experiments)."""
    cost: Literal["none", "params", "train_seconds"] = "none"
    """A second objective to minimise (multi-objective study, Pareto front, no pruning)."""
    sampler: SamplerConfig = SamplerConfig()
    pruner: PrunerConfig | None = None
    """Default: median for single-objective studies, none for multi-objective ones."""
    heartbeat_seconds: int = Field(default=30, ge=1)
    """A running trial whose worker is silent for ``2 x`` this is marked failed."""
    params: dict[str, Param] = Field(min_length=1)
    retrain: RetrainConfig = RetrainConfig()

    @property
    def multi_objective(self) -> bool:
        return self.cost != "none"

    @property
    def pruner_name(self) -> str:
        if self.pruner is None:
            return "none" if self.multi_objective else "median"
        return self.pruner.name

    @model_validator(mode="after")
    def _consistent(self) -> TuneConfig:
        if self.multi_objective and self.pruner is not None and self.pruner.name != "none":
            raise ValueError(
                f"pruner {self.pruner.name!r} with cost = {self.cost!r}: pruning needs a single "
                "objective; set pruner.name = 'none' or cost = 'none'"
            )
        if self.sampler.name == "nsga2" and not self.multi_objective:
            raise ValueError("sampler 'nsga2' is for multi-objective studies (set cost)")
        names = list(self.params)
        for i, (name, p) in enumerate(self.params.items()):
            for other, values in p.when.items():
                if other not in names[:i]:
                    raise ValueError(
                        f"params.{name}.when names {other!r}, which is not an earlier parameter "
                        f"(earlier: {names[:i]})"
                    )
                if not values:
                    raise ValueError(f"params.{name}.when.{other}: empty list of values")
        return self


def load_tune_config(
    path: str | Path, sets: tuple[str, ...] | list[str] = ()
) -> tuple[TuneConfig, Path]:
    """Load conf/tune/*.toml with overrides; return it and its directory."""
    path = Path(path)
    raw = apply_overrides(read_toml(path), sets)
    cfg = validate(TuneConfig, raw, str(path))
    if not cfg.metric.partition("@")[2].isdigit() and "/" not in cfg.metric:
        raise ConfigError(
            f"{path}: key 'metric' = {cfg.metric!r}: expected METRIC@K, or TASK/METRIC for "
            "multi-task experiments"
        )
    return cfg, path.parent.resolve()


def space_summary(params: dict[str, Any]) -> dict[str, str]:
    """One human-readable line per parameter (for logs and the report)."""
    out = {}
    for name, p in params.items():
        if isinstance(p, CategoricalParam):
            text = "{" + ", ".join(map(str, p.choices)) + "}"
        else:
            text = f"[{p.low}, {p.high}]" + (" log" if p.log else "")
            if p.step not in (None, 1) or (isinstance(p, FloatParam) and p.step is not None):
                text += f" step {p.step}"
        if p.when:
            text += " when " + ", ".join(f"{k} in {v}" for k, v in p.when.items())
        out[name] = text
    return out
