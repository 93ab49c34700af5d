"""Turn a search space into trial values and experiment configs, and check it against the
experiment before any trial runs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Protocol

from recsys.config import set_path
from recsys.errors import ConfigError, RecsysError
from recsys.experiment import Experiment, build_experiment
from recsys.tune.config import CategoricalParam, FloatParam, IntParam, Param


class Suggests(Protocol):
    """The part of ``optuna.Trial`` the space uses (the models never import optuna)."""

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float: ...

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int: ...

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


def suggest(trial: Suggests, params: dict[str, Param]) -> dict[str, Any]:
    """Values for one trial, in the file's order; a parameter whose ``when`` is not met is
    left out (the experiment keeps its own value)."""
    chosen: dict[str, Any] = {}
    for name, p in params.items():
        if not active(p, chosen):
            continue
        if isinstance(p, FloatParam):
            chosen[name] = trial.suggest_float(name, p.low, p.high, step=p.step, log=p.log)
        elif isinstance(p, IntParam):
            chosen[name] = trial.suggest_int(name, p.low, p.high, step=p.step, log=p.log)
        else:
            chosen[name] = trial.suggest_categorical(name, list(p.choices))
    return chosen


def active(p: Param, chosen: dict[str, Any]) -> bool:
    """Whether every condition of ``p`` holds for the values chosen so far."""
    return all(k in chosen and chosen[k] in values for k, values in p.when.items())


def with_values(
    raw: dict[str, Any], values: dict[str, Any], *, name: str, seed: int | None = None
) -> dict[str, Any]:
    """A copy of the raw experiment with the trial's values, its run name and model seed."""
    out = copy.deepcopy(raw)
    for key, value in values.items():
        set_path(out, key, value, f"parameter {key!r}")
    out["name"] = name
    if seed is not None:
        out["seed"] = seed
    return out


def without_keys(raw: dict[str, Any], keys: list[str], *, name: str) -> dict[str, Any]:
    """A copy of the raw experiment with ``keys`` removed, so their config defaults apply."""
    out = copy.deepcopy(raw)
    for key in keys:
        *parents, last = key.split(".")
        node: Any = out
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.get(part, {})
        if isinstance(node, dict):
            node.pop(last, None)
    out["name"] = name
    return out


def check_space(
    params: dict[str, Param], raw: dict[str, Any], source: str, base_dir: Path
) -> Experiment:
    """Validate every parameter against the experiment: each name must be a key of the
    resolved experiment (model, losses, sampler, train, eval, data), and each extreme value must
    pass the experiment's own validation. Returns the untuned experiment.

    Raises:
        ConfigError: naming the parameter and what is wrong with it.
    """
    base = build_experiment(raw, source, base_dir)
    resolved = base.resolved()
    for name, p in params.items():
        if not _has_path(resolved, name.split(".")):
            raise ConfigError(
                f"{source}: unknown parameter {name!r}: the experiment has no such key "
                f"(top-level keys: {sorted(resolved)}; e.g. 'train.lr', 'model.dim', "
                "'losses.0.reg_weight')"
            )
        for value in _extremes(p):
            try:
                build_experiment(
                    with_values(raw, {name: value}, name=base.cfg.name), source, base_dir
                )
            except RecsysError as e:
                raise ConfigError(
                    f"{source}: parameter {name!r} = {value!r} is not a valid value: {e}"
                ) from None
    return base


def _has_path(node: Any, parts: list[str]) -> bool:
    for part in parts:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def _extremes(p: Param) -> list[Any]:
    if isinstance(p, CategoricalParam):
        return list(p.choices)
    return [p.low, p.high]
