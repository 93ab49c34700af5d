"""Resume after a kill gives the same numbers; reports refuse incomparable runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys import api
from recsys.errors import RecsysError
from recsys.report.standard import build_report
from tests.integration.conftest import ROOT

SETS = ["train.epochs=4", "train.batch_size=4096", "model.layers=1"]


class Killed(Exception):
    pass


def test_killed_run_resumes_to_identical_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    exp = api.load_experiment(ROOT / "conf/exp/ml100k-lightgcn.toml", SETS)
    whole = api.train(exp, runs_dir="whole")

    def kill_at_epoch_2(epoch: int, row: dict[str, float]) -> bool:
        if epoch == 2:
            raise Killed
        return False

    with pytest.raises(Killed):
        api.train(exp, runs_dir="killed", hooks=[kill_at_epoch_2])
    run_dir = next(Path("killed").iterdir())
    assert (run_dir / "checkpoint.pt").is_file() and not (run_dir / "results.json").exists()
    resumed = api.train(exp, runs_dir="killed")
    assert resumed.dir.name == whole.dir.name
    assert resumed.results["test"] == whole.results["test"]
    assert resumed.results["valid"] == whole.results["valid"]
    lines = (resumed.dir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 4


def test_report_refuses_runs_on_different_splits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    pop = ROOT / "conf/exp/ml100k-pop.toml"
    a = api.train(api.load_experiment(pop))
    b = api.train(api.load_experiment(pop, ["data.split.seed=1"]))
    with pytest.raises(RecsysError, match=r"runs cannot be compared: .*split.*differs"):
        build_report([a.dir, b.dir], tmp_path / "rep")
    assert not (tmp_path / "rep").exists()


def test_notebook_api_roundtrip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    exp = api.load_experiment(ROOT / "conf/exp/ml100k-mf.toml", ["train.epochs=2"])
    run = api.train(exp)
    loaded = api.load_run(run.dir)
    again = loaded.evaluate("test")
    assert again.summary == pytest.approx(run.results["test"])
    recs = loaded.recommend(k=3, users=["1", "2"])
    assert recs["user_id"].to_list() == ["1"] * 3 + ["2"] * 3
    with pytest.raises(RecsysError, match="unknown user ids"):
        loaded.recommend(k=3, users=["no-such-user"])
