"""Many workers on one study in a real PostgreSQL server (started by .ci/postgres.sh)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from optuna.trial import TrialState
from test_study import _trials, kill_and_resume
from tune_files import write_tune

from recsys.runs import DONE, status

pytestmark = pytest.mark.postgres


def test_three_workers_share_one_study(postgres_url: str, tmp_path: Path) -> None:
    name = f"w3-{uuid.uuid4().hex[:8]}"
    conf = write_tune(tmp_path / "t.toml", name=name, n_trials=6)
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "recsys.cli", "tune", str(conf), "--no-retrain"]
    cmd += ["--workers", "3", "--storage", postgres_url, "--runs-dir", str(runs)]
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    trials = _trials(postgres_url, name)
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(trials)))  # no number twice, none skipped
    # Every trial finished (none lost or left running); the total is reached. Workers that
    # start their last trials in the same instant may each start one: at most workers - 1 more.
    assert all(t.state == TrialState.COMPLETE for t in trials), [t.state for t in trials]
    assert 6 <= len(trials) <= 8
    dirs = {t.user_attrs["run"] for t in trials}
    assert len(dirs) == len(trials) and all(status(runs / d) == DONE for d in dirs)
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) >= 2, "the trials should have been spread over the worker processes"


def test_a_killed_worker_fails_its_trial_and_the_study_completes(
    postgres_url: str, tmp_path: Path
) -> None:
    name = f"kill-{uuid.uuid4().hex[:8]}"
    conf = write_tune(tmp_path / "t.toml", name=name, n_trials=4, epochs=40)
    kill_and_resume(conf, tmp_path / "runs", postgres_url, tmp_path, name=name)
