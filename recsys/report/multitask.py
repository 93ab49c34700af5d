"""The multi-task report: per-task AUC / GAUC / LogLoss of every method (mean ± std over
seeds), paired DeLong tests of each task's AUC against a baseline (Stouffer over seeds, Holm
over all comparisons, :mod:`recsys.report.multitask_stats`), and, when the data ranks items,
the top-N table with paired per-user tests (as the compare report).

Runs are grouped into methods by experiment name (seeds); all must share one dataset. Runs of
pairwise recommenders (MF, LightGCN) trained on the same data config join the top-N table.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import polars as pl

from recsys.errors import RecsysError
from recsys.eval.task_metrics import TASK_METRICS
from recsys.report.build import ReportPaths, write_report
from recsys.report.compare import (
    Method,
    compare_tests,
    group_methods,
    resolve_metrics,
    seed_summary,
)
from recsys.report.compare_render import (
    ALPHA,
    NO_STD,
    protocol_card,
    results_block,
    tests_block,
)
from recsys.report.denoise_render import Document, TableBlock, to_html, to_markdown
from recsys.report.multitask_stats import delong_tests
from recsys.report.runs_loader import RunRecord, comparable_protocol, load_runs, per_user_metrics


def _is_task_run(rec: RunRecord) -> bool:
    return any(k.endswith("/auc") for k in rec.results.get("test", {}))


def _tasks(rec: RunRecord) -> tuple[str, ...]:
    """Task names in results order (from the ``<task>/auc`` test keys of a run)."""
    return tuple(
        k.split("/")[0] for k in rec.results["test"] if k.endswith("/auc") and k != "mean/auc"
    )


def _cell(row: dict[str, Any]) -> str:
    if row["mean"] is None or (isinstance(row["mean"], float) and math.isnan(row["mean"])):
        return "n/a"
    std = NO_STD if row["std"] is None else f"{row['std']:.4f}"
    return f"{row['mean']:.4f} ± {std}"


def _task_block(summary: pl.DataFrame, methods: list[Method], metrics: list[str]) -> TableBlock:
    cells = {(r["method"], r["metric"]): r for r in summary.iter_rows(named=True)}
    rows, bold = [], set()
    for m in methods:
        params = {int(r.results.get("params", 0)) for r in m.runs}
        secs = [float(r.results.get("train_seconds", 0.0)) for r in m.runs]
        row = [m.name, str(len(m.runs)), "/".join(f"{p:,}" for p in sorted(params))]
        row.append(f"{sum(secs) / len(secs):.0f}")
        row += [_cell(cells[(m.name, k)]) for k in metrics]
        rows.append(row)
    for j, k in enumerate(metrics, start=4):
        means = [cells[(m.name, k)]["mean"] for m in methods]
        finite = [v for v in means if v is not None and math.isfinite(v)]
        if not finite:
            continue
        best = min(finite) if k.endswith("logloss") else max(finite)
        bold |= {(i, j) for i, v in enumerate(means) if v is not None and math.isclose(v, best)}
    note = (
        "Test split: mean ± sample std (ddof 1) over seeds; best per column in bold (lowest "
        "LogLoss). AUC over the task's labelled samples; GAUC: per-user AUC weighted by the "
        "user's labelled samples, users with both classes (n/a without users); params: trained "
        "parameters; train s: mean training seconds per run."
    )
    header = ["method", "seeds", "params", "train s", *metrics]
    return TableBlock("Per-task test metrics", header, rows, frozenset(bold), (note,))


def _delong_block(tests: pl.DataFrame, baseline: str) -> TableBlock:
    rows = [
        [
            r["method"],
            r["task"],
            f"{r['delta_auc']:+.5f}",
            f"{r['z']:+.2f}",
            f"{r['p']:.2g}",
            f"{r['p_holm']:.2g}" + ("*" if r["p_holm"] < ALPHA else ""),
            f"{r['seeds_better']}/{r['seeds_worse']} of {r['seeds']}",
        ]
        for r in tests.iter_rows(named=True)
    ]
    note = (
        f"ΔAUC = mean over seeds of (method − {baseline}) test AUC, each seed paired with the "
        f"baseline's run of the same seed on the same samples; z: DeLong's paired test per seed, "
        "combined by Stouffer (Σz/√S); Holm over all rows; better/worse: seeds with ΔAUC > 0 / "
        f"< 0; * Holm p < {ALPHA:g}."
    )
    header = ["method", "task", "ΔAUC", "z", "p", "Holm p", "seeds better/worse"]
    return TableBlock(f"Paired AUC tests against {baseline}", header, rows, frozenset(), (note,))


def build_multitask_report(
    runs: list[Path],
    out_dir: Path,
    baseline: str | None = None,
    title: str = "Multi-task comparison",
) -> ReportPaths:
    """Write the multi-task report for ``runs`` (run directories or directories of runs).

    Returns:
        The written paths; ``table`` holds ``method, metric, mean, std, n, seeds`` for every
        task metric (and top-N metric when ranked); ``tests`` holds ``baseline``, ``tasks``,
        ``methods``, ``delong`` (rows as dicts) and ``topn`` (paired per-user tests).

    Raises:
        RecsysError: unfinished or non-multi-task runs, runs on different data, an unknown
            baseline, runs without a shared seed with the baseline.
    """
    records = load_runs(list(runs))
    records = list({rec.dir.resolve(): rec for rec in records}.values())
    protocol = comparable_protocol(records)
    all_methods = group_methods(records)
    # pairwise recommenders on the same data join the top-N table only
    methods = [m for m in all_methods if _is_task_run(m.runs[0])]
    if not methods:
        raise RecsysError(f"{records[0].dir}: not a multi-task run (no <task>/auc test results)")
    names = [m.name for m in methods]
    base = baseline or names[0]
    if base not in names:
        raise RecsysError(
            f"multitask report: baseline {base!r} is not among the multi-task methods {names}"
        )
    tasks = _tasks(methods[0].runs[0])
    metrics = [f"{t}/{k}" for t in tasks for k in TASK_METRICS]
    summary = seed_summary(methods, tuple(metrics))
    # GAUC needs users: drop metrics no run has a value for (census-like tables)
    defined = summary.filter(pl.col("mean").is_not_nan()).get_column("metric").unique()
    metrics = [m for m in metrics if m in defined.to_list()]
    summary = summary.filter(pl.col("metric").is_in(metrics))
    tests = delong_tests(methods, base, tasks) if len(methods) > 1 else pl.DataFrame()
    tables = [_task_block(summary, methods, metrics)]
    if tests.height:
        tables.append(_delong_block(tests, base))
    info: dict[str, Any] = {"baseline": base, "tasks": list(tasks), "methods": names}
    info["delong"] = tests.to_dicts() if tests.height else []
    ranked = all("test_users" in r.results for r in records)
    table = summary
    if ranked:
        top = resolve_metrics(records, None)
        frames = {rec.dir: per_user_metrics(rec, top) for rec in records}
        top_summary = seed_summary(all_methods, top)
        all_names = [m.name for m in all_methods]
        many = len(all_methods) > 1
        top_tests = compare_tests(all_methods, base, top, frames) if many else None
        empty = pl.DataFrame(schema={"method": pl.String, "metric": pl.String, "p_holm": float})
        block = results_block(top_summary, top_tests if top_tests is not None else empty,
                              top, all_names, base)  # fmt: skip
        tables.append(TableBlock(f"Top-N on the liked test items ({block.heading})",
                                 block.header, block.rows, block.bold, block.notes))  # fmt: skip
        if top_tests is not None:
            tables.append(tests_block(top_tests, all_names, top, base))
        info["topn"] = top_tests.to_dicts() if top_tests is not None else []
        table = pl.concat([summary, top_summary])
    card = protocol_card(
        [(m.name, m.runs) for m in all_methods],
        protocol,
        tuple(metrics),
        base,
        statistics="per task: mean ± sample std over seeds; DeLong paired AUC test per seed "
        "against the baseline, Stouffer-combined over seeds, Holm over all (method, task) "
        "rows; top-N: paired per-user t-tests (users averaged over seeds), Holm per metric",
    )
    data = records[0].config.get("data", {})
    table_cfg = (data.get("multitask") or {}).get("table")
    if table_cfg:
        card = [c for c in card if c[0] != "cleaning"]
        card[0] = ("dataset", f"{data.get('name')} (table {table_cfg.get('path')})")
        card[2] = ("split", f"random rows, ratios {table_cfg.get('ratios')}, seed "
                            f"{table_cfg.get('seed')}")  # fmt: skip
    card.append(("samples", _samples_line(records[0])))
    doc = Document(
        title=title,
        intro=(
            f"{len(records)} runs of {len(names)} methods on {data.get('name')}; tasks "
            f"{', '.join(tasks)}; baseline {base}.",
        ),
        tables=tables,
        figures={},
        protocol=card,
    )
    return write_report(out_dir, {}, table, to_markdown(doc), to_html(doc), info)


def _samples_line(rec: RunRecord) -> str:
    mt = rec.results.get("data", {}).get("multitask", {})
    parts = [f"{s}: {mt[s]['samples']:,}" for s in ("train", "valid", "test") if s in mt]
    return ", ".join(parts) or "see the data card"
