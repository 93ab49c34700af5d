"""Multimodal end to end through the CLI, on ml-100k with real item features.

The text modality is the precomputed MiniLM matrix of ``../shared/data/ml100k_text_minilm``
(read as a user-supplied ``.npy``), so no test loads the text model; the tabular and KG
modalities come from RecBole's ml-100k files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.contract.toy_data import ml100k_path
from tests.integration.conftest import ROOT, run_cli

SHARED_TEXT = (
    ROOT.parent / "shared" / "data" / "ml100k_text_minilm" / "ml-100k_item_text_minilm.npy"
)

pytestmark = [
    pytest.mark.skipif(ml100k_path() is None, reason="recbole's ml-100k files are not installed"),
    pytest.mark.skipif(
        not SHARED_TEXT.is_file(),
        reason=f"{SHARED_TEXT} is absent (../shared/data sits beside the checkout in CI)",
    ),
]


def data_conf(tmp_path: Path, text: str = "", extra: str = "") -> Path:
    conf = tmp_path / "mm.toml"
    conf.write_text(
        'name = "ml-100k"\n[source]\nformat = "atomic"\npath = "builtin:ml-100k"\n'
        '[split]\nmethod = "random"\nratios = [0.8, 0.1, 0.1]\nseed = 2020\n'
        f'[features.text]\nkind = "npy"\npath = "{text or SHARED_TEXT}"\nid_offset = 1\n'
        '[features.tabular]\nkind = "tabular"\nmulti_hot = ["class"]\nnumeric = ["release_year"]\n'
        '[features.kg]\nkind = "kg"\ndim = 16\n' + extra
    )
    return conf


def exp_conf(tmp_path: Path, name: str, model: str, losses: str, epochs: int = 1) -> Path:
    conf = tmp_path / f"{name}.toml"
    conf.write_text(
        f'name = "{name}"\ndata = "mm.toml"\nmodel = {model}\nlosses = {losses}\n'
        f'[train]\nepochs = {epochs}\nbatch_size = 2048\nlr = 1e-2\nmonitor = "recall@20"\n'
        '[eval]\nks = [20]\nmetrics = ["recall", "ndcg"]\n'
    )
    return conf


def test_describe_counts_missing_items(tmp_path: Path) -> None:
    conf = data_conf(tmp_path)
    out = run_cli("data", "describe", str(conf), "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    card = json.loads(out.stdout)["features"]
    assert list(card) == ["text", "tabular", "kg"]
    assert card["text"]["dim"] == 384 and card["text"]["n_missing"] == 0
    assert card["kg"]["dim"] == 16 and card["kg"]["n_missing"] > 0
    assert card["kg"]["n_items"] == 1657  # the train items of this split


def test_cm3_and_freedom_train_and_a_compare_report_with_ablation(tmp_path: Path) -> None:
    data_conf(tmp_path)
    for name, model, losses in (
        (
            "cm3",
            '{ name = "cm3", dim = 16, ui_layers = 2 }',
            '[{ name = "calibrated_uniformity" }]',
        ),
        ("freedom", '{ name = "freedom", dim = 16 }', '[{ name = "bpr", reg_weight = 0.0 }]'),
    ):
        exp = exp_conf(tmp_path, name, model, losses)
        out = run_cli("train", str(exp), "--runs-dir", "runs", cwd=tmp_path)
        assert out.returncode == 0, out.stderr + out.stdout
    for run in (tmp_path / "runs").iterdir():
        results = json.loads((run / "results.json").read_text())
        assert results["test"]["recall@20"] > 0.05, (run.name, results["test"])

    # A pipeline: LightGCN baseline, VBPR on 3 modalities with its automatic ablation (3 more
    # runs), two seeds each, then the compare report with paired tests against LightGCN.
    exp_conf(
        tmp_path, "lightgcn", '{ name = "lightgcn", dim = 16, layers = 2 }', '[{ name = "bpr" }]'
    )
    exp_conf(tmp_path, "vbpr", '{ name = "vbpr", dim = 16 }', '[{ name = "bpr" }]')
    pipeline = tmp_path / "pipe.toml"
    pipeline.write_text(
        'name = "mm"\n[[stages]]\nkind = "train"\nexp = ["lightgcn.toml", "vbpr.toml"]\n'
        "seeds = [0, 1]\nablate_modalities = true\n"
        '[[stages]]\nkind = "report"\nstyle = "compare"\nbaseline = "lightgcn"\nout = "rep"\n'
    )
    out = run_cli("run", str(pipeline), cwd=tmp_path)
    assert out.returncode == 0, out.stderr + out.stdout
    table = pl.read_csv(tmp_path / "rep" / "results.csv")
    methods = table["method"].unique(maintain_order=True).to_list()
    assert methods == ["lightgcn", "vbpr", "vbpr-no-text", "vbpr-no-tabular", "vbpr-no-kg"]
    vbpr = table.filter(pl.col("method") == "vbpr-no-kg", pl.col("metric") == "recall@20")
    assert vbpr["n"].item() == 2 and 0.0 <= vbpr["p_holm"].item() <= 1.0
    config = json.loads(
        next(p for p in (tmp_path / "runs").glob("vbpr-no-kg-*/config.json")).read_text()
    )
    assert config["model"]["modalities"] == ["text", "tabular"]
    assert "vbpr-no-kg" in (tmp_path / "rep" / "report.md").read_text()


def bad(tmp_path: Path, conf: Path, needle: str, *, args: tuple[str, ...] = ()) -> None:
    command = args or ("data", "prepare", str(conf))
    out = run_cli(*command, cwd=tmp_path)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert needle in out.stderr, out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def test_feature_file_with_too_few_rows(tmp_path: Path) -> None:
    np.save(tmp_path / "short.npy", np.ones((1000, 8), dtype=np.float32))
    conf = data_conf(tmp_path, text=str(tmp_path / "short.npy"))
    bad(tmp_path, conf, "short.npy has 1000 rows")


def test_feature_file_with_nan_rows(tmp_path: Path) -> None:
    values = np.load(SHARED_TEXT)
    values[[3, 17]] = np.nan
    np.save(tmp_path / "nan.npy", values)
    conf = data_conf(tmp_path, text=str(tmp_path / "nan.npy"))
    bad(tmp_path, conf, "nan.npy: rows 3, 17")


def test_unknown_modality_name(tmp_path: Path) -> None:
    data_conf(tmp_path)
    exp = exp_conf(tmp_path, "v", '{ name = "vbpr", modalities = ["image"] }', '[{ name = "bpr" }]')
    bad(tmp_path, exp, "unknown modality 'image'", args=("train", str(exp)))
