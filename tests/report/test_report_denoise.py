"""The denoising report on hand-built run directories: labels, seed means, paired tests,
refusals and the written files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from scipy import stats

from recsys.errors import RecsysError
from recsys.report.denoise import build_denoise_report
from recsys.report.denoise_runs import dataset_label, method_label
from recsys.report.denoise_stats import paired_test
from recsys.report.standard import build_report
from tests.report.fake_runs import toy_data

METHODS: dict[str, dict[str, Any]] = {
    "BPR": {"losses": [{"name": "bpr", "reg_weight": 0.0}], "sampler": {"name": "user"}},
    "T-CE (BPR)": {
        "losses": [{"name": "tce", "base": "bpr", "max_drop": 0.2}],
        "sampler": {"name": "user"},
    },
    "PLD": {
        "losses": [{"name": "bpr", "reg_weight": 0.0}],
        "sampler": {"name": "pld", "pool_size": 5},
    },
}
N_USERS = 6


def make_run(
    root: Path,
    method: str,
    noise: float,
    seed: int,
    recall: np.ndarray,
    ndcg: np.ndarray,
    *,
    users: np.ndarray | None = None,
    data_hash: str | None = None,
    history: list[dict[str, float]] | None = None,
    lr: float = 1e-3,
    split_seed: int = 2020,
    ks: list[int] | None = None,
) -> Path:
    """A finished run directory as ``api.train`` writes it (the files a report reads)."""
    users = np.arange(len(recall)) if users is None else users
    name = f"{method.split()[0].lower()}-r{noise:g}-s{seed}"
    run = root / f"{name}-{split_seed}-{lr:g}"
    run.mkdir(parents=True)
    data_hash = data_hash or f"hash-toy-{noise:g}-{split_seed}"
    config = {
        "name": name,
        "seed": seed,
        "data": toy_data(
            split_seed,
            noise={
                "ratio": noise,
                "seed": 2024,
                "sampling": "uniform",
                "exclude": "all_splits",
                "natural": "none",
                "clean_min_rating": 4.0,
                "clean_valid": False,
            },
        ),
        "model": {"name": "mf", "dim": 8},
        **METHODS[method],
        "train": {"epochs": 5, "lr": lr, "batch_size": 64, "monitor": "recall@20", "device": "cpu"},
        "eval": {
            "ks": ks or [20],
            "metrics": ["recall", "ndcg"],
            "idcg": "truncated",
            "average": "evaluated",
            "test_mask": "train_valid",
        },
    }
    manifest = {
        "run": run.name,
        "status": "done",
        "seeds": {"model": seed, "split": split_seed},
        "data_hash": data_hash,
        "device": "cpu",
    }
    test = {"recall@20": float(np.mean(recall)), "ndcg@20": float(np.mean(ndcg))}
    results = {
        "best_epoch": 5,
        "epochs_run": 5,
        "stopped_early": False,
        "valid": test,
        "test": test,
        "test_users": len(users),
        "valid_users": len(users),
        "data": {"name": "toy", "hash": data_hash, "protocol": {}},
    }
    for file, obj in (("config.json", config), ("manifest.json", manifest)):
        (run / file).write_text(json.dumps(obj))
    (run / "results.json").write_text(json.dumps(results))
    pl.DataFrame(
        {
            "user_idx": users.astype(np.int32),
            "user_id": [str(u) for u in users],
            "recall@20": np.asarray(recall, dtype=np.float64),
            "ndcg@20": np.asarray(ndcg, dtype=np.float64),
        }
    ).write_parquet(run / "per_user_test.parquet")
    rows = history or [{"epoch": e, "loss": 1.0 / e} for e in range(1, 4)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def per_user(method: str, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic per-user values; BPR at ρ=0 is [.1 .. .6] + 0.01·seed exactly."""
    if method == "BPR" and noise == 0.0:
        recall = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]) + 0.01 * seed
    else:
        offset = {"BPR": 0, "T-CE (BPR)": 1, "PLD": 2}[method]
        rng = np.random.default_rng(1000 * offset + int(100 * noise) + seed)
        recall = rng.uniform(0.0, 1.0, N_USERS) + 0.05 * offset - noise
    return recall, recall / 2


@pytest.fixture
def bench(tmp_path: Path) -> list[Path]:
    runs = []
    for method in METHODS:
        for noise in (0.0, 0.2):
            for seed in (0, 1, 2):
                recall, ndcg = per_user(method, noise, seed)
                history = None
                if noise > 0:
                    history = [
                        {
                            "epoch": e,
                            "noise/auroc_global": 0.5 + 0.05 * e,
                            "noise/auroc_user": 0.5 + 0.04 * e,
                            **(
                                {"pld/noise_share": 0.1, "pld/pool_noise_share": 0.2}
                                if method == "PLD"
                                else {}
                            ),
                        }
                        for e in range(1, 4)
                    ]
                runs.append(
                    make_run(tmp_path / "runs", method, noise, seed, recall, ndcg, history=history)
                )
    return runs


def test_method_and_dataset_labels() -> None:
    bpr = {"name": "bpr"}
    assert method_label({"losses": [bpr], "sampler": {"name": "uniform"}}) == "BPR"
    assert method_label({"losses": [], "sampler": {"name": "uniform"}}) == "BPR"
    assert method_label({"losses": [{"name": "bce"}], "sampler": {"name": "user"}}) == "BCE"
    tce = {"name": "tce", "base": "bpr"}
    assert method_label({"losses": [tce], "sampler": {"name": "user"}}) == "T-CE (BPR)"
    rce = {"name": "rce", "base": "bce"}
    assert method_label({"losses": [rce], "sampler": {"name": "user"}}) == "R-CE"
    assert method_label({"losses": [{"name": "rce"}, bpr], "sampler": {}}) == "R-CE"
    assert method_label({"losses": [tce], "sampler": {"name": "pld"}}) == "PLD"
    assert method_label({"losses": [{"name": "bce"}], "sampler": {"name": "pld"}}) == "PLD"
    data = {"name": "ml-100k", "noise": {"natural": "none", "ratio": 0.1}}
    assert dataset_label({"data": data}) == "ml-100k"
    rating = {"name": "ml-100k", "noise": {"natural": "rating", "clean_min_rating": 4.0}}
    assert dataset_label({"data": rating}) == "ml-100k (natural: rating < 4)"
    label = {"name": "ml-100k", "noise": {"natural": "label"}}
    assert dataset_label({"data": label}) == "ml-100k (natural: label)"


def test_table_means_stds_and_best(bench: list[Path], tmp_path: Path) -> None:
    paths = build_denoise_report(bench, tmp_path / "rep", title="toy denoise")
    table = paths.table
    assert table.height == 3 * 2 * 2  # methods × ρ × metrics
    cell = table.filter(
        (pl.col("method") == "BPR") & (pl.col("noise") == 0.0) & (pl.col("metric") == "recall@20")
    ).row(0, named=True)
    # Seed means of [.1..0.6] + 0.01·s are 0.35, 0.36, 0.37: mean 0.36, sample std 0.01.
    assert cell["mean"] == pytest.approx(0.36)
    assert cell["std"] == pytest.approx(0.01)
    assert cell["n_seeds"] == 3 and cell["seeds"] == "0 1 2"
    assert cell["p"] is None  # the baseline is not tested against itself
    for method in METHODS:
        for noise in (0.0, 0.2):
            means = [per_user(method, noise, s)[0].mean() for s in range(3)]
            row = table.filter(
                (pl.col("method") == method)
                & (pl.col("noise") == noise)
                & (pl.col("metric") == "recall@20")
            ).row(0, named=True)
            assert row["mean"] == pytest.approx(np.mean(means))
            assert row["std"] == pytest.approx(np.std(means, ddof=1))
    md = paths.markdown.read_text()
    assert "| method | ρ=0 | ρ=0.2 |" in md
    assert "0.3600 ± 0.0100" in md
    # Best per column in bold: recompute the winner of the ρ=0.2 recall column.
    col = table.filter((pl.col("noise") == 0.2) & (pl.col("metric") == "recall@20"))
    best = col.sort("mean", descending=True).row(0, named=True)
    assert f"**{best['mean']:.4f} ± {best['std']:.4f}" in md
    assert md.count("**") >= 2 * 4  # one bold cell per column per table, at least


def test_paired_tests_match_scipy_and_holm(bench: list[Path], tmp_path: Path) -> None:
    paths = build_denoise_report(bench, tmp_path / "rep")
    tests = pl.DataFrame(paths.tests["rows"])
    assert paths.tests["baseline"] == "BPR"
    got = tests.filter(pl.col("metric") == "recall@20")
    assert set(got["method"]) == {"T-CE (BPR)", "PLD"} and got.height == 4
    expected_p: dict[tuple[str, float], float] = {}
    for method in ("T-CE (BPR)", "PLD"):
        for noise in (0.0, 0.2):
            x = np.mean([per_user(method, noise, s)[0] for s in range(3)], axis=0)
            y = np.mean([per_user("BPR", noise, s)[0] for s in range(3)], axis=0)
            row = got.filter((pl.col("method") == method) & (pl.col("noise") == noise)).row(
                0, named=True
            )
            p = stats.ttest_rel(x, y).pvalue
            d = x - y
            assert row["p"] == pytest.approx(p, rel=1e-9)
            assert row["delta"] == pytest.approx(d.mean())
            assert row["effect_dz"] == pytest.approx(d.mean() / d.std(ddof=1))
            assert row["users"] == N_USERS
            expected_p[(method, noise)] = float(p)
    # Holm over the table's 4 comparisons, by hand: sorted p times 4, 3, 2, 1, running max.
    keys = sorted(expected_p, key=lambda k: expected_p[k])
    running = 0.0
    for rank, key in enumerate(keys):
        running = max(running, min(1.0, (4 - rank) * expected_p[key]))
        holm_p = got.filter((pl.col("method") == key[0]) & (pl.col("noise") == key[1]))["p_holm"]
        assert holm_p[0] == pytest.approx(running)


def test_paired_test_pairs_users_present_in_both(tmp_path: Path) -> None:
    # The method misses user 0 in one seed and user 5 in both: users 0..4 pair, with user 0
    # averaged over the one seed that has it.
    base = [make_run(tmp_path, "BPR", 0.1, s, np.arange(6) / 10, np.zeros(6)) for s in (0, 1)]
    a = make_run(
        tmp_path,
        "PLD",
        0.1,
        0,
        np.array([0.9, 0.2, 0.1, 0.5, 0.3]),
        np.zeros(5),
        users=np.arange(5),
    )
    b = make_run(
        tmp_path,
        "PLD",
        0.1,
        1,
        np.array([0.4, 0.2, 0.6, 0.1]),
        np.zeros(4),
        users=np.arange(1, 5),
    )
    paths = build_denoise_report([*base, a, b], tmp_path / "rep")
    row = (
        pl.DataFrame(paths.tests["rows"]).filter(pl.col("metric") == "recall@20").row(0, named=True)
    )
    x = np.array([0.9, 0.3, 0.15, 0.55, 0.2])
    y = np.arange(5) / 10
    assert row["users"] == 5
    assert row["p"] == pytest.approx(stats.ttest_rel(x, y).pvalue)
    assert row["delta"] == pytest.approx((x - y).mean())


def test_paired_test_degenerate_cases() -> None:
    assert paired_test(np.array([0.1, 0.2]), np.array([0.1, 0.2])) == (0.0, 0.0, 1.0)
    delta, dz, p = paired_test(np.array([0.5]), np.array([0.2]))
    assert delta == pytest.approx(0.3) and dz == 0.0 and p == 1.0


def test_refuses_different_data_at_one_noise_ratio(tmp_path: Path) -> None:
    v = np.linspace(0, 1, 6)
    a = make_run(tmp_path, "BPR", 0.1, 0, v, v)
    b = make_run(tmp_path, "PLD", 0.1, 0, v, v, data_hash="something-else")
    with pytest.raises(RecsysError, match=r"data hash differs within .*ρ=0\.1"):
        build_denoise_report([a, b], tmp_path / "rep")
    assert not (tmp_path / "rep").exists()


def test_data_may_differ_by_data_seeds_only(tmp_path: Path) -> None:
    v = np.linspace(0, 1, 6)
    runs = [
        make_run(tmp_path, m, 0.1, s, v + 0.01 * s, v, split_seed=2020 + s)
        for m in ("BPR", "PLD")
        for s in (0, 1)
    ]
    paths = build_denoise_report(runs, tmp_path / "rep")
    assert set(paths.table["n_seeds"]) == {2}


def test_refuses_pooling_runs_that_differ_beyond_seeds(tmp_path: Path) -> None:
    v = np.linspace(0, 1, 6)
    a = make_run(tmp_path, "BPR", 0.1, 0, v, v)
    b = make_run(tmp_path, "BPR", 0.1, 1, v, v, lr=1e-2)
    with pytest.raises(RecsysError, match=r"cannot be pooled as seeds of BPR.*train\.lr differs"):
        build_denoise_report([a, b], tmp_path / "rep")
    c = make_run(tmp_path / "dup", "BPR", 0.1, 0, v, v)
    with pytest.raises(RecsysError, match=r"two runs of BPR .* with seed 0"):
        build_denoise_report([a, c], tmp_path / "rep")


def test_refuses_different_eval_conventions_and_unknown_baseline(tmp_path: Path) -> None:
    v = np.linspace(0, 1, 6)
    a = make_run(tmp_path, "BPR", 0.0, 0, v, v)
    b = make_run(tmp_path, "PLD", 0.0, 0, v, v, ks=[10, 20])
    with pytest.raises(RecsysError, match=r"eval\.ks differs"):
        build_denoise_report([a, b], tmp_path / "rep")
    c = make_run(tmp_path, "PLD", 0.0, 1, v, v)
    with pytest.raises(RecsysError, match="baseline method 'BCE' is not among"):
        build_denoise_report([a, c], tmp_path / "rep", baseline="BCE")
    with pytest.raises(RecsysError, match=r"results\.json has no test 'hit@10'"):
        build_denoise_report([a, c], tmp_path / "rep", metrics=("hit@10",))


def test_files_figures_and_protocol(bench: list[Path], tmp_path: Path) -> None:
    paths = build_denoise_report(bench, tmp_path / "rep", title="toy denoise")
    out = tmp_path / "rep"
    for name in ("report.md", "report.html", "results.csv", "recall20_vs_noise.png"):
        assert (out / name).is_file(), name
    assert (out / "noise_auroc.png").is_file() and (out / "pld_noise_share.png").is_file()
    page = paths.html.read_text()
    assert page.count("<img") == 3 and "data:image/png;base64," in page
    assert "<h1>toy denoise</h1>" in page and "<b>" in page
    csv = pl.read_csv(paths.csv)
    assert csv.height == 12 and {"mean", "std", "n_seeds", "p_holm"} <= set(csv.columns)
    md = paths.markdown.read_text()
    assert "paired tests against BPR" in md
    assert "injected ρ ∈ {0, 0.2}" in md and "split random 0.8/0.1/0.1" in md
    assert "method: PLD" in md and "sampler name=pld, pool_size=5" in md
    assert not list(out.glob(".*.tmp"))


def test_no_diagnostic_figures_without_history_keys(tmp_path: Path) -> None:
    v = np.linspace(0, 1, 6)
    runs = [make_run(tmp_path, m, 0.1, 0, v, v) for m in ("BPR", "PLD")]
    paths = build_denoise_report(runs, tmp_path / "rep")
    assert not (tmp_path / "rep" / "noise_auroc.png").exists()
    assert paths.html.read_text().count("<img") == 1


def test_standard_report_draws_auroc_when_logged(tmp_path: Path) -> None:
    v = np.linspace(0, 1, 6)
    history = [
        {"epoch": e, "noise/auroc_global": 0.6, "noise/auroc_user": 0.55} for e in range(1, 4)
    ]
    with_keys = [make_run(tmp_path / "a", "BPR", 0.1, 0, v, v, history=history)]
    build_report(with_keys, tmp_path / "rep_a")
    assert (tmp_path / "rep_a" / "noise_auroc.png").is_file()
    without = [make_run(tmp_path / "b", "BPR", 0.1, 0, v, v)]
    build_report(without, tmp_path / "rep_b")
    assert not (tmp_path / "rep_b" / "noise_auroc.png").exists()


def test_significant_cells_are_marked(tmp_path: Path) -> None:
    v = np.linspace(0.1, 0.5, 20)
    jitter = np.tile([0.01, -0.01], 10)
    base = make_run(tmp_path, "BPR", 0.1, 0, v, v)
    better = make_run(tmp_path, "PLD", 0.1, 0, v + 0.1 + jitter, v + jitter)
    paths = build_denoise_report([base, better], tmp_path / "rep")
    rows = {r["metric"]: r for r in paths.tests["rows"]}
    assert rows["recall@20"]["p_holm"] < 1e-10 and rows["ndcg@20"]["p_holm"] > 0.05
    md = paths.markdown.read_text()
    assert f"| PLD | **{(v + 0.1 + jitter).mean():.4f} †** |" in md
    # ndcg: the same mean as BPR (a tie: both bold), mean difference 0, no mark.
    assert "| BPR | **0.3000** |" in md and "| PLD | **0.3000** |" in md
