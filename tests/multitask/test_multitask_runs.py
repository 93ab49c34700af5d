"""Multi-task runs end to end on census-income: api.train writes per-task results and
predictions, the multitask report pairs methods by seed, a pipeline reports per dataset,
and tuning accepts task metrics."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from recsys import api
from recsys.errors import ConfigError, RecsysError
from recsys.experiment import load_experiment
from recsys.report.multitask import build_multitask_report
from recsys.spec import DataSpec
from recsys.tune.context import load_context
from tests.multitask.conftest import ROOT

EXP = ROOT / "conf" / "exp" / "multitask"


def _run(name: str, seed: int, runs: Path, cache: Path) -> api.TrainedRun:
    exp = load_experiment(
        EXP / f"census-{name}.toml",
        [f"seed={seed}", "train.epochs=2", f"data.cache_dir={cache}", "train.batch_size=512"],
    )
    return api.train(exp, runs_dir=runs)


@pytest.fixture(scope="module")
def census_runs(census: DataSpec, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    runs, cache = tmp_path_factory.mktemp("runs"), tmp_path_factory.mktemp("cache")
    return [_run(m, s, runs, cache).dir for m in ("mmoe", "shared-bottom") for s in (0, 1)]


def test_run_results_and_predictions(census_runs: list[Path]) -> None:
    results = json.loads((census_runs[0] / "results.json").read_text())
    for split in ("valid", "test"):
        assert results[split]["income/auc"] > 0.85 and results[split]["never_married/auc"] > 0.9
    assert results["params"] > 0 and "test_users" not in results  # no top-N on a table
    assert results["data"]["multitask"]["test"]["samples"] == 24_941
    pred = pl.read_parquet(census_runs[0] / "pred_test.parquet")
    assert pred.height == 24_941
    assert {"p_income", "y_income", "m_never_married"} <= set(pred.columns)


def test_multitask_report(census_runs: list[Path], tmp_path: Path) -> None:
    paths = build_multitask_report(census_runs, tmp_path / "rep", baseline="mmoe")
    md = paths.markdown.read_text()
    assert "Per-task test metrics" in md and "Paired AUC tests against mmoe" in md
    rows = paths.tests["delong"]
    assert [(r["method"], r["task"]) for r in rows] == [
        ("shared-bottom", "income"),
        ("shared-bottom", "never_married"),
    ]
    assert all(r["seeds"] == 2 and 0 <= r["p_holm"] <= 1 for r in rows)
    table = paths.table.filter(pl.col("metric") == "income/auc")
    assert table.height == 2 and (table["n"] == 2).all()
    with pytest.raises(RecsysError, match="baseline 'ple' is not among the multi-task methods"):
        build_multitask_report(census_runs, tmp_path / "x", baseline="ple")


def test_pipeline_reports_per_dataset(tmp_path: Path, census: DataSpec) -> None:
    from recsys.pipeline import run_pipeline

    pipe = tmp_path / "p.toml"
    exp = (EXP / "census-mmoe.toml").as_posix()
    pipe.write_text(
        f'name = "t"\nruns_dir = "{(tmp_path / "runs").as_posix()}"\n'
        f'[[stages]]\nkind = "train"\nexp = ["{exp}"]\nseeds = [0]\n'
        f'sets = ["train.epochs=1", "data.cache_dir={tmp_path.as_posix()}/c"]\n'
        f'[[stages]]\nkind = "report"\nstyle = "multitask"\nruns = "since_last_report"\n'
        f'out = "{(tmp_path / "rep").as_posix()}"\n'
        f'[[stages]]\nkind = "report"\nruns = "since_last_report"\nout = "x"\n'
    )
    with pytest.raises(ConfigError, match="stage 3 \\(report\\): no runs to report on"):
        run_pipeline(pipe)
    assert (tmp_path / "rep" / "report.md").is_file()


def test_tuning_takes_task_metrics(tmp_path: Path) -> None:
    ctx = load_context(ROOT / "conf" / "tune" / "ml100k-mmoe.toml", [], tmp_path)
    assert ctx.cfg.metric == "mean/auc"
    with pytest.raises(ConfigError, match="expected TASK/auc, TASK/gauc or TASK/logloss"):
        load_context(ROOT / "conf" / "tune" / "ml100k-mmoe.toml", ["metric=click/auc"], tmp_path)
    with pytest.raises(ConfigError, match="has no \\[multitask\\] table"):
        load_context(ROOT / "conf" / "tune" / "ml100k-mf.toml", ["metric=like/auc"], tmp_path)


def test_pairwise_model_on_multitask_data_ranks_the_liked_items(
    ml100k_mt: DataSpec, tmp_path: Path
) -> None:
    """MF trained on the multi-task data config: top-N on the same liked targets, no task
    metrics (it has no task heads)."""
    exp = load_experiment(
        ROOT / "conf" / "exp" / "ml100k-mf.toml",
        ["train.epochs=1", f"data.cache_dir={tmp_path / 'c'}"],
        data=ROOT / "conf" / "data" / "ml-100k-multitask.toml",
    )
    run = api.train(exp, runs_dir=tmp_path / "runs")
    results = run.results
    assert "ndcg@20" in results["test"] and not any("/" in k for k in results["test"])
    assert results["test_users"] == int(ml100k_mt.eval_users_test.numel())
    assert not (run.dir / "pred_test.parquet").exists()
