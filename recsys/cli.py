"""The ``recsys`` command line: parse → load config → call the Python API → print."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table

from recsys.errors import RecsysError
from recsys.tune.command import tune

app = typer.Typer(
    help="recsys: prepare data, train, evaluate, recommend and report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Prepare and describe datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console()
err = Console(stderr=True)

SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a config key: KEY=VALUE (TOML value), repeatable."),
]
RunsDir = Annotated[Path, typer.Option(help="Directory holding run directories.")]


@app.callback()
def _setup(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Warnings only.")] = False,
) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(
        level=level,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False, show_time=False)],
        force=True,
    )


@data_app.command("prepare")
def data_prepare(
    conf: Annotated[Path, typer.Argument(help="Data config, e.g. conf/data/ml-100k.toml.")],
    set_: SetOpt = None,
    force: Annotated[bool, typer.Option(help="Rebuild even when cached.")] = False,
) -> None:
    """Read, clean and split a dataset into the content-hashed cache (and build its item
    features when the config declares any)."""
    from recsys import api
    from recsys.experiment import load_data_config

    cfg, base = load_data_config(conf, set_ or [])
    prepared, spec = api.prepare_data(cfg, base, force=force)
    console.print(f"{'cache hit' if prepared.cache_hit else 'prepared'}: {prepared.dir}")
    _print_card(spec.card)
    features = spec.card.get("features")
    if isinstance(features, dict) and features:
        _print_features(features)


@data_app.command("describe")
def data_describe(
    conf: Annotated[Path, typer.Argument(help="Data config.")],
    set_: SetOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole data card.")] = False,
) -> None:
    """Print the data card (rows, users, items, density after every step)."""
    from recsys import api
    from recsys.experiment import load_data_config

    cfg, base = load_data_config(conf, set_ or [])
    _, spec = api.prepare_data(cfg, base)
    if as_json:
        console.print_json(json.dumps(spec.card, default=str))
    else:
        _print_card(spec.card)
        features = spec.card.get("features")
        if isinstance(features, dict) and features:
            _print_features(features)


def _print_features(features: dict[str, Any]) -> None:
    table = Table(title="item features")
    for col in ("modality", "kind", "dim", "missing", "policy", "cached", "source"):
        table.add_column(col, justify="right" if col in ("dim", "missing") else "left")
    for name, f in features.items():
        table.add_row(
            name,
            str(f.get("kind")),
            str(f.get("dim")),
            f"{f.get('n_missing')} / {f.get('n_items')}",
            str(f.get("policy")),
            "yes" if f.get("cache_hit") else "no",
            ", ".join(Path(part.strip()).name for part in str(f.get("source")).split("\n")),
        )
    console.print(table)


def _print_card(card: dict[str, object]) -> None:
    steps = card.get("steps")
    if not isinstance(steps, list):
        console.print_json(json.dumps(card, default=str))
        return
    table = Table(title=f"data card: {card.get('name')}")
    for col in ("step", "rows", "users", "items", "density"):
        table.add_column(col, justify="left" if col == "step" else "right")
    for s in steps:
        density = s.get("density")
        table.add_row(
            str(s.get("step")),
            f"{s.get('rows', ''):,}" if isinstance(s.get("rows"), int) else str(s.get("rows")),
            str(s.get("users")),
            str(s.get("items")),
            f"{density:.5f}" if isinstance(density, float) else str(density),
        )
    console.print(table)
    for key in ("dropped", "evaluated_users", "noise"):
        if key in card:
            console.print(f"{key}: {card[key]}")


@app.command()
def train(
    conf: Annotated[Path, typer.Argument(help="Experiment config, e.g. conf/exp/ml100k-mf.toml.")],
    set_: SetOpt = None,
    force: Annotated[bool, typer.Option(help="Run again even if finished.")] = False,
    runs_dir: RunsDir = Path("runs"),
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train and evaluate one experiment into runs/<name>-<hash>/ (resumes if unfinished)."""
    from recsys import api

    exp = api.load_experiment(conf, set_ or [])
    try:
        run = api.train(exp, runs_dir=runs_dir, force=force, progress=progress)
    except api.AlreadyDone as done:
        console.print(f"{done} ")
        return
    _print_results([run])


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="A finished run directory.")],
    split: Annotated[str, typer.Option(help="valid or test.")] = "test",
    set_: SetOpt = None,
) -> None:
    """Evaluate a saved model again, optionally with other eval settings (--set ks=[5,50])."""
    from recsys import api
    from recsys.config import apply_overrides, dump, validate
    from recsys.eval.config import EvalConfig

    trained = api.load_run(run)
    raw = apply_overrides(dump(trained.experiment.cfg.eval), set_ or [])
    cfg = validate(EvalConfig, raw, "--set", "eval")
    if split not in ("valid", "test"):
        raise RecsysError(f"--split {split!r}: expected 'valid' or 'test'")
    result = trained.evaluate(split, cfg)
    table = Table(title=f"{run.name} {split} ({result.n_users_evaluated} users)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in result.summary.items():
        table.add_row(name, f"{value:.5f}")
    console.print(table)


@app.command()
def recommend(
    run: Annotated[Path, typer.Argument(help="A finished run directory.")],
    out: Annotated[Path, typer.Option(help="Output file (.parquet or .csv).")],
    k: Annotated[int, typer.Option(help="List length.")] = 10,
    users: Annotated[
        Path | None, typer.Option(help="File with one original user id per line (default: all).")
    ] = None,
) -> None:
    """Write top-K lists (original ids, train items excluded) for every or the given users."""
    from recsys import api, atomic

    if k < 1:
        raise RecsysError(f"--k {k}: must be at least 1")
    trained = api.load_run(run)
    ids = None
    if users is not None:
        if not users.is_file():
            raise RecsysError(f"{users}: file not found")
        ids = [line.strip() for line in users.read_text().splitlines() if line.strip()]
    frame = trained.recommend(k=k, users=ids)
    with atomic.atomic_path(out) as tmp:
        if out.suffix == ".csv":
            frame.write_csv(tmp)
        else:
            frame.write_parquet(tmp)
    console.print(f"wrote {frame.height:,} rows to {out}")


@app.command("export-embeddings")
def export_embeddings(
    run: Annotated[Path, typer.Argument(help="A finished run directory.")],
    out: Annotated[Path, typer.Option(help="Output directory.")],
) -> None:
    """Write users.parquet and items.parquet with original ids and embedding vectors."""
    from recsys import api

    for path in api.load_run(run).export_embeddings(out):
        console.print(f"wrote {path}")


@app.command()
def report(
    runs: Annotated[list[Path], typer.Argument(help="Run directories, or directories of runs.")],
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("reports/latest"),
    baseline: Annotated[Path | None, typer.Option(help="Baseline run for paired tests.")] = None,
    title: Annotated[str, typer.Option(help="Report title.")] = "recsys report",
    style: Annotated[
        Literal["standard", "denoise", "compare", "multitask"],
        typer.Option(
            help="standard: runs × metrics@K; denoise: methods × noise ratio over seeds; "
            "compare: experiments × metrics over seeds; multitask: per-task AUC/GAUC/LogLoss "
            "over seeds."
        ),
    ] = "standard",
    baseline_method: Annotated[
        str | None,
        typer.Option(
            help="denoise: baseline method label (default BPR); compare, multitask: baseline "
            "experiment name (default: the first)."
        ),
    ] = None,
    study: Annotated[
        Path | None,
        typer.Option(help="Tune config whose study (history, importances) joins the report."),
    ] = None,
    study_storage: Annotated[
        str | None, typer.Option(help="The study's storage URL (default: its local file).")
    ] = None,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """Markdown + HTML report: runs × metrics@K, paired tests, protocol card, plots.

    --style denoise: methods × noise ratio, mean ± std over seeds, tests vs --baseline-method.
    --style compare: experiments (by name) × metrics, mean ± std over seeds, paired per-user
    tests vs --baseline-method.
    --style multitask: per-task AUC/GAUC/LogLoss over seeds, paired DeLong AUC tests vs
    --baseline-method, and top-N when the runs rank items.
    """
    if style != "standard" and (baseline is not None or study is not None):
        raise RecsysError(
            f"--baseline and --study go with the standard style; with --style {style} use "
            "--baseline-method"
        )
    if style == "denoise":
        from recsys.report.denoise import build_denoise_report

        paths = build_denoise_report(runs, out, baseline=baseline_method or "BPR", title=title)
    elif style == "compare":
        from recsys.report.compare import build_compare_report

        paths = build_compare_report(runs, out, baseline=baseline_method, title=title)
    elif style == "multitask":
        from recsys.report.multitask import build_multitask_report

        paths = build_multitask_report(runs, out, baseline=baseline_method, title=title)
    else:
        from recsys.report.standard import build_report
        from recsys.tune.report import study_appendix_for

        appendix = study_appendix_for(study, study_storage, runs_dir) if study else None
        paths = build_report(runs, out, baseline=baseline, title=title, appendix=appendix)
    console.print(f"report: {paths.html}\n        {paths.markdown}")


app.command("tune")(tune)


@app.command("recbole")
def recbole_cmd(
    conf: Annotated[Path, typer.Argument(help="Experiment whose data, split and eval to use.")],
    model: Annotated[str, typer.Argument(help="RecBole model: BPR, LightGCN, NGCF or ENMF.")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="RecBole hyperparameter KEY=VALUE.")
    ] = None,
    set_: SetOpt = None,
    epochs: Annotated[int | None, typer.Option(help="Maximum epochs.")] = None,
    force: Annotated[bool, typer.Option(help="Run again even if finished.")] = False,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """Train a RecBole model (subprocess) on the experiment's split; import its lists as a run."""
    from recsys import api
    from recsys.baselines.recbole_run import run_recbole_cli

    try:
        path = run_recbole_cli(
            conf,
            model,
            param or [],
            sets=set_ or [],
            epochs=epochs,
            runs_dir=runs_dir,
            force=force,
        )
    except api.AlreadyDone as done:
        console.print(f"{done} ")
        return
    _print_results([api.TrainedRun(path)])


@app.command("runs")
def list_runs_cmd(runs_dir: RunsDir = Path("runs")) -> None:
    """List runs with status and test metrics."""
    from recsys.runs import list_runs

    rows = list_runs(runs_dir)
    table = Table(title=f"runs in {runs_dir}")
    for col in ("run", "status", "started", "best epoch", "test ndcg@20", "test recall@20"):
        table.add_column(col)
    for r in rows:
        test = r.get("test", {})
        table.add_row(
            r["run"],
            str(r["status"]),
            str(r["started"]),
            str(r.get("best_epoch", "")),
            _fmt(test.get("ndcg@20")),
            _fmt(test.get("recall@20")),
        )
    console.print(table)


def _fmt(v: object) -> str:
    return f"{v:.4f}" if isinstance(v, float) else ""


@app.command("run")
def run_pipeline_cmd(
    pipeline: Annotated[
        Path, typer.Argument(help="Pipeline file, e.g. pipelines/quickstart.toml.")
    ],
    set_: SetOpt = None,
    force: Annotated[bool, typer.Option(help="Retrain finished runs.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = False,
) -> None:
    """Run a pipeline's stages in order (prepare → train → report)."""
    from recsys.pipeline import run_pipeline

    result = run_pipeline(pipeline, set_ or [], force=force, progress=progress)
    _print_results(result.runs)
    for rep in result.reports:
        console.print(f"report: {rep.html}\n        {rep.markdown}")


def _print_results(runs: list) -> None:  # type: ignore[type-arg]
    table = Table(title="test results")
    table.add_column("run", no_wrap=True)
    metrics: list[str] = []
    for r in runs:
        for m in r.results["test"]:
            if m not in metrics:
                metrics.append(m)
    shown = [m for m in metrics if m.split("@")[0] in ("recall", "ndcg")]
    for m in shown:
        table.add_column(m, justify="right")
    table.add_column("epochs", justify="right")
    table.add_column("train s", justify="right")
    for r in runs:
        res = r.results
        table.add_row(
            r.dir.name,
            *[_fmt(res["test"].get(m)) for m in shown],
            str(res.get("epochs_run")),
            f"{res.get('train_seconds', 0.0):.1f}",
        )
    console.print(table)


def main() -> None:
    """Entry point: user errors print one message and exit 2, without a traceback."""
    try:
        app(standalone_mode=False)
    except RecsysError as e:
        err.print(f"[red]error:[/red] {escape(str(e))}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted: run the same command again to resume")
        sys.exit(130)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except Exception as e:  # click usage errors
        import click

        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(e.exit_code)
        if isinstance(e, click.exceptions.Abort):
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()
