"""Studies on ml-100k (MF, 2 epochs per trial): trials are runs, resume after a kill, pruning
through the loop's hook, retraining and the report."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from tune_files import write_tune

from recsys.errors import RecsysError
from recsys.runs import DONE, read_json, status
from recsys.tune.context import load_context
from recsys.tune.objective import PruningHook
from recsys.tune.retrain import choose_trial, retrain
from recsys.tune.storage import default_url, open_storage
from recsys.tune.study import open_study, run_search

ROOT = Path(__file__).resolve().parents[2]


def _trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=open_storage(url, 1)).get_trials()


def test_trials_are_runs_without_test_metrics_and_a_study_resumes(tmp_path: Path) -> None:
    conf = write_tune(tmp_path / "t.toml", n_trials=2)
    ctx = load_context(conf, [], tmp_path / "runs")
    url = default_url(ctx.runs_dir, ctx.cfg.name)
    study = run_search(ctx, url)
    first = {t.number: t.value for t in study.trials}
    assert sorted(first) == [0, 1] and all(t.state == TrialState.COMPLETE for t in study.trials)
    for t in study.trials:
        run_dir = ctx.runs_dir / t.user_attrs["run"]
        assert status(run_dir) == DONE
        results = read_json(run_dir / "results.json")
        assert "test" not in results and results["valid"]["ndcg@20"] == pytest.approx(t.value)
        assert read_json(run_dir / "config.json")["train"]["lr"] == t.params["train.lr"]
        assert t.user_attrs["n_params"] == 8 * (943 + 1657) and t.user_attrs["epochs_run"] == 2

    # Started again with a larger total: the finished trials stay, new ones follow.
    more = load_context(conf, ["n_trials=3"], tmp_path / "runs")
    trials = run_search(more, url).trials
    assert [t.number for t in trials] == [0, 1, 2]
    assert {t.number: t.value for t in trials[:2]} == first
    # Again with the same total: nothing runs.
    assert len(run_search(more, url).trials) == 3


def test_a_study_from_another_definition_is_refused(tmp_path: Path) -> None:
    conf = write_tune(tmp_path / "t.toml", n_trials=1)
    ctx = load_context(conf, [], tmp_path / "runs")
    url = default_url(ctx.runs_dir, ctx.cfg.name)
    open_study(ctx, url)
    other = load_context(conf, ["sampler.seed=1"], tmp_path / "runs")
    with pytest.raises(RecsysError, match="created from another definition"):
        open_study(other, url)


class _FakeTrial:
    def __init__(self, prune_after: int) -> None:
        self.reported: list[tuple[float, int]] = []
        self.prune_after = prune_after

    def report(self, value: float, step: int) -> None:
        self.reported.append((value, step))

    def should_prune(self) -> bool:
        return len(self.reported) >= self.prune_after


def test_pruning_hook_reports_validated_epochs_and_stops() -> None:
    trial = _FakeTrial(prune_after=2)
    hook = PruningHook(trial, "valid/ndcg@20")  # type: ignore[arg-type]
    assert hook(1, {"loss": 0.5}) is False and trial.reported == []
    assert hook(2, {"loss": 0.4, "valid/ndcg@20": 0.1}) is False
    assert hook(3, {"valid/ndcg@20": 0.2}) is True
    assert trial.reported == [(0.1, 2), (0.2, 3)] and hook.pruned_at == 3


def test_median_pruning_stops_bad_trials_early(tmp_path: Path) -> None:
    """Learning rates spanning 1000x: the pruner stops some trials before the last epoch."""
    conf = write_tune(
        tmp_path / "t.toml",
        n_trials=6,
        epochs=6,
        pruner='name = "median"\nn_startup_trials = 2\nn_warmup_steps = 1',
        params='[params."train.lr"]\ntype = "float"\nlow = 1e-5\nhigh = 1e-2\nlog = true\n',
    )
    ctx = load_context(conf, [], tmp_path / "runs")
    study = run_search(ctx, default_url(ctx.runs_dir, ctx.cfg.name))
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned, [(t.params, t.state) for t in study.trials]
    for t in pruned:
        assert t.user_attrs["epochs_run"] == t.user_attrs["pruned_at"] < 6
        assert max(t.intermediate_values) == t.user_attrs["pruned_at"]
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials) == 6


def test_retrain_and_report(tmp_path: Path) -> None:
    conf = write_tune(tmp_path / "t.toml", n_trials=2, extra="retrain = { seeds = [0, 1] }")
    ctx = load_context(conf, [], tmp_path / "runs")
    url = default_url(ctx.runs_dir, ctx.cfg.name)
    study = run_search(ctx, url)
    best = choose_trial(study)
    assert best.number == max(study.trials, key=lambda t: t.value).number
    done = retrain(ctx, best)
    assert len(done.runs) == len(done.baseline_runs) == 2
    for run_dir in done.runs:
        cfg = read_json(run_dir / "config.json")
        assert cfg["train"]["lr"] == best.params["train.lr"] and cfg["name"] == "t-mf-best"
        assert "test" in read_json(run_dir / "results.json")
    assert {read_json(d / "config.json")["seed"] for d in done.baseline_runs} == {0, 1}
    with pytest.raises(RecsysError, match="trial 7 is not a complete trial"):
        choose_trial(study, 7)

    from recsys.tune.report import write_tune_report

    paths = write_tune_report(ctx, study, url, done, tmp_path / "report")
    page = paths.html.read_text()
    for text in ("Tuning study", "Chosen parameters", "optuna-dashboard", "t-mf-default"):
        assert text in page
    assert (tmp_path / "report" / "tune_history.png").stat().st_size > 1000
    assert retrain(ctx, best).runs == done.runs  # finished runs are reused


def _wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _states(storage: optuna.storages.BaseStorage, name: str) -> dict[str, int]:
    try:
        trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    except KeyError:
        return {}
    out: dict[str, int] = {}
    for t in trials:
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def kill_and_resume(conf: Path, runs: Path, url: str, cwd: Path, name: str = "t-mf") -> None:
    """Start ``recsys tune`` (no retrain), kill it hard in the middle of a trial after two
    trials finished, start it again; the study reaches its total, the killed trial is failed
    (heartbeat) and no finished trial runs twice."""
    cmd = [sys.executable, "-m", "recsys.cli", "tune", str(conf), "--no-retrain"]
    cmd += ["--runs-dir", str(runs), "--storage", url]
    log_path = cwd / "killed.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    storage = open_storage(url, 1)

    def two_done_one_running() -> bool:
        states = _states(storage, name)
        return states.get("COMPLETE", 0) >= 2 and states.get("RUNNING", 0) == 1

    try:
        _wait_for(two_done_one_running, 240, f"2 complete trials, 1 running ({log_path})")
        assert proc.poll() is None, log_path.read_text()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = {t.number: t.value for t in _trials(url, name) if t.state == TrialState.COMPLETE}
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr
    trials = _trials(url, name)
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 4
    assert [t.state for t in trials].count(TrialState.FAIL) == 1
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    for number, value in before.items():
        assert trials[number].value == value
    for t in finished:
        assert status(runs / t.user_attrs["run"]) == DONE


def test_a_killed_local_study_resumes_to_its_total(tmp_path: Path) -> None:
    conf = write_tune(tmp_path / "t.toml", n_trials=4, epochs=40)
    runs = tmp_path / "runs"
    kill_and_resume(conf, runs, default_url(runs, "t-mf"), tmp_path)


def _recsys(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "recsys.cli", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=600)


def test_cli_tune_end_to_end_and_bad_input(tmp_path: Path) -> None:
    conf = write_tune(tmp_path / "t.toml", n_trials=2, extra="retrain = { seeds = [0] }")
    run = _recsys("tune", str(conf), "--out", "rep", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "2 complete" in run.stdout and "report: rep/report.html" in run.stdout
    assert (tmp_path / "runs" / "tune" / "t-mf.db").is_file()
    results = read_json(next((tmp_path / "runs").glob("t-mf-best-*/results.json")))
    assert "ndcg@20" in results["test"]
    retrained = sorted(str(p) for p in (tmp_path / "runs").glob("t-mf-[bd]e*-*"))
    rep = _recsys("report", *retrained, "--study", str(conf), "--out", "rep2", cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr
    page = (tmp_path / "rep2" / "report.md").read_text()
    assert "## Tuning study" in page and "Paired per-user tests against t-mf-best" in page
    never = write_tune(tmp_path / "never.toml", name="t-mf-never")
    other = _recsys("report", *retrained, "--study", str(never), "--out", "rep3", cwd=tmp_path)
    assert other.returncode == 2 and "no study 't-mf-never'" in other.stderr, other.stderr
    url = "postgresql+psycopg2://u:pw@127.0.0.1:1/x"
    bad = _recsys("tune", str(conf), "--storage", url, cwd=tmp_path)
    assert bad.returncode == 2 and "cannot open tuning storage" in bad.stderr
    assert "Traceback" not in bad.stderr and ":pw@" not in bad.stderr
    typo = write_tune(
        tmp_path / "typo.toml", params='[params."train.lrr"]\ntype = "float"\nlow = 0.1\nhigh = 1.0'
    )
    bad = _recsys("tune", str(typo), cwd=tmp_path)
    assert bad.returncode == 2 and "unknown parameter 'train.lrr'" in bad.stderr, bad.stderr


def test_multi_objective_study_gives_a_pareto_front_and_report(tmp_path: Path) -> None:
    params = (
        '[params."model.dim"]\ntype = "categorical"\nchoices = [4, 16]\n'
        '[params."train.lr"]\ntype = "float"\nlow = 1e-3\nhigh = 1e-2\nlog = true\n'
    )
    conf = write_tune(
        tmp_path / "t.toml",
        n_trials=4,
        pruner='name = "none"',
        params=params,
        extra='cost = "params"\nretrain = { seeds = [0], baseline = "none" }',
    )
    ctx = load_context(conf, [], tmp_path / "runs")
    url = default_url(ctx.runs_dir, ctx.cfg.name)
    study = run_search(ctx, url)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    for t in study.trials:
        assert t.values[1] == t.params["model.dim"] * (943 + 1657) == t.user_attrs["n_params"]
    front = study.best_trials
    for a in front:  # no trial dominates a Pareto point
        assert not any(
            b.values[0] >= a.values[0] and b.values[1] <= a.values[1] and b.values != a.values
            for b in study.trials
        )
    chosen = choose_trial(study)
    assert chosen.values[0] == max(t.values[0] for t in front)
    done = retrain(ctx, chosen)
    assert done.baseline_method is None and len(done.runs) == 1

    from recsys.tune.report import write_tune_report

    paths = write_tune_report(ctx, study, url, done, tmp_path / "report")
    assert "Pareto front" in paths.markdown.read_text()
    assert (tmp_path / "report" / "tune_pareto.png").stat().st_size > 1000


def test_defaults_baseline_resets_the_tuned_keys(tmp_path: Path) -> None:
    conf = write_tune(tmp_path / "t.toml", n_trials=1, extra="retrain = { seeds = [0] }")
    fixed = "set=['train.epochs=2', 'model.dim=8', 'train.patience=0', 'train.lr=0.05']"
    ctx = load_context(conf, ["retrain.baseline=defaults", fixed], tmp_path)
    study = run_search(ctx, default_url(ctx.runs_dir, ctx.cfg.name))
    done = retrain(ctx, choose_trial(study))
    assert done.baseline_method == "t-mf-defaults"
    cfg = read_json(done.baseline_runs[0] / "config.json")
    assert cfg["train"]["lr"] == 1e-3  # TrainConfig's default, not the experiment's 0.05
    assert cfg["train"]["epochs"] == 2  # keys outside the space keep the experiment's value
