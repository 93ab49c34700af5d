"""``recsys report``: the standard report, the place where a comparison is decided.

Runs are grouped into methods (runs of one experiment name are model seeds; their configs must
agree on everything else). The report holds: methods × metrics@K with mean ± 95% CI over seeds
(best mean per column in bold); paired per-user tests of every method against the baseline
(t, Wilcoxon, permutation; Holm over all comparisons of the report; Δ and d_z); cohorts (users
by activity quartile, head/tail items) and statistics of the recommended lists; metric-vs-K,
training and (when runs carry them) noise-detection curves; the tuning study when one is given;
the protocol card. Runs on different splits, K sets, masking or NDCG conventions are refused
with a message naming the difference. Formats: ``report.html`` (self-contained),
``report.md``, and every table as CSV and Parquet.

The statistics are defined in :mod:`recsys.report.standard_stats`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import polars as pl

from recsys import atomic
from recsys.errors import RecsysError
from recsys.report.build import ReportPaths, write_report
from recsys.report.compare import Appendix, group_methods, plotted_metrics, resolve_metrics
from recsys.report.compare_render import protocol_card
from recsys.report.denoise_render import Document, TableBlock, to_html, to_markdown
from recsys.report.noise_plots import noise_auroc_png
from recsys.report.runs_loader import comparable_protocol, load_runs
from recsys.report.standard_plots import metric_vs_k_png, training_curves_png
from recsys.report.standard_stats import Cohorts, cohorts, results_frame, seed_averaged, tests_frame

ALPHA = 0.05


def build_report(
    runs: list[Path],
    out_dir: Path,
    baseline: Path | str | None = None,
    title: str = "recsys report",
    appendix: Appendix | None = None,
) -> ReportPaths:
    """Write the standard report for ``runs`` (run directories or directories of runs).

    Args:
        baseline: a run directory (its method is the baseline) or a method (experiment) name;
            default: the first method.
        appendix: further sections and figures (e.g. a tuning study).

    Returns:
        The written paths; ``table`` is the results frame (``method, metric, mean, ci_low,
        ci_high, std, n, seeds``) and ``tests`` holds ``baseline``, ``methods``, ``metrics``
        and ``rows`` (the paired tests as dicts).

    Raises:
        RecsysError: unfinished runs, runs on different protocols, seeds of one method that
            differ in another setting, an unknown baseline.
    """
    from recsys.api import TrainedRun

    records = load_runs(list(runs))
    records = list({rec.dir.resolve(): rec for rec in records}.values())
    protocol = comparable_protocol(records)
    methods = group_methods(records)
    names = [m.name for m in methods]
    base = _baseline_name(baseline, records, names)
    metrics = resolve_metrics(records, None)
    results = results_frame(methods, metrics)
    per_user = seed_averaged(methods, metrics)
    tests = tests_frame(per_user, base, metrics) if len(methods) > 1 else None
    try:
        spec: Any = TrainedRun(records[0].dir).spec()
        groups: Cohorts | str = cohorts(methods, per_user, spec, _largest_k(metrics))
    except (RecsysError, KeyError, OSError) as e:  # the runs' dataset cannot be loaded here
        spec, groups = None, f"Cohorts and list statistics need the runs' dataset: {e}"

    extra = appendix or Appendix()
    figures = {"metric_vs_k.png": metric_vs_k_png(methods, plotted_families(metrics))}
    monitor = str(records[0].config.get("train", {}).get("monitor", "ndcg@20"))
    curves = training_curves_png(methods, monitor)
    if curves is not None:
        figures["training_curves.png"] = curves
    auroc = noise_auroc_png({"": {m.name: [r.history() for r in m.runs] for m in methods}})
    if auroc is not None:
        figures["noise_auroc.png"] = auroc
    figures.update(extra.figures)

    blocks = [_results_block(results, names, metrics)]
    if tests is not None:
        blocks.append(_tests_block(tests, base))
    blocks.append(_cost_block(methods))
    card = protocol_card(
        [(m.name, m.runs) for m in methods], protocol, metrics, base, _statistics(base)
    ) + _data_card(spec)
    cohort_blocks = (
        _cohort_blocks(groups, names)
        if isinstance(groups, Cohorts)
        else (TableBlock("Unavailable", [], [], notes=(groups,)),)
    )
    dataset = records[0].config.get("data", {}).get("name", "?")
    doc = Document(
        title=title,
        intro=(
            f"{len(records)} runs of {len(names)} methods on {dataset}; test metrics, mean "
            f"± 95% CI over model seeds"
            + (f"; paired per-user tests against {base}." if tests is not None else "."),
            *extra.intro,
        ),
        tables=blocks,
        sections=(("Cohorts and lists", cohort_blocks), *extra.sections),
        figures=figures,
        protocol=card,
    )
    info: dict[str, Any] = {
        "baseline": base,
        "methods": names,
        "metrics": list(metrics),
        "rows": [] if tests is None else tests.to_dicts(),
    }
    paths = write_report(out_dir, figures, results, to_markdown(doc), to_html(doc), info)
    tables = {"results": results}
    if isinstance(groups, Cohorts):
        tables |= {"cohorts": groups.users, "lists": groups.items}
    if tests is not None:
        tables["tests"] = tests
    for name, frame in tables.items():
        with atomic.atomic_path(out_dir / f"{name}.parquet") as tmp:
            frame.write_parquet(tmp)
        if name != "results":  # results.csv is written by write_report
            with atomic.atomic_path(out_dir / f"{name}.csv") as tmp:
                frame.write_csv(tmp)
    return paths


def plotted_families(metrics: tuple[str, ...]) -> tuple[str, ...]:
    """Metric names (before ``@``) for the metric-vs-K figure: recall and NDCG."""
    return tuple(dict.fromkeys(m.split("@")[0] for m in plotted_metrics(metrics)))


def _largest_k(metrics: tuple[str, ...]) -> tuple[str, ...]:
    k = max(int(m.split("@")[1]) for m in metrics)
    return tuple(m for m in metrics if m.endswith(f"@{k}"))


def _baseline_name(baseline: Path | str | None, records: list[Any], names: list[str]) -> str:
    if baseline is None:
        return names[0]
    if isinstance(baseline, Path) and (baseline / "manifest.json").is_file():
        for rec in records:
            if rec.dir.resolve() == baseline.resolve():
                return str(rec.config.get("name", rec.dir.name))
        raise RecsysError(f"--baseline {baseline} is not among the reported runs")
    if str(baseline) not in names:
        raise RecsysError(f"baseline {str(baseline)!r} is not among the methods {names}")
    return str(baseline)


def _fmt_ci(row: dict[str, Any]) -> str:
    if row["n"] < 2 or row["ci_low"] is None or math.isnan(row["ci_low"]):
        return f"{row['mean']:.4f}"
    return f"{row['mean']:.4f} ± {row['ci_high'] - row['mean']:.4f}"


def _results_block(results: pl.DataFrame, names: list[str], metrics: tuple[str, ...]) -> TableBlock:
    cells = {(r["method"], r["metric"]): r for r in results.iter_rows(named=True)}
    best = {m: max(cells[(n, m)]["mean"] for n in names) for m in metrics}
    rows, bold = [], set()
    for i, name in enumerate(names):
        row = [name, str(cells[(name, metrics[0])]["n"])]
        for j, metric in enumerate(metrics, start=2):
            r = cells[(name, metric)]
            row.append(_fmt_ci(r))
            if math.isclose(r["mean"], best[metric], rel_tol=1e-9, abs_tol=1e-12):
                bold.add((i, j))
        rows.append(row)
    return TableBlock(
        "Methods",
        ["method", "seeds", *metrics],
        rows,
        frozenset(bold),
        (
            "Test metrics: mean ± half-width of the two-sided 95% t interval over model seeds "
            "(the mean alone for one seed); best mean per column in bold.",
        ),
    )


def _cost_block(methods: list[Any]) -> TableBlock:
    rows = []
    for m in methods:
        epochs = [float(r.results.get("epochs_run", 0)) for r in m.runs]
        seconds = [float(r.results.get("train_seconds", 0.0)) for r in m.runs]
        per_epoch = [s / e for s, e in zip(seconds, epochs, strict=True) if e > 0]
        rows.append(
            [
                m.name,
                f"{sum(epochs) / len(epochs):.1f}",
                f"{sum(seconds) / len(seconds):.2f}",
                f"{sum(per_epoch) / len(per_epoch):.3f}" if per_epoch else "—",
                str(m.runs[0].manifest.get("device", "?")),
            ]
        )
    return TableBlock(
        "Training cost",
        ["method", "epochs", "train s", "s / epoch", "device"],
        rows,
        notes=(
            "Means over seeds. train s: training time (sampling, steps; validation excluded); "
            "closed-form models (no epochs) report their fit time.",
        ),
    )


def _tests_block(tests: pl.DataFrame, base: str) -> TableBlock:
    rows = []
    for r in tests.iter_rows(named=True):
        rows.append(
            [
                r["method"],
                r["metric"],
                f"{r['delta']:+.4f}",
                f"{r['d_z']:+.3f}",
                *(
                    f"{r[f'p_{t}_holm']:.2g}" + ("*" if r[f"p_{t}_holm"] < ALPHA else "")
                    for t in ("t", "wilcoxon", "perm")
                ),
                str(r["users"]),
            ]
        )
    return TableBlock(
        f"Paired per-user tests against {base}",
        ["method", "metric", "Δ", "d_z", "t-test p", "Wilcoxon p", "permutation p", "users"],
        rows,
        notes=(
            f"Δ = mean over users of (method − {base}), each user's value averaged over the "
            "method's seeds; d_z = Δ / sd of the differences. p: two-sided paired t-test, "
            "Wilcoxon signed-rank (zeros kept, zsplit) and sign-flip permutation test (exact "
            "up to 16 users, else 20,000 seeded permutations), each Holm-corrected over all "
            f"{tests.height} comparisons of this report; * Holm p < {ALPHA}.",
        ),
    )


def _cohort_blocks(groups: Cohorts, names: list[str]) -> tuple[TableBlock, ...]:
    metrics = [c for c in groups.users.columns if "@" in c]
    cohort_names = list(dict.fromkeys(groups.users["cohort"].to_list()))
    cells = {(r["method"], r["cohort"]): r for r in groups.users.iter_rows(named=True)}
    header = ["cohort (train interactions)", "users"]
    header += [f"{n}: {m}" for m in metrics for n in names]
    rows = []
    for c in cohort_names:
        first = cells[(names[0], c)]
        row = [c, str(first["users"])]
        row += [f"{cells[(n, c)][m]:.4f}" for m in metrics for n in names]
        rows.append(row)
    users = TableBlock(
        "Users by activity quartile",
        header,
        rows,
        notes=(
            "Quartiles of the number of train interactions among the evaluated users; "
            "per-user test metrics averaged over seeds, then over the cohort.",
        ),
    )
    k = groups.k
    item_rows = [
        [
            r["method"],
            f"{r['head_recall']:.4f}",
            f"{r['tail_recall']:.4f}",
            f"{r['coverage']:.4f}",
            f"{r['novelty']:.3f}",
            f"{r['arp']:.4f}",
            f"{r['head_share']:.4f}",
            f"{r['gini']:.4f}",
        ]
        for r in groups.items.iter_rows(named=True)
    ]
    items = TableBlock(
        f"Head and tail items, recommended lists (top-{k})",
        [
            "method",
            f"head recall@{k}",
            f"tail recall@{k}",
            "coverage",
            "novelty",
            "ARP",
            "head share",
            "Gini",
        ],
        item_rows,
        notes=(
            f"Head: the {groups.head_items} most popular of {groups.n_items} items in train "
            "(20%). head/tail recall: recall@K on each group's test items (users with such "
            "items). coverage: distinct recommended items / catalogue; novelty: mean "
            "−log2(train users of the item / train users); ARP: mean share of train users who "
            "had the recommended item; head share: share of recommended slots that are head "
            "items; Gini of how often each catalogue item is recommended. Means over seeds.",
        ),
    )
    return users, items


def _statistics(base: str) -> str:
    return (
        "mean ± 95% t interval over seeds; per-user values averaged over seeds, paired "
        f"with {base} on the users both evaluated; t-test, Wilcoxon signed-rank (zsplit), "
        "sign-flip permutation; Holm over all comparisons of the report, per test; "
        "d_z = mean difference / sd"
    )


def _data_card(spec: Any) -> list[tuple[str, str]]:
    if spec is None:
        return []
    total = spec.card.get("n_interactions")
    return [
        (
            "data card",
            f"{spec.n_users} users, {spec.n_items} items; train/valid/test "
            f"{len(spec.train)}/{len(spec.valid)}/{len(spec.test)} interactions"
            + (f"; {total} before splitting" if total is not None else ""),
        )
    ]
