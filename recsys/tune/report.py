"""The study report: the retrained configuration against the untuned one (the standard
report's tables, paired tests, cohorts and protocol), plus the study itself: best parameters,
optimisation history, parameter importances and, for two objectives, the Pareto front."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import optuna
from optuna.trial import FrozenTrial, TrialState

from recsys.errors import RecsysError
from recsys.report.build import ReportPaths
from recsys.report.compare import Appendix
from recsys.report.denoise_render import TableBlock
from recsys.report.plots import _png
from recsys.report.standard import build_report
from recsys.tune.config import space_summary
from recsys.tune.context import TuneContext
from recsys.tune.objective import directions
from recsys.tune.retrain import Retrained
from recsys.tune.storage import shown


def write_tune_report(
    ctx: TuneContext, study: optuna.Study, url: str, retrained: Retrained, out_dir: Path
) -> ReportPaths:
    """Write report.html / report.md / results.csv and the figures to ``out_dir``."""
    runs = retrained.runs + retrained.baseline_runs
    return build_report(
        runs,
        out_dir,
        baseline=retrained.baseline_method or retrained.method,
        title=f"Tuning study {ctx.cfg.name}",
        appendix=study_appendix(ctx, study, url, retrained.trial),
    )


def study_appendix_for(conf: Path, url: str | None, runs_dir: Path) -> Appendix:
    """The study of tune config ``conf`` (its default storage under ``runs_dir`` unless ``url``)
    as a report appendix, with its best trial (or best Pareto point) as the chosen one."""
    from recsys.tune.context import load_context
    from recsys.tune.retrain import choose_trial
    from recsys.tune.storage import default_url, open_storage
    from recsys.tune.study import open_study

    ctx = load_context(conf, [], runs_dir)
    url = url or default_url(runs_dir, ctx.cfg.name)
    storage = open_storage(url, ctx.cfg.heartbeat_seconds)
    if ctx.cfg.name not in optuna.get_all_study_names(storage):
        raise RecsysError(f"{conf}: no study {ctx.cfg.name!r} in {shown(url)} (run recsys tune)")
    study = open_study(ctx, url)
    return study_appendix(ctx, study, url, choose_trial(study))


def study_appendix(
    ctx: TuneContext, study: optuna.Study, url: str, chosen: FrozenTrial
) -> Appendix:
    """The study's tables and figures."""
    trials = study.get_trials(deepcopy=False)
    blocks = [
        _summary_block(ctx, study, url, trials, chosen),
        _params_block(ctx, chosen),
    ]
    figures = {"tune_history.png": history_png(ctx, trials)}
    importances = param_importances(study)
    if importances:
        blocks.append(
            TableBlock(
                "Parameter importances (fANOVA on the first objective, seed 0)",
                ["parameter", "importance"],
                [[k, f"{v:.3f}"] for k, v in importances.items()],
            )
        )
        figures["tune_importances.png"] = importances_png(importances)
    if ctx.cfg.multi_objective:
        blocks.append(_pareto_block(ctx, study))
        figures["tune_pareto.png"] = pareto_png(ctx, study)
    blocks.append(_trials_block(ctx, trials))
    intro = (
        f"Study {ctx.cfg.name!r} ({len(trials)} trials in {shown(url)}): the chosen trial "
        f"{chosen.number} retrained with model seeds {ctx.cfg.retrain.seeds}"
        + {
            "experiment": " beside the experiment as written.",
            "defaults": " beside the experiment with the tuned keys at their defaults.",
            "none": ".",
        }[ctx.cfg.retrain.baseline],
        f"Browse the study: pip install optuna-dashboard; optuna-dashboard '{shown(url)}'",
    )
    return Appendix(intro=intro, sections=(("Tuning study", tuple(blocks)),), figures=figures)


def param_importances(study: optuna.Study) -> dict[str, float]:
    """fANOVA importances on the first objective (empty with fewer than 2 complete trials or
    no parameter that varied)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    varied = {
        name
        for name in {k for t in complete for k in t.params}
        if len({t.params.get(name) for t in complete if name in t.params}) > 1
    }
    if len(complete) < 2 or not varied:
        return {}
    return optuna.importance.get_param_importances(
        study,
        evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0),
        params=sorted(varied),
        target=lambda t: float(t.values[0]),
    )


def _summary_block(
    ctx: TuneContext,
    study: optuna.Study,
    url: str,
    trials: list[FrozenTrial],
    chosen: FrozenTrial,
) -> TableBlock:
    states = {s: sum(t.state == s for t in trials) for s in TrialState}
    epochs = sum(int(t.user_attrs.get("epochs_run", 0)) for t in trials)
    s = ctx.cfg.sampler
    rows = [
        ["storage", shown(url)],
        [
            "objective",
            f"validation {ctx.cfg.metric} ({study.directions[0].name.lower()})"
            + (f"; cost {ctx.cfg.cost} (minimize)" if ctx.cfg.multi_objective else ""),
        ],
        [
            "sampler",
            f"{s.name} seed {s.seed}, startup {s.n_startup_trials}, multivariate "
            f"{s.multivariate}, group {s.group}, constant liar {s.constant_liar}",
        ],
        ["pruner", ctx.cfg.pruner_name],
        ["trials", ", ".join(f"{n} {st.name.lower()}" for st, n in states.items() if n)],
        ["epochs trained (all trials)", str(epochs)],
        ["chosen trial", f"{chosen.number}: " + ", ".join(f"{v:.4f}" for v in chosen.values)],
    ]
    return TableBlock("Study", ["", ""], rows)


def _params_block(ctx: TuneContext, chosen: FrozenTrial) -> TableBlock:
    space = space_summary(ctx.cfg.params)
    rows = [
        [name, _fmt(chosen.params[name]) if name in chosen.params else "(inactive)", text]
        for name, text in space.items()
    ]
    return TableBlock(
        f"Chosen parameters (trial {chosen.number})", ["parameter", "value", "space"], rows
    )


def _pareto_block(ctx: TuneContext, study: optuna.Study) -> TableBlock:
    front = sorted(study.best_trials, key=lambda t: t.values[1])
    rows = [
        [
            str(t.number),
            f"{t.values[0]:.4f}",
            _fmt(t.values[1]),
            ", ".join(f"{k}={_fmt(v)}" for k, v in t.params.items()),
        ]
        for t in front
    ]
    return TableBlock(
        "Pareto front", ["trial", f"valid {ctx.cfg.metric}", ctx.cfg.cost, "parameters"], rows
    )


def _trials_block(ctx: TuneContext, trials: list[FrozenTrial]) -> TableBlock:
    rows = []
    for t in trials:
        value = "" if t.values is None else ", ".join(f"{v:.4g}" for v in t.values)
        if t.state == TrialState.PRUNED and t.intermediate_values:
            last = max(t.intermediate_values)
            value = f"{t.intermediate_values[last]:.4g} (epoch {last})"
        rows.append(
            [
                str(t.number),
                t.state.name.lower(),
                value,
                str(t.user_attrs.get("epochs_run", "")),
                ", ".join(f"{k}={_fmt(v)}" for k, v in t.params.items()),
            ]
        )
    return TableBlock(
        "Trials", ["trial", "state", f"valid {ctx.cfg.metric}", "epochs", "parameters"], rows
    )


def history_png(ctx: TuneContext, trials: list[FrozenTrial]) -> bytes:
    """Objective per trial (pruned trials at their last reported value) and the best so far."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
    pruned = [t for t in trials if t.state == TrialState.PRUNED and t.intermediate_values]
    ax.scatter([t.number for t in done], [t.values[0] for t in done], s=18, label="complete")
    if pruned:
        ax.scatter(
            [t.number for t in pruned],
            [t.intermediate_values[max(t.intermediate_values)] for t in pruned],
            s=18,
            marker="x",
            color="grey",
            label="pruned (last value)",
        )
    if done:
        maximize = directions(ctx)[0] == "maximize"
        best, xs, ys = None, [], []
        for t in sorted(done, key=lambda t: t.number):
            v = float(t.values[0])
            best = v if best is None else (max(best, v) if maximize else min(best, v))
            xs.append(t.number)
            ys.append(best)
        ax.step(xs, ys, where="post", color="C1", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"validation {ctx.cfg.metric}")
    ax.legend(fontsize=8)
    return _png(fig)


def importances_png(importances: dict[str, float]) -> bytes:
    fig, ax = plt.subplots(figsize=(6.4, 0.5 + 0.4 * len(importances)))
    names = list(importances)[::-1]
    ax.barh(names, [importances[n] for n in names])
    ax.set_xlabel("importance (fANOVA)")
    return _png(fig)


def pareto_png(ctx: TuneContext, study: optuna.Study) -> bytes:
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    front = {t.number for t in study.best_trials}
    for on_front, color, size in ((False, "grey", 14), (True, "C3", 24)):
        pts = [t for t in done if (t.number in front) == on_front]
        ax.scatter(
            [t.values[1] for t in pts],
            [t.values[0] for t in pts],
            color=color,
            s=size,
            label="Pareto front" if on_front else "other trials",
        )
    ax.set_xlabel(ctx.cfg.cost)
    ax.set_ylabel(f"validation {ctx.cfg.metric}")
    ax.legend(fontsize=8)
    return _png(fig)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
