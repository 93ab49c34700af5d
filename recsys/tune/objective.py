"""One trial: the space's values applied to the experiment, trained as an ordinary run (test
split left unseen), its validation metric reported every epoch so the pruner can stop it."""

from __future__ import annotations

import logging
import os
import platform
from dataclasses import dataclass
from typing import Any, Literal

import optuna

from recsys import api
from recsys.errors import RecsysError
from recsys.experiment import build_experiment
from recsys.train.early_stop import LOWER_IS_BETTER, metric_name
from recsys.tune.context import TuneContext
from recsys.tune.space import suggest, with_values

log = logging.getLogger(__name__)


def directions(ctx: TuneContext) -> list[Literal["minimize", "maximize"]]:
    """The study's directions: the metric's, then ``minimize`` for a cost."""
    metric: Literal["minimize", "maximize"] = (
        "minimize" if metric_name(ctx.cfg.metric) in LOWER_IS_BETTER else "maximize"
    )
    return [metric, "minimize"] if ctx.cfg.multi_objective else [metric]


@dataclass
class PruningHook:
    """A training-loop hook: reports ``valid/<metric>`` at each validated epoch and stops
    training when the pruner says so (the objective then raises ``TrialPruned``)."""

    trial: optuna.Trial
    key: str
    pruned_at: int | None = None

    def __call__(self, epoch: int, row: dict[str, float]) -> bool:
        if self.key not in row:
            return False
        self.trial.report(float(row[self.key]), epoch)
        if self.trial.should_prune():
            self.pruned_at = epoch
            return True
        return False


def trial_run_name(ctx: TuneContext, number: int) -> str:
    return f"{ctx.cfg.name}-t{number:04d}"


class Objective:
    """Callable by ``study.optimize``; returns the validation metric (and the cost)."""

    def __init__(self, ctx: TuneContext) -> None:
        self.ctx = ctx

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        ctx, cfg = self.ctx, self.ctx.cfg
        trial.set_user_attr("worker", f"{platform.node()}:{os.getpid()}")
        values = suggest(trial, cfg.params)
        raw = with_values(ctx.raw, values, name=trial_run_name(ctx, trial.number))
        exp = build_experiment(raw, ctx.source, ctx.exp_base_dir)
        hook = PruningHook(trial, f"valid/{cfg.metric}") if ctx.pruning else None
        try:
            run = api.train(
                exp, runs_dir=ctx.runs_dir, force=True, hooks=[hook] if hook else [], test=False
            )
        except RecsysError as e:
            trial.set_user_attr("error", str(e))
            log.warning("trial %d failed: %s", trial.number, e)
            raise
        results = run.results
        n_params = sum(p.numel() for p in run.model().parameters())
        attrs: dict[str, Any] = {
            "run": run.dir.name,
            "epochs_run": results["epochs_run"],
            "best_epoch": results["best_epoch"],
            "train_seconds": results["train_seconds"],
            "n_params": int(n_params),
        }
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        if hook is not None and hook.pruned_at is not None:
            trial.set_user_attr("pruned_at", hook.pruned_at)
            raise optuna.TrialPruned(f"pruned at epoch {hook.pruned_at}")
        value = float(results["valid"][cfg.metric])
        if not cfg.multi_objective:
            return value
        cost = float(n_params) if cfg.cost == "params" else float(results["train_seconds"])
        return value, cost
