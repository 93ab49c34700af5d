"""Shared fixtures: a small finished quickstart in a temporary working directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``recsys ARGS`` as a user would, in ``cwd``."""
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "recsys.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="session")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quickstart pipeline with 3 epochs per model, run once for the session."""
    cwd = tmp_path_factory.mktemp("quickstart")
    out = run_cli(
        "run", str(ROOT / "pipelines" / "quickstart.toml"), "--set", "train.epochs=3", cwd=cwd
    )
    assert out.returncode == 0, out.stderr + out.stdout
    return cwd
