"""The compare report on hand-built run directories: seed means, paired tests against scipy,
Holm, baseline choice, refusals, row order and the written files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from scipy import stats

from recsys.errors import RecsysError
from recsys.report.compare import build_compare_report, method_order
from tests.report.fake_runs import toy_data

N_USERS = 8


def make_run(
    root: Path,
    name: str,
    seed: int,
    values: dict[str, np.ndarray],
    *,
    users: np.ndarray | None = None,
    lr: float = 1e-3,
    device: str = "cpu",
    data_hash: str = "hash-toy",
    dirname: str | None = None,
) -> Path:
    """A finished run directory with the files a report reads; test results are the means."""
    first = next(iter(values.values()))
    users = np.arange(len(first)) if users is None else users
    run = root / (dirname or f"{name}-s{seed}")
    run.mkdir(parents=True)
    config: dict[str, Any] = {
        "name": name,
        "seed": seed,
        "data": toy_data(),
        "model": {"name": name.split("-")[0], "dim": 8},
        "losses": [{"name": "bpr", "reg_weight": 0.0}],
        "sampler": {"name": "user"},
        "train": {"epochs": 5, "lr": lr, "batch_size": 64, "monitor": "ndcg@20", "device": device},
        "eval": {
            "ks": [20],
            "metrics": ["recall", "ndcg"],
            "idcg": "truncated",
            "average": "evaluated",
            "test_mask": "train_valid",
        },
    }
    manifest = {"run": run.name, "status": "done", "data_hash": data_hash, "device": device}
    test = {metric: float(np.mean(v)) for metric, v in values.items()}
    results = {
        "valid": test,
        "test": test,
        "test_users": len(users),
        "data": {"name": "toy", "hash": data_hash, "protocol": {}},
    }
    for file, obj in (
        ("config.json", config),
        ("manifest.json", manifest),
        ("results.json", results),
    ):
        (run / file).write_text(json.dumps(obj))
    pl.DataFrame(
        {
            "user_idx": users.astype(np.int32),
            **{metric: np.asarray(v, dtype=np.float64) for metric, v in values.items()},
        }
    ).write_parquet(run / "per_user_test.parquet")
    return run


OFFSET = {"bpr": 0.0, "cm3-no-kg": 0.02, "lightgcn": 0.05, "cm3": 0.1}
SEEDS = {"bpr": (0, 1, 2), "cm3-no-kg": (0, 1), "lightgcn": (0, 1, 2), "cm3": (7,)}


def per_user(name: str, seed: int) -> dict[str, np.ndarray]:
    """Deterministic per-user values; bpr's recall is [.1 .. .8] + 0.01·seed exactly, the
    others add their offset and noise (so some differ significantly from bpr, some not)."""
    base = np.arange(1, N_USERS + 1) / 10
    if name == "bpr":
        recall = base + 0.01 * seed
        return {"recall@20": recall, "ndcg@20": recall / 2 + 0.01 * np.arange(N_USERS)}
    rng = np.random.default_rng(100 * int(100 * OFFSET[name]) + seed)
    recall = base + OFFSET[name] + rng.normal(0.0, 0.03, N_USERS)
    ndcg = recall / 2 + 0.01 * np.arange(N_USERS) + rng.normal(0.0, 0.02, N_USERS)
    return {"recall@20": recall, "ndcg@20": ndcg}


@pytest.fixture
def bench(tmp_path: Path) -> list[Path]:
    # First appearance: bpr, cm3-no-kg, lightgcn, cm3 (the ablation is seen before its base).
    return [
        make_run(tmp_path / "runs", name, seed, per_user(name, seed))
        for name in ("bpr", "cm3-no-kg", "lightgcn", "cm3")
        for seed in SEEDS[name]
    ]


def seed_average(name: str, metric: str) -> np.ndarray:
    return np.mean([per_user(name, s)[metric] for s in SEEDS[name]], axis=0)


def test_method_order_puts_ablations_after_their_base() -> None:
    assert method_order(["a", "b-no-x", "c", "b", "b-no-y"]) == ["a", "c", "b", "b-no-x", "b-no-y"]
    # Without its base, an ablation keeps its place; "-no-" alone names no base.
    assert method_order(["z-no-x", "a", "-no-q"]) == ["z-no-x", "a", "-no-q"]


def test_means_stds_seeds_and_row_order(bench: list[Path], tmp_path: Path) -> None:
    paths = build_compare_report(bench, tmp_path / "rep")
    table = paths.table
    order = ["bpr", "lightgcn", "cm3", "cm3-no-kg"]
    assert paths.tests["methods"] == order and paths.tests["baseline"] == "bpr"
    assert paths.tests["metrics"] == ["recall@20", "ndcg@20"]
    assert table["method"].to_list() == [m for m in order for _ in range(2)]
    assert table["metric"].to_list() == ["recall@20", "ndcg@20"] * 4
    bpr = table.filter((pl.col("method") == "bpr") & (pl.col("metric") == "recall@20")).row(
        0, named=True
    )
    # Seed means of [.1 .. .8] + 0.01·s are 0.45, 0.46, 0.47: mean 0.46, sample std 0.01.
    assert bpr["mean"] == pytest.approx(0.46) and bpr["std"] == pytest.approx(0.01)
    assert bpr["n"] == 3 and bpr["seeds"] == "0 1 2" and bpr["p"] is None
    for name in order:
        for metric in ("recall@20", "ndcg@20"):
            means = [per_user(name, s)[metric].mean() for s in SEEDS[name]]
            row = table.filter((pl.col("method") == name) & (pl.col("metric") == metric)).row(
                0, named=True
            )
            assert row["mean"] == pytest.approx(np.mean(means))
            assert row["n"] == len(means)
            if len(means) > 1:
                assert row["std"] == pytest.approx(np.std(means, ddof=1))
            else:
                assert row["std"] is None
    md = paths.markdown.read_text()
    header = "| method | seeds | recall@20 | ndcg@20 | recall@20 p (holm) | ndcg@20 p (holm) |"
    assert header in md
    assert "| bpr | 3 | 0.4600 ± 0.0100 |" in md
    cm3 = per_user("cm3", 7)["recall@20"].mean()
    assert f"| cm3 | 1 | **{cm3:.4f} ± —** |" in md  # one seed: no std; best recall in bold
    assert "| bpr | 3 | 0.4600 ± 0.0100 | " in md and "| baseline | baseline |" in md
    assert md.index("| cm3 |") < md.index("| cm3-no-kg |")


def test_paired_tests_match_scipy_and_holm(bench: list[Path], tmp_path: Path) -> None:
    paths = build_compare_report(bench, tmp_path / "rep")
    tests = pl.DataFrame(paths.tests["rows"])
    assert tests.height == 3 * 2 and "bpr" not in tests["method"].to_list()
    for metric in ("recall@20", "ndcg@20"):
        expected: dict[str, float] = {}
        y = seed_average("bpr", metric)
        for name in ("lightgcn", "cm3", "cm3-no-kg"):
            x = seed_average(name, metric)
            d = x - y
            row = tests.filter((pl.col("method") == name) & (pl.col("metric") == metric)).row(
                0, named=True
            )
            p = float(stats.ttest_rel(x, y).pvalue)
            assert row["p"] == pytest.approx(p, rel=1e-9)
            assert row["delta"] == pytest.approx(d.mean())
            assert row["effect_dz"] == pytest.approx(d.mean() / d.std(ddof=1))
            assert row["users"] == N_USERS
            expected[name] = p
        # Holm over the metric's 3 comparisons by hand: sorted p × 3, 2, 1, running max.
        running = 0.0
        for rank, name in enumerate(sorted(expected, key=expected.__getitem__)):
            running = max(running, min(1.0, (3 - rank) * expected[name]))
            got = tests.filter((pl.col("method") == name) & (pl.col("metric") == metric))
            assert got["p_holm"][0] == pytest.approx(running)
    # The table carries the same tests; the baseline's rows have none.
    table = paths.table.filter(pl.col("method") != "bpr")
    joined = table.join(tests, on=["method", "metric"])
    assert joined.height == 6
    assert np.allclose(joined["p_holm"].to_numpy(), joined["p_holm_right"].to_numpy())


def test_pairs_users_present_in_both(tmp_path: Path) -> None:
    # The method lacks user 0 in seed 1 and user 5 everywhere: users 0..4 pair, user 0 from
    # seed 0 only.
    base = [make_run(tmp_path, "bpr", s, {"recall@20": np.arange(6) / 10}) for s in (0, 1)]
    a = make_run(tmp_path, "m", 0, {"recall@20": np.array([0.9, 0.2, 0.1, 0.5, 0.3])})
    b = make_run(
        tmp_path, "m", 1, {"recall@20": np.array([0.4, 0.2, 0.6, 0.1])}, users=np.arange(1, 5)
    )
    paths = build_compare_report([*base, a, b], tmp_path / "rep")
    row = paths.tests["rows"][0]
    x = np.array([0.9, 0.3, 0.15, 0.55, 0.2])
    y = np.arange(5) / 10
    assert paths.tests["metrics"] == ["recall@20"]
    assert row["users"] == 5 and row["p_holm"] == row["p"]  # one comparison: Holm = p
    assert row["p"] == pytest.approx(stats.ttest_rel(x, y).pvalue)
    assert row["delta"] == pytest.approx((x - y).mean())


def test_baseline_selection_and_unknown_baseline(bench: list[Path], tmp_path: Path) -> None:
    paths = build_compare_report(bench, tmp_path / "rep", baseline="lightgcn")
    assert paths.tests["baseline"] == "lightgcn"
    tests = pl.DataFrame(paths.tests["rows"])
    assert set(tests["method"]) == {"bpr", "cm3", "cm3-no-kg"}
    row = tests.filter((pl.col("method") == "bpr") & (pl.col("metric") == "ndcg@20"))
    x, y = seed_average("bpr", "ndcg@20"), seed_average("lightgcn", "ndcg@20")
    assert row["p"][0] == pytest.approx(stats.ttest_rel(x, y).pvalue)
    md = paths.markdown.read_text()
    assert "| lightgcn | 3 |" in md and "baseline | baseline |" in md
    assert "Paired tests against lightgcn" in md
    assert md.index("| bpr |") < md.index("| lightgcn |")  # rows keep their order
    with pytest.raises(RecsysError, match=r"baseline 'BPR' is not among .*'bpr', 'lightgcn'"):
        build_compare_report(bench, tmp_path / "rep2", baseline="BPR")
    assert not (tmp_path / "rep2").exists()


def test_refuses_mismatched_seeds_of_one_method(tmp_path: Path) -> None:
    v = {"recall@20": np.linspace(0, 1, 6)}
    a = make_run(tmp_path, "bpr", 0, v)
    b = make_run(tmp_path, "bpr", 1, v, lr=1e-2)
    with pytest.raises(RecsysError, match=r"seeds of method 'bpr': train\.lr differs between "):
        build_compare_report([a, b], tmp_path / "rep")
    with pytest.raises(RecsysError, match=r"bpr-s0 and bpr-s1"):
        build_compare_report([a, b], tmp_path / "rep")
    # The device may differ; the same seed twice may not.
    c = make_run(tmp_path, "bpr", 2, v, device="cuda")
    assert build_compare_report([a, c], tmp_path / "rep").tests["rows"] == []
    d = make_run(tmp_path, "bpr", 0, v, dirname="bpr-again")
    with pytest.raises(RecsysError, match=r"two runs of method 'bpr' with seed 0"):
        build_compare_report([a, d], tmp_path / "rep3")
    # Different data protocols are refused across methods too.
    e = make_run(tmp_path, "other", 0, v, data_hash="elsewhere")
    with pytest.raises(RecsysError, match=r"data hash .* differs"):
        build_compare_report([a, e], tmp_path / "rep4")


def test_default_and_explicit_metrics(tmp_path: Path) -> None:
    v = np.linspace(0.1, 0.6, 6)
    values = {"ndcg@20": v, "precision@20": v, "recall@20": v, "ndcg@5": v, "recall@5": v}
    runs = [make_run(tmp_path, n, 0, values) for n in ("a", "b")]
    paths = build_compare_report(runs, tmp_path / "rep")
    assert paths.tests["metrics"] == ["recall@5", "recall@20", "ndcg@5", "ndcg@20"]
    # Identical per-user values: Δ = 0, p = 1.
    assert {r["p"] for r in paths.tests["rows"]} == {1.0}
    chosen = build_compare_report(runs, tmp_path / "rep2", metrics=("precision@20",))
    assert chosen.tests["metrics"] == ["precision@20"]
    with pytest.raises(RecsysError, match=r"results\.json has no test 'hit@10'"):
        build_compare_report(runs, tmp_path / "rep3", metrics=("hit@10",))


def test_significance_marks(tmp_path: Path) -> None:
    v = np.linspace(0.1, 0.5, 20)
    jitter = np.tile([0.01, -0.01], 10)
    base = make_run(tmp_path, "bpr", 0, {"recall@20": v, "ndcg@20": v})
    better = make_run(tmp_path, "cm3", 0, {"recall@20": v + 0.1 + jitter, "ndcg@20": v + jitter})
    paths = build_compare_report([base, better], tmp_path / "rep")
    rows = {r["metric"]: r for r in paths.tests["rows"]}
    assert rows["recall@20"]["p_holm"] < 1e-10 and rows["ndcg@20"]["p_holm"] > 0.05
    md = paths.markdown.read_text()
    p_ndcg = f"{rows['ndcg@20']['p_holm']:.2g}"
    assert f"| {rows['recall@20']['p_holm']:.2g}* | {p_ndcg} |" in md
    assert "* p (holm) < 0.05" in md


def test_files_html_table_and_plot(bench: list[Path], tmp_path: Path) -> None:
    paths = build_compare_report(bench, tmp_path / "rep", title="toy compare")
    out = tmp_path / "rep"
    for name in ("report.md", "report.html", "results.csv", "compare_means.png"):
        assert (out / name).is_file(), name
    assert not list(out.glob(".*.tmp"))
    csv = pl.read_csv(paths.csv)
    assert csv.columns == [
        "method",
        "metric",
        "mean",
        "std",
        "n",
        "seeds",
        "delta",
        "effect_dz",
        "p",
        "p_holm",
        "users",
    ]
    assert csv.height == 8
    page = paths.html.read_text()
    assert "<h1>toy compare</h1>" in page
    assert "<th>method</th><th>seeds</th><th>recall@20</th><th>ndcg@20</th>" in page
    assert "<td>bpr</td><td>3</td><td>0.4600 ± 0.0100</td>" in page
    assert page.count("<img") == 1 and "data:image/png;base64," in page
    md = paths.markdown.read_text()
    assert "split | method=random, ratios=0.8/0.1/0.1, seed=2020" in md
    assert "method: cm3-no-kg" in md and "masking | train items (valid: train" in md
    png = (out / "compare_means.png").read_bytes()
    again = build_compare_report(bench, tmp_path / "rep_again")
    assert (tmp_path / "rep_again" / "compare_means.png").read_bytes() == png
    assert again.markdown.read_text() == md.replace("toy compare", "Method comparison")


def test_plot_shows_recall_and_ndcg_at_the_largest_k() -> None:
    from recsys.report.compare import plotted_metrics

    metrics = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
    assert plotted_metrics(metrics) == ("recall@20", "ndcg@20")
    assert plotted_metrics(("recall@5", "precision@5")) == ("recall@5", "precision@5")
