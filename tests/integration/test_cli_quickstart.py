"""The quickstart end to end through the CLI, and what a user does next."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from tests.integration.conftest import ROOT, run_cli


def runs_of(cwd: Path) -> dict[str, Path]:
    return {p.name.rsplit("-", 1)[0]: p for p in (cwd / "runs").iterdir() if p.is_dir()}


def test_quickstart_writes_runs_and_report(quickstart: Path) -> None:
    runs = runs_of(quickstart)
    assert set(runs) == {"pop", "mf", "lightgcn"}
    for run in runs.values():
        for name in ("config.json", "manifest.json", "results.json", "model.pt"):
            assert (run / name).is_file(), (run, name)
        per_user = pl.read_parquet(run / "per_user_test.parquet")
        assert {"user_idx", "user_id", "ndcg@20", "recall@10"} <= set(per_user.columns)
        assert not (run / "checkpoint.pt").exists()
    html = (quickstart / "reports" / "quickstart" / "report.html").read_text()
    for label in ("pop", "mf", "lightgcn", "ndcg@20", "paired t", "Protocol"):
        assert label in html
    assert "data:image/png;base64," in html


def test_rerun_says_finished_and_pipeline_reuses(quickstart: Path) -> None:
    out = run_cli(
        "train", str(ROOT / "conf/exp/ml100k-mf.toml"), "--set", "train.epochs=3", cwd=quickstart
    )
    assert out.returncode == 0
    assert "already finished" in out.stdout
    listing = run_cli("runs", cwd=quickstart)
    assert listing.returncode == 0 and "lightgcn" in listing.stdout


def test_recommend_and_export(quickstart: Path) -> None:
    run = runs_of(quickstart)["mf"]
    out = run_cli("recommend", str(run), "--k", "5", "--out", "recs.csv", cwd=quickstart)
    assert out.returncode == 0, out.stderr
    recs = pl.read_csv(quickstart / "recs.csv", schema_overrides={"user_id": pl.Utf8})
    assert recs.height == 943 * 5
    assert recs.group_by("user_id").len()["len"].unique().to_list() == [5]
    # Original ids, and no train item recommended.
    train = pl.read_parquet(next((quickstart / "data" / "cache").glob("ml-100k-*/train.parquet")))
    users = pl.read_parquet(next((quickstart / "data" / "cache").glob("ml-100k-*/users.parquet")))
    items = pl.read_parquet(next((quickstart / "data" / "cache").glob("ml-100k-*/items.parquet")))
    seen = train.join(users, on="user_idx").join(items, on="item_idx").select("user_id", "item_id")
    leaked = recs.with_columns(pl.col("item_id").cast(pl.Utf8)).join(
        seen, on=["user_id", "item_id"]
    )
    assert leaked.height == 0
    out = run_cli("export-embeddings", str(run), "--out", "emb", cwd=quickstart)
    assert out.returncode == 0, out.stderr
    emb = pl.read_parquet(quickstart / "emb" / "items.parquet")
    assert emb.height == items.height
    assert emb.schema["embedding"] == pl.Array(pl.Float32, 64)


def test_evaluate_with_other_k(quickstart: Path) -> None:
    run = runs_of(quickstart)["lightgcn"]
    out = run_cli("evaluate", str(run), "--set", "ks=[5, 50]", cwd=quickstart)
    assert out.returncode == 0, out.stderr
    assert "ndcg@50" in out.stdout and "ndcg@20" not in out.stdout


def test_user_errors_are_one_clear_message(tmp_path: Path) -> None:
    cases = [
        (["train", "nope.toml"], "nope.toml: config file not found"),
        (["train", str(ROOT / "conf/exp/ml100k-mf.toml"), "--set", "train.lrr=1"], "train.lrr"),
        (["report", "missing-run"], "missing-run"),
        (["run", "missing.toml"], "missing.toml"),
    ]
    for args, needle in cases:
        out = run_cli(*args, cwd=tmp_path)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert needle in out.stderr, (args, out.stderr)
        assert "Traceback" not in out.stderr + out.stdout
