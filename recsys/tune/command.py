"""``recsys tune CONF``: search (resuming a stored study), retrain the chosen trial with
several seeds, write the study report."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    import optuna

console = Console()


def tune(
    conf: Annotated[Path, typer.Argument(help="Tune config, e.g. conf/tune/ml100k-lightgcn.toml.")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="Override a tune-config key: KEY=VALUE, repeatable."),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            help="Study database URL, e.g. postgresql+psycopg2://user:pass@host/db "
            "(default: sqlite file runs/tune/<name>.db)."
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option(help="Worker processes on this machine (split the CPU threads).")
    ] = 1,
    n_trials: Annotated[
        int | None, typer.Option(help="The study's total of finished trials (all workers).")
    ] = None,
    search: Annotated[
        bool, typer.Option(help="Run trials until the total is reached (resumes).")
    ] = True,
    retrain: Annotated[
        bool,
        typer.Option(help="Retrain the chosen trial with the retrain seeds; write the report."),
    ] = True,
    trial: Annotated[
        int | None,
        typer.Option(help="Retrain this trial instead of the best (e.g. a Pareto point)."),
    ] = None,
    runs_dir: Annotated[Path, typer.Option(help="Directory holding run directories.")] = Path(
        "runs"
    ),
    out: Annotated[
        Path | None, typer.Option(help="Report directory (default reports/tune/<name>).")
    ] = None,
) -> None:
    """Tune an experiment with Optuna; every trial is a run in runs/."""
    from recsys.tune.context import load_context
    from recsys.tune.report import write_tune_report
    from recsys.tune.retrain import choose_trial
    from recsys.tune.retrain import retrain as retrain_trial
    from recsys.tune.storage import default_url, shown
    from recsys.tune.study import open_study, run_search

    quiet_epochs()
    sets = list(set_ or []) + ([f"n_trials={n_trials}"] if n_trials is not None else [])
    ctx = load_context(conf, sets, runs_dir)
    url = storage or default_url(runs_dir, ctx.cfg.name)
    console.print(f"study {ctx.cfg.name!r} in {shown(url)}")
    shared = storage is not None
    study = run_search(ctx, url, workers, shared) if search else open_study(ctx, url)
    _print_study(study)
    if not retrain:
        return
    chosen = choose_trial(study, trial)
    done = retrain_trial(ctx, chosen, chosen=trial is not None)
    paths = write_tune_report(ctx, study, url, done, out or Path("reports") / "tune" / ctx.cfg.name)
    console.print(f"report: {paths.html}\n        {paths.markdown}")


def quiet_epochs() -> None:
    """Trials log one line each (Optuna's); the loop's per-epoch lines only with -v."""
    loop_log = logging.getLogger("recsys.train.loop")
    if loop_log.getEffectiveLevel() >= logging.INFO:
        loop_log.setLevel(logging.WARNING)


def _print_study(study: optuna.Study) -> None:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    states = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    console.print(", ".join(f"{n} {s}" for s, n in states.items() if n) or "no trials")
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        return
    table = Table(title="best trials" if len(study.directions) > 1 else "best trial")
    for col in ("trial", "values", "parameters"):
        table.add_column(col)
    best = study.best_trials if len(study.directions) > 1 else [study.best_trial]
    for t in best:
        table.add_row(
            str(t.number),
            ", ".join(f"{v:.4g}" for v in t.values),
            ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items()
            ),
        )
    console.print(table)
