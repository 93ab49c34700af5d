"""The denoising-benchmark report: methods × injected noise ratio, means over seeds, paired
per-user tests against a baseline method, robustness and noise-detection figures.

Writes ``report.md``, ``report.html`` (figures embedded), ``results.csv`` (one row per
dataset, model, method, ρ and metric: ``mean, std, n, seeds`` and the paired test against the
baseline) and the figures as PNG files. Run labelling and the comparability checks are in
:mod:`recsys.report.denoise_runs`; the statistics in :mod:`recsys.report.denoise_stats`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from recsys.errors import RecsysError
from recsys.report.build import ReportPaths, eval_protocol_lines, write_report
from recsys.report.denoise_render import Document, TableBlock, to_html, to_markdown
from recsys.report.denoise_runs import DenoiseRun, classify, method_order
from recsys.report.denoise_stats import KEYS, paired_tests, seed_summary
from recsys.report.noise_plots import History, metric_vs_noise_png, noise_auroc_png, pld_share_png
from recsys.report.runs_loader import load_runs
from recsys.report.text_format import fmt_setting, join_values

ALPHA = 0.05
"""Holm-corrected p below which a cell is marked † (different from the baseline)."""


def build_denoise_report(
    run_dirs: Sequence[Path],
    out: Path,
    *,
    baseline: str = "BPR",
    metrics: tuple[str, ...] = ("recall@20", "ndcg@20"),
    title: str = "Denoising benchmark",
) -> ReportPaths:
    """Write the denoising report for ``run_dirs`` (run directories or directories of runs).

    Args:
        run_dirs: finished runs.
        out: output directory.
        baseline: the method label the paired tests compare against (``"BPR"``, ``"BCE"``...).
        metrics: test metrics to tabulate; the first one is drawn against ρ.
        title: report title.

    Returns:
        The written paths; ``table`` is the ``results.csv`` frame and ``tests`` holds the
        baseline, the metrics and the paired-test rows.

    Raises:
        RecsysError: unfinished runs, runs that cannot be compared (see
            :func:`recsys.report.denoise_runs.check_comparable`), a baseline that is not among
            several methods, or a metric missing from a run.
    """
    if not metrics:
        raise RecsysError("denoise report: no metrics to report")
    records = load_runs(list(run_dirs))
    unique = {rec.dir.resolve(): rec for rec in records}
    runs = classify(list(unique.values()))
    methods = {r.method for r in runs}
    if len(methods) > 1 and baseline not in methods:
        raise RecsysError(
            f"denoise report: baseline method {baseline!r} is not among the runs' methods "
            f"{sorted(methods)}"
        )
    order = method_order(methods, baseline)
    summary = seed_summary(runs, metrics)
    tests = paired_tests(runs, baseline, metrics)
    rank = pl.DataFrame({"method": order, "_rank": list(range(len(order)))})
    table = (
        summary.join(tests, on=[*KEYS, "metric"], how="left")
        .join(rank, on="method")
        .sort(["dataset", "model", "metric", "_rank", "noise"])
        .drop("_rank")
        .rename({"n": "n_seeds"})
    )

    figures = _figures(runs, summary, metrics[0], order)
    doc = Document(
        title=title,
        intro=(
            f"Test {', '.join(metrics)}: mean ± sample standard deviation over seeds per method "
            "and injected noise ratio ρ"
            + (f"; paired per-user t-tests against {baseline}." if tests.height else "."),
        ),
        tables=_blocks(summary, tests, metrics, order, baseline),
        figures=figures,
        protocol=_protocol(runs, metrics, baseline),
    )
    test_info: dict[str, Any] = {
        "baseline": baseline,
        "metrics": list(metrics),
        "rows": tests.to_dicts(),
    }
    return write_report(out, figures, table, to_markdown(doc), to_html(doc), test_info)


def _blocks(
    summary: pl.DataFrame,
    tests: pl.DataFrame,
    metrics: tuple[str, ...],
    order: list[str],
    baseline: str,
) -> list[TableBlock]:
    """Per (dataset, model, metric): the methods × ρ table, then its paired tests."""
    blocks = []
    groups = sorted(set(summary.select("dataset", "model").rows()))
    for dataset, model in groups:
        for metric in metrics:
            cells = summary.filter(
                (pl.col("dataset") == dataset)
                & (pl.col("model") == model)
                & (pl.col("metric") == metric)
            )
            group_tests = tests.filter(
                (pl.col("dataset") == dataset)
                & (pl.col("model") == model)
                & (pl.col("metric") == metric)
            )
            blocks.append(_results_block(cells, group_tests, f"{dataset} · {model}", metric, order))
            if group_tests.height:
                blocks.append(
                    _tests_block(group_tests, f"{dataset} · {model}", metric, order, baseline)
                )
    return blocks


def _results_block(
    cells: pl.DataFrame, tests: pl.DataFrame, where: str, metric: str, order: list[str]
) -> TableBlock:
    noises = sorted(set(cells["noise"].to_list()))
    by_cell = {(r["method"], r["noise"]): r for r in cells.iter_rows(named=True)}
    significant = {
        (r["method"], r["noise"]) for r in tests.iter_rows(named=True) if r["p_holm"] < ALPHA
    }
    ns = {r["n"] for r in by_cell.values()}
    same_n = len(ns) == 1
    methods = [m for m in order if any((m, x) in by_cell for x in noises)]
    rows, bold = [], set()
    best = {x: max(r["mean"] for (_, nx), r in by_cell.items() if nx == x) for x in noises}
    for i, method in enumerate(methods):
        row = [method]
        for j, x in enumerate(noises, start=1):
            r = by_cell.get((method, x))
            if r is None:
                row.append("–")
                continue
            text = f"{r['mean']:.4f}" + (f" ± {r['std']:.4f}" if r["std"] is not None else "")
            text += "" if same_n else f" (n={r['n']})"
            text += " †" if (method, x) in significant else ""
            row.append(text)
            if math.isclose(r["mean"], best[x], rel_tol=1e-9, abs_tol=1e-12):
                bold.add((i, j))  # ties (up to rounding error) are all bold
        rows.append(row)
    n_text = f"n = {ns.pop()} seeds per cell" if same_n else "n seeds per cell in brackets"
    notes = (
        f"Test {metric}: mean ± sample std over seeds ({n_text}). Best per column in bold; "
        f"† Holm-corrected p < {ALPHA:g} against the baseline (paired per-user t-test).",
    )
    return TableBlock(
        f"{where}: {metric}",
        ["method", *(f"ρ={x:g}" for x in noises)],
        rows,
        frozenset(bold),
        notes,
    )


def _tests_block(
    tests: pl.DataFrame, where: str, metric: str, order: list[str], baseline: str
) -> TableBlock:
    rank = {m: i for i, m in enumerate(order)}
    ordered = sorted(tests.iter_rows(named=True), key=lambda r: (rank[r["method"]], r["noise"]))
    rows = [
        [
            r["method"],
            f"{r['noise']:g}",
            f"{r['delta']:+.4f}",
            f"{r['effect_dz']:+.3f}",
            f"{r['p']:.2g}",
            f"{r['p_holm']:.2g}",
            str(r["users"]),
        ]
        for r in ordered
    ]
    notes = (
        f"Per-user test {metric} averaged over each method's seeds, paired by user with "
        f"{baseline}'s; Δ = mean difference, d_z = Δ / sd of the differences, p: paired "
        f"t-test, Holm over the {len(rows)} comparisons of this table.",
    )
    return TableBlock(
        f"{where}: {metric}, paired tests against {baseline}",
        ["method", "ρ", "Δ", "d_z", "p", "Holm p", "users"],
        rows,
        frozenset(),
        notes,
    )


def _figures(
    runs: list[DenoiseRun], summary: pl.DataFrame, metric: str, order: list[str]
) -> dict[str, bytes]:
    slug = re.sub(r"[^A-Za-z0-9]+", "", metric)
    figures = {f"{slug}_vs_noise.png": metric_vs_noise_png(summary, metric, order)}
    histories = {run.record.dir: run.record.history() for run in runs}
    panels: dict[str, dict[str, list[History]]] = {}
    rank = {m: i for i, m in enumerate(order)}
    for run in sorted(runs, key=lambda r: (r.dataset, r.model, r.noise, rank[r.method])):
        title = f"{run.dataset} · {run.model} · ρ={run.noise:g}"
        panels.setdefault(title, {}).setdefault(run.method, []).append(histories[run.record.dir])
    auroc = noise_auroc_png(panels, order)
    if auroc is not None:
        figures["noise_auroc.png"] = auroc
    share = pld_share_png(panels, order)
    if share is not None:
        figures["pld_noise_share.png"] = share
    return figures


def _protocol(
    runs: list[DenoiseRun], metrics: tuple[str, ...], baseline: str
) -> list[tuple[str, str]]:
    card: list[tuple[str, str]] = [
        (
            "runs",
            f"{len(runs)} runs; datasets: {join_values(r.dataset for r in runs)}; "
            f"models: {join_values(r.model for r in runs)}",
        )
    ]
    for dataset in sorted({r.dataset for r in runs}):
        these = [r for r in runs if r.dataset == dataset]
        data = these[0].record.config.get("data", {})
        split = data.get("split", {})
        noise = data.get("noise", {})
        card.append(
            (
                f"data: {dataset}",
                f"source {data.get('source', {}).get('path')}; "
                f"cleaning {fmt_setting(data.get('clean'))}; "
                f"split {split.get('method')} {fmt_setting(split.get('ratios'))}, split seed(s) "
                f"{join_values(_get(r, 'split', 'seed') for r in these)}",
            )
        )
        card.append((f"noise: {dataset}", _noise_text(these, noise)))
        hashes = sorted({(r.noise, r.data_hash[:12]) for r in these})
        card.append((f"data hashes: {dataset}", "; ".join(f"ρ={x:g}: {h}" for x, h in hashes)))
    ev = runs[0].record.config.get("eval", {})
    card += [
        (
            "metrics",
            f"test {', '.join(metrics)} from results.json; per-user values from "
            "per_user_test.parquet",
        ),
        *eval_protocol_lines(ev),
        (
            "users evaluated (test)",
            join_values(str(r.record.results.get("test_users")) for r in runs),
        ),
        ("model seeds", join_values(str(r.seed) for r in runs)),
    ]
    for method in method_order({r.method for r in runs}, baseline):
        these = [r for r in runs if r.method == method]
        cfg = these[0].record.config
        train = cfg.get("train", {})
        losses = [
            fmt_setting(loss) for loss in cfg.get("losses", []) if isinstance(loss, Mapping)
        ] or ["none"]
        card.append(
            (
                f"method: {method}",
                f"experiments {join_values(str(r.record.config.get('name')) for r in these)}; "
                f"losses {'; '.join(losses)}; sampler {fmt_setting(cfg.get('sampler'))}; "
                f"epochs ≤ {train.get('epochs')}, lr {train.get('lr')}, "
                f"batch {train.get('batch_size')}, monitor {train.get('monitor')}",
            )
        )
    card.append(
        (
            "statistics",
            f"mean ± sample std (ddof 1) over seeds; paired t-test of per-user values "
            f"(averaged over seeds) against {baseline} at the same dataset, model and ρ; "
            f"Holm over the comparisons of each table; d_z = mean difference / sd",
        )
    )
    return card


def _noise_text(runs: list[DenoiseRun], noise: Mapping[str, Any]) -> str:
    ratios = sorted({r.noise for r in runs})
    text = (
        f"injected ρ ∈ {{{', '.join(f'{x:g}' for x in ratios)}}}: per train user, "
        f"floor(ρ·|train_u|) extra train interactions, {noise.get('sampling')} sampling, "
        f"excluding the user's items in {noise.get('exclude')}, noise seed(s) "
        f"{join_values(_get(r, 'noise', 'seed') for r in runs)}; valid and test stay clean"
        if any(x > 0 for x in ratios)
        else "no injected noise (ρ = 0)"
    )
    natural = noise.get("natural", "none")
    if natural == "rating":
        text += (
            f"; natural noise: rating < {noise.get('clean_min_rating')} is noisy (trained on, "
            f"dropped from test{', valid' if noise.get('clean_valid') else ''})"
        )
    elif natural == "label":
        text += (
            "; natural noise: label column 0/false is noisy (trained on, dropped from "
            f"test{', valid' if noise.get('clean_valid') else ''})"
        )
    return text


def _get(run: DenoiseRun, section: str, key: str) -> str:
    return str(run.record.config.get("data", {}).get(section, {}).get(key))
