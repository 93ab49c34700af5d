"""After the search: the chosen trial's configuration (and the untuned experiment, as the
paired baseline) trained with several model seeds and evaluated on test once."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from recsys import api
from recsys.errors import RecsysError
from recsys.experiment import build_experiment
from recsys.tune.context import TuneContext
from recsys.tune.space import with_values, without_keys

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retrained:
    """The chosen trial and the runs trained from it (and from the untuned experiment)."""

    trial: FrozenTrial
    method: str
    runs: list[Path]
    baseline_method: str | None
    baseline_runs: list[Path]


def choose_trial(study: optuna.Study, number: int | None = None) -> FrozenTrial:
    """Trial ``number``, or the best one: the best value (single objective) or the Pareto
    point with the best metric (multi-objective).

    Raises:
        RecsysError: no complete trial, or ``number`` is not a complete trial.
    """
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise RecsysError(f"study {study.study_name!r} has no complete trial to retrain")
    if number is not None:
        found = [t for t in complete if t.number == number]
        if not found:
            raise RecsysError(
                f"study {study.study_name!r}: trial {number} is not a complete trial "
                f"(complete: {[t.number for t in complete][:20]}...)"
            )
        return found[0]
    if len(study.directions) == 1:
        return study.best_trial
    sign = 1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1.0
    return max(study.best_trials, key=lambda t: (sign * float(t.values[0]), -t.number))


def retrain(ctx: TuneContext, trial: FrozenTrial, chosen: bool = False) -> Retrained:
    """Train ``trial``'s values with every ``retrain.seeds`` seed (test evaluated), and with
    ``retrain.baseline`` the untuned experiment too. Finished runs are reused, unfinished ones
    resume.

    The runs are named ``<study>-best`` (or ``<study>-t<N>-retrained`` for a trial the user
    ``chosen``) and ``<study>-default`` (the experiment as written) or ``<study>-defaults``
    (the tuned keys at their config defaults).
    """
    name = ctx.cfg.name
    method = f"{name}-t{trial.number:04d}-retrained" if chosen else f"{name}-best"
    seeds = ctx.cfg.retrain.seeds
    runs = [_train(ctx, ctx.raw, trial.params, method, s) for s in seeds]
    kind = ctx.cfg.retrain.baseline
    if kind == "none":
        return Retrained(trial, method, runs, None, [])
    baseline = f"{name}-default" if kind == "experiment" else f"{name}-defaults"
    raw = (
        ctx.raw
        if kind == "experiment"
        else without_keys(ctx.raw, list(ctx.cfg.params), name=baseline)
    )
    base_runs = [_train(ctx, raw, {}, baseline, s) for s in seeds]
    return Retrained(trial, method, runs, baseline, base_runs)


def _train(
    ctx: TuneContext, raw: dict[str, Any], values: dict[str, Any], name: str, seed: int
) -> Path:
    exp = build_experiment(
        with_values(raw, values, name=name, seed=seed), ctx.source, ctx.exp_base_dir
    )
    try:
        return api.train(exp, runs_dir=ctx.runs_dir).dir
    except api.AlreadyDone as done:
        log.info("reusing finished run %s", done.run_dir)
        return done.run_dir
