"""Experiment configs (conf/exp/*.toml): data + model + losses + sampler + train + eval + seed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from recsys.config import (
    StrictModel,
    apply_overrides,
    component_config,
    dump,
    read_toml,
    validate,
)
from recsys.data.config import DataConfig
from recsys.errors import ConfigError
from recsys.eval.config import EvalConfig
from recsys.train.config import TrainConfig


class ExpConfig(StrictModel):
    """One experiment. ``model``, ``losses`` and ``sampler`` are ``{name = ..., **params}``."""

    name: str
    data: DataConfig = DataConfig()
    seed: int = 0
    """The model seed (initialisation, negative sampling). The split seed is ``data.split.seed``."""
    model: dict[str, Any]
    losses: list[dict[str, Any]] = Field(default_factory=lambda: [{"name": "bpr"}])
    sampler: dict[str, Any] = Field(default_factory=lambda: {"name": "uniform"})
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()


@dataclass(frozen=True)
class Component:
    """A resolved registry entry: its name and validated config."""

    name: str
    cfg: BaseModel

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, **dump(self.cfg)}


@dataclass(frozen=True)
class Experiment:
    """A fully validated experiment, ready to run."""

    cfg: ExpConfig
    model: Component
    losses: tuple[Component, ...]
    sampler: Component
    source: str
    base_dir: Path
    """Directory that relative data paths resolve against."""

    def resolved(self) -> dict[str, Any]:
        """The resolved config as saved with the run (components with all defaults filled)."""
        out = dump(self.cfg)
        out["model"] = self.model.as_dict()
        out["losses"] = [c.as_dict() for c in self.losses]
        out["sampler"] = self.sampler.as_dict()
        return out


def load_data_config(
    path: str | Path, sets: tuple[str, ...] | list[str] = ()
) -> tuple[DataConfig, Path]:
    """Load conf/data/*.toml with overrides; return the config and its directory."""
    path = Path(path)
    raw = apply_overrides(read_toml(path), sets)
    return validate(DataConfig, raw, str(path)), path.parent.resolve()


def load_experiment(
    path: str | Path, sets: tuple[str, ...] | list[str] = (), data: str | Path | None = None
) -> Experiment:
    """Load conf/exp/*.toml strictly, with ``--set`` overrides.

    ``data`` may be an inline table or a path to a data config (relative to this file);
    overrides such as ``data.split.seed=1`` apply after the data file is inlined. A ``data``
    argument (a data config path) replaces the experiment's own data.
    """
    raw, source, base_dir = read_experiment(path, data)
    return build_experiment(apply_overrides(raw, sets), source, base_dir)


def read_experiment(
    path: str | Path, data: str | Path | None = None
) -> tuple[dict[str, Any], str, Path]:
    """The raw experiment dict (its data config inlined), its source and its base directory."""
    path = Path(path)
    raw = read_toml(path)
    base_dir = path.parent.resolve()
    if data is not None:
        raw["data"] = str(Path(data).resolve())
    data = raw.get("data")
    if isinstance(data, str):
        data_path = (base_dir / data).resolve()
        raw["data"] = read_toml(data_path)
        base_dir = data_path.parent
    return raw, str(path), base_dir


def build_experiment(raw: dict[str, Any], source: str, base_dir: Path) -> Experiment:
    """Validate a raw experiment dict (every component against its registry)."""
    from recsys.losses import LOSSES
    from recsys.models import MODELS
    from recsys.samplers import SAMPLERS

    cfg = validate(ExpConfig, raw, source)
    model = Component(*component_config(MODELS, cfg.model, source, "model"))
    task_model = bool(getattr(MODELS[model.name], "task_model", False))
    if task_model:  # pointwise multi-task training unless the file says otherwise
        defaults: dict[str, Any] = {}
        if "sampler" not in raw:
            defaults["sampler"] = {"name": "task-rows"}
        if "losses" not in raw:
            defaults["losses"] = [{"name": "task-bce"}]
        cfg = cfg.model_copy(update=defaults)
    if not cfg.losses and MODELS[model.name].trainable:
        raise ConfigError(f"{source}: key 'losses' is empty; a trainable model needs a loss")
    losses = tuple(
        Component(*component_config(LOSSES, raw_loss, source, f"losses.{i}"))
        for i, raw_loss in enumerate(cfg.losses)
    )
    sampler = Component(*component_config(SAMPLERS, cfg.sampler, source, "sampler"))
    _check_task_parts(cfg, model.name, task_model, source)
    _check_monitor(cfg, source)
    return Experiment(cfg, model, losses, sampler, source, base_dir)


def task_names(cfg: DataConfig) -> tuple[str, ...]:
    """The task names a data config's ``[multitask]`` table defines (empty without one)."""
    return () if cfg.multitask is None else cfg.multitask.tasks


def _check_task_parts(cfg: ExpConfig, model: str, task_model: bool, source: str) -> None:
    """Multi-task models need multi-task data, the task sampler and task losses; pairwise
    models need interactions."""
    from recsys.losses import LOSSES
    from recsys.samplers import SAMPLERS

    mt = cfg.data.multitask
    if task_model and mt is None:
        raise ConfigError(
            f"{source}: model {model!r} is a multi-task model; its data config needs a "
            "[multitask.ratings] or [multitask.table] table"
        )
    if not task_model and mt is not None and mt.table is not None:
        raise ConfigError(
            f"{source}: model {model!r} ranks items, but data {cfg.data.name!r} is a table of "
            "samples without users and items; use a multi-task model"
        )
    parts = [("sampler", cfg.sampler["name"], SAMPLERS)]
    parts += [(f"losses.{i}", loss["name"], LOSSES) for i, loss in enumerate(cfg.losses)]
    for key, name, registry in parts:
        if bool(getattr(registry[name], "task_model", False)) != task_model:
            need = "multi-task samples" if not task_model else "(user, item) pairs"
            raise ConfigError(
                f"{source}: key {key!r} = {name!r} does not fit model {model!r}: it works on "
                f"{need}; multi-task models use sampler 'task-rows' and loss 'task-bce'"
            )


def _check_monitor(cfg: ExpConfig, source: str) -> None:
    tasks = task_names(cfg.data)
    task, slash, name = cfg.train.monitor.partition("/")
    if tasks and not slash and cfg.data.multitask.table is not None:  # type: ignore[union-attr]
        raise ConfigError(
            f"{source}: key 'train.monitor' = {cfg.train.monitor!r}: data {cfg.data.name!r} "
            f"has no top-N ranking; monitor TASK/auc or TASK/gauc, TASK one of {list(tasks)}"
        )
    if tasks and slash:
        if task not in (*tasks, "mean") or name not in ("auc", "gauc"):
            raise ConfigError(
                f"{source}: key 'train.monitor' = {cfg.train.monitor!r}: expected TASK/auc or "
                f"TASK/gauc with TASK one of {list(tasks)} or 'mean' (the mean over tasks), or "
                "METRIC@K for top-N"
            )
        return
    metric, sep, k = cfg.train.monitor.partition("@")
    if not sep or not k.isdigit() or metric not in cfg.eval.metrics:
        raise ConfigError(
            f"{source}: key 'train.monitor' = {cfg.train.monitor!r}: expected METRIC@K with "
            f"METRIC one of {list(cfg.eval.metrics)}"
        )
    if int(k) not in cfg.eval.ks:
        raise ConfigError(
            f"{source}: key 'train.monitor' = {cfg.train.monitor!r}: K={k} is not in "
            f"eval.ks = {list(cfg.eval.ks)}"
        )
