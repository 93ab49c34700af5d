"""The denoising path end to end through the CLI: noisy data, PLD/T-CE runs, the report."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from tests.integration.conftest import ROOT, run_cli

EXP = ROOT / "conf" / "exp" / "denoise"


def test_small_denoise_pipeline_runs_and_reports(tmp_path: Path) -> None:
    pipeline = tmp_path / "denoise.toml"
    exps = ", ".join(f'"{EXP / f"mf-{m}.toml"}"' for m in ("bpr", "tce", "pld"))
    pipeline.write_text(
        f'name = "small"\n\n[[stages]]\nkind = "train"\nexp = [{exps}]\nseeds = [0]\n'
        'grid = { "data.noise.ratio" = [0.0, 0.2] }\n'
        'sets = ["train.epochs=2", "train.eval_every=1"]\n\n'
        '[[stages]]\nkind = "report"\nstyle = "denoise"\nout = "reports/small"\n'
    )
    out = run_cli("run", str(pipeline), cwd=tmp_path)
    assert out.returncode == 0, out.stderr + out.stdout
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 6
    noisy_pld = [
        r
        for r in runs
        if json.loads((r / "config.json").read_text())["sampler"]["name"] == "pld"
        and json.loads((r / "config.json").read_text())["data"]["noise"]["ratio"] == 0.2
    ]
    assert len(noisy_pld) == 1
    rows = [json.loads(line) for line in (noisy_pld[0] / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert 0.0 <= row["noise/auroc_user"] <= 1.0 and 0.0 <= row["noise/auroc_global"] <= 1.0
        assert 0.0 <= row["pld/noise_share"] <= 1.0
    report = tmp_path / "reports" / "small"
    table = pl.read_csv(report / "results.csv")
    assert set(table["method"]) == {"BPR", "T-CE (BPR)", "PLD"}
    md = (report / "report.md").read_text()
    assert "ρ=0.2" in md and "paired" in md
    assert "<img" in (report / "report.html").read_text()


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("data.noise.ratio=1.0", "data.noise.ratio"),
        ("data.noise.ratio=-0.1", "data.noise.ratio"),
        ("sampler.pool_size=0", "sampler.pool_size"),
        ("sampler.temperature=0", "sampler.temperature"),
    ],
)
def test_bad_denoise_settings_are_clear_errors(tmp_path: Path, override: str, key: str) -> None:
    out = run_cli("train", str(EXP / "mf-pld.toml"), "--set", override, cwd=tmp_path)
    assert out.returncode == 2
    assert key in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "runs").exists()
