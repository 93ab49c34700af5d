"""The pipeline's recbole stage and the `recsys recbole` command: RecBole runs join a report."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from recsys.baselines import recbole_run
from recsys.pipeline import run_pipeline

ROOT = Path(__file__).resolve().parents[2]


def _pipeline(tmp_path: Path, required: bool) -> Path:
    path = tmp_path / "p.toml"
    exp = ROOT / "conf" / "exp"
    path.write_text(
        f'name = "p"\nruns_dir = "runs"\n'
        f'[[stages]]\nkind = "train"\nexp = ["{exp / "ml100k-pop.toml"}"]\n'
        f'[[stages]]\nkind = "recbole"\nexp = "{exp / "ml100k-mf.toml"}"\nmodels = ["BPR"]\n'
        f"epochs = 1\nrequired = {'true' if required else 'false'}\n"
        f'[[stages]]\nkind = "report"\nout = "rep"\nbaseline = "pop"\n'
    )
    return path


def test_stage_is_skipped_or_refused_without_recbole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(recbole_run, "recbole_available", lambda: False)
    result = run_pipeline(_pipeline(tmp_path, required=False))
    assert [r.config["name"] for r in result.runs] == ["pop"]
    with pytest.raises(Exception, match="RecBole is not installed"):
        run_pipeline(_pipeline(tmp_path, required=True))


def test_recbole_stage_joins_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not recbole_run.recbole_available():
        ci = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
        if ci and sys.version_info < (3, 12):
            pytest.fail("CI on Python < 3.12 must run the RecBole tests")
        pytest.skip(recbole_run.NOT_INSTALLED)
    monkeypatch.chdir(tmp_path)
    result = run_pipeline(_pipeline(tmp_path, required=True))
    names = [r.config["name"] for r in result.runs]
    assert names == ["pop", "recbole-bpr"]
    page = (tmp_path / "rep" / "report.md").read_text()
    assert "| recbole-bpr |" in page and "Training cost" in page
    again = run_pipeline(_pipeline(tmp_path, required=True))  # finished runs are reused
    assert [r.dir for r in again.runs] == [r.dir for r in result.runs]
