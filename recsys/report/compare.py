"""The compare report: methods (experiment names) × test metrics, mean ± std over seeds, paired
per-user tests against a baseline method with Holm's correction.

* **Methods.** A method is an experiment name (``config["name"]``); its runs are its seeds. The
  seeds of one method must agree on every config section in :data:`METHOD_CONFIG_KEYS`
  (``train.device`` excepted) and may not repeat a seed. All runs share one data protocol
  (:func:`recsys.report.runs_loader.comparable_protocol`: data hash, split, cleaning, K set,
  masking, NDCG and averaging conventions).
* **Row order.** First appearance among the runs, except that an ablation
  ``<base>-no-<x>`` (e.g. ``cm3-no-kg``) is placed right after its base method ``<base>``
  when that method is reported too (ablations of one base keep their first-appearance
  order). The baseline defaults to the first row.
* **Seed summary.** For each method and metric: ``mean`` of the runs' test values
  (``results.json``), the sample standard deviation ``std`` (``ddof = 1``; null, shown "—",
  for one seed), the number of seeds ``n`` and the seeds.
* **Paired test.** For each method other than the baseline and each metric: every user's
  per-user test value (``per_user_test.parquet``) is averaged over the method's seeds, likewise
  over the baseline's seeds, and the users present in both are paired
  (:func:`recsys.report.denoise_stats.seed_mean_per_user`). With ``d_u = x_u - y_u``:
  ``Δ = mean(d)``, ``d_z = Δ / sd(d)`` and ``p`` the two-sided paired t-test
  (:func:`recsys.report.denoise_stats.paired_test`). Holm's correction runs over the
  comparisons of one metric (every non-baseline method against the baseline).

Writes ``report.md``, ``report.html`` (figure embedded), ``results.csv`` (long format: one row
per method and metric) and ``compare_means.png``. Rendering lives in
:mod:`recsys.report.compare_render`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from recsys.errors import RecsysError
from recsys.report.build import ReportPaths, write_report
from recsys.report.compare_render import (
    FIGURE_NAME,
    means_png,
    protocol_card,
    results_block,
    tests_block,
)
from recsys.report.denoise_render import Document, TableBlock, to_html, to_markdown
from recsys.report.denoise_stats import paired_test, seed_mean_per_user
from recsys.report.runs_loader import (
    RunRecord,
    comparable_protocol,
    first_difference,
    load_runs,
    per_user_metrics,
    seed_config,
)
from recsys.report.tables import holm, metric_columns

METHOD_CONFIG_KEYS = ("data", "model", "losses", "sampler", "train", "eval")
"""Config sections the seeds of one method must agree on (``train.device`` excepted)."""

DEFAULT_METRIC_FAMILIES = ("recall", "ndcg")
"""Metric families tabulated by default (every K in ``results.json``)."""

ABLATION_MARK = "-no-"
"""``<base>-no-<x>`` names an ablation of method ``<base>``."""

TABLE_SCHEMA = pl.Schema(
    {
        "method": pl.String,
        "metric": pl.String,
        "mean": pl.Float64,
        "std": pl.Float64,
        "n": pl.Int64,
        "seeds": pl.String,
        "delta": pl.Float64,
        "effect_dz": pl.Float64,
        "p": pl.Float64,
        "p_holm": pl.Float64,
        "users": pl.Int64,
    }
)
"""Columns of ``results.csv`` (and of :attr:`ReportPaths.table`)."""


@dataclass(frozen=True)
class Method:
    """One experiment name and its runs (seeds), in the order given."""

    name: str
    runs: tuple[RunRecord, ...]

    @property
    def seeds(self) -> list[int]:
        return [int(r.config.get("seed", 0)) for r in self.runs]


@dataclass(frozen=True)
class Appendix:
    """What another stage adds to a compare report."""

    intro: tuple[str, ...] = ()
    sections: tuple[tuple[str, tuple[TableBlock, ...]], ...] = ()
    figures: dict[str, bytes] = field(default_factory=dict)


def build_compare_report(
    runs: list[Path],
    out_dir: Path,
    baseline: str | None = None,
    title: str = "Method comparison",
    metrics: tuple[str, ...] | None = None,
    appendix: Appendix | None = None,
) -> ReportPaths:
    """Write the compare report for ``runs`` (run directories or directories of runs).

    Args:
        runs: finished runs; the same directory named twice counts once.
        out_dir: output directory.
        baseline: experiment name the paired tests compare against; default the first row.
        title: report title.
        metrics: test metrics to tabulate (each in every run's ``results.json`` and
            ``per_user_test.parquet``); default every ``recall@K`` and ``ndcg@K`` that all
            runs report, recall first, K ascending. The first two are plotted.
        appendix: further intro lines, sections and figures (e.g. a tuning study's).

    Returns:
        The written paths; ``table`` is the ``results.csv`` frame (columns
        :data:`TABLE_SCHEMA`; the test columns are null on the baseline's rows) and ``tests``
        holds ``baseline``, ``metrics``, ``methods`` (row order) and ``rows`` (the paired
        tests as dicts).

    Raises:
        RecsysError: unfinished runs, runs on different data protocols, seeds of one method
            whose configs differ (naming both runs and the key) or that repeat a seed, an
            unknown baseline (listing the methods), a metric missing from a run.
    """
    records = load_runs(list(runs))
    records = list({rec.dir.resolve(): rec for rec in records}.values())
    protocol = comparable_protocol(records)
    methods = group_methods(records)
    names = [m.name for m in methods]
    base = names[0] if baseline is None else baseline
    if base not in names:
        raise RecsysError(
            f"compare report: baseline {base!r} is not among the methods (experiment names) {names}"
        )
    chosen = resolve_metrics(records, metrics)
    frames = {rec.dir: per_user_metrics(rec, chosen) for rec in records}
    summary = seed_summary(methods, chosen)
    tests = compare_tests(methods, base, chosen, frames)
    table = _table(summary, tests, names, chosen)

    plotted = plotted_metrics(chosen)
    figures = {FIGURE_NAME: means_png(summary, _run_values(methods, chosen), plotted, names)}
    extra = appendix or Appendix()
    figures.update(extra.figures)
    doc = Document(
        title=title,
        intro=(
            f"{len(records)} runs of {len(names)} methods; test "
            f"{', '.join(chosen)}: mean ± sample standard deviation over seeds"
            + (f"; paired per-user t-tests against {base}." if tests.height else "."),
            *extra.intro,
        ),
        sections=extra.sections,
        tables=[results_block(summary, tests, chosen, names, base)]
        + ([tests_block(tests, names, chosen, base)] if tests.height else []),
        figures=figures,
        protocol=protocol_card([(m.name, m.runs) for m in methods], protocol, chosen, base),
    )
    info: dict[str, Any] = {
        "baseline": base,
        "metrics": list(chosen),
        "methods": names,
        "rows": tests.to_dicts(),
    }
    return write_report(out_dir, figures, table, to_markdown(doc), to_html(doc), info)


def group_methods(records: list[RunRecord]) -> list[Method]:
    """Group runs by experiment name, check that they are seeds, order the methods.

    Raises:
        RecsysError: two runs of one method whose configs differ in
            :data:`METHOD_CONFIG_KEYS` (``train.device`` excepted), or with the same seed.
    """
    groups: dict[str, list[RunRecord]] = {}
    for rec in records:
        name = str(rec.config.get("name", rec.dir.name))
        groups.setdefault(name, []).append(rec)
    for name, members in groups.items():
        first = members[0]
        seen: dict[int, RunRecord] = {}
        for rec in members:
            diff = first_difference(
                seed_config(first, METHOD_CONFIG_KEYS), seed_config(rec, METHOD_CONFIG_KEYS)
            )
            if diff is not None:
                raise RecsysError(
                    f"runs cannot be pooled as seeds of method {name!r}: {diff} differs between "
                    f"{first.dir.name} and {rec.dir.name}"
                )
            seed = int(rec.config.get("seed", 0))
            twin = seen.setdefault(seed, rec)
            if twin is not rec:
                raise RecsysError(
                    f"two runs of method {name!r} with seed {seed}: {twin.dir.name} and "
                    f"{rec.dir.name} (report one of them)"
                )
    return [Method(name, tuple(groups[name])) for name in method_order(list(groups))]


def method_order(names: Sequence[str]) -> list[str]:
    """First-appearance order, with each ablation ``<base>-no-<x>`` moved right after
    ``<base>`` when ``<base>`` is among ``names`` (see the module docstring)."""
    present = set(names)

    def base_of(name: str) -> str | None:
        base = name.split(ABLATION_MARK, 1)[0] if ABLATION_MARK in name else None
        return base if base in present and base != name else None

    order: list[str] = []
    for name in names:
        if base_of(name) is None:
            order.append(name)
            order += [n for n in names if base_of(n) == name]
    return order


def plotted_metrics(metrics: tuple[str, ...]) -> tuple[str, ...]:
    """The two metrics the figure shows: recall and NDCG at their largest K when both are
    reported (``recall@20``, ``ndcg@20``), else the first two."""
    largest: dict[str, tuple[int, str]] = {}
    for m in metrics:
        name, _, k = m.partition("@")
        if name in ("recall", "ndcg") and k.isdigit():
            largest[name] = max(largest.get(name, (-1, m)), (int(k), m))
    if len(largest) == 2:
        return (largest["recall"][1], largest["ndcg"][1])
    return metrics[:2]


def resolve_metrics(records: list[RunRecord], metrics: tuple[str, ...] | None) -> tuple[str, ...]:
    """The metrics to tabulate (see :func:`build_compare_report`).

    Raises:
        RecsysError: no metric to report, or a requested metric missing from a run's results.
    """
    if metrics is None:
        found = tuple(
            m for m in metric_columns(records) if m.split("@")[0] in DEFAULT_METRIC_FAMILIES
        )
        if not found:
            raise RecsysError(
                "compare report: the runs share no test recall@K or ndcg@K in results.json "
                "(name the metrics explicitly)"
            )
        return found
    if not metrics:
        raise RecsysError("compare report: no metrics to report")
    for rec in records:
        values = rec.results.get("test", {})
        for metric in metrics:
            if metric not in values:
                raise RecsysError(
                    f"{rec.dir}: results.json has no test {metric!r} (has {sorted(values)})"
                )
    return tuple(dict.fromkeys(metrics))


def seed_summary(methods: list[Method], metrics: tuple[str, ...]) -> pl.DataFrame:
    """One row per (method, metric), methods in the given order then metrics in the given
    order: ``method, metric, mean, std, n, seeds`` (seeds ascending, space-separated)."""
    return (
        _run_values(methods, metrics)
        .group_by("method", "metric", maintain_order=True)
        .agg(
            pl.col("value").mean().alias("mean"),
            pl.col("value").std(ddof=1).alias("std"),
            pl.len().cast(pl.Int64).alias("n"),
            pl.col("seed").sort().cast(pl.String).str.join(" ").alias("seeds"),
        )
    )


def compare_tests(
    methods: list[Method],
    baseline: str,
    metrics: tuple[str, ...],
    frames: dict[Path, pl.DataFrame],
) -> pl.DataFrame:
    """Paired per-user tests of every method against ``baseline``, one row per (method ≠
    baseline, metric): ``method, metric, delta, effect_dz, p, p_holm, users``; Holm over the
    methods of one metric. ``frames`` maps a run directory to its per-user test frame."""
    base = next(m for m in methods if m.name == baseline)
    rows = []
    for metric in metrics:
        base_values = seed_mean_per_user([frames[r.dir] for r in base.runs], metric)
        comparisons: list[dict[str, Any]] = []
        for method in methods:
            if method.name == baseline:
                continue
            ours = seed_mean_per_user([frames[r.dir] for r in method.runs], metric)
            joined = ours.join(base_values.rename({metric: "_base"}), on="user_idx", how="inner")
            delta, dz, p = paired_test(joined[metric].to_numpy(), joined["_base"].to_numpy())
            comparisons.append(
                {
                    "method": method.name,
                    "metric": metric,
                    "delta": delta,
                    "effect_dz": dz,
                    "p": p,
                    "users": joined.height,
                }
            )
        adjusted = holm([float(c["p"]) for c in comparisons])
        rows += [{**c, "p_holm": q} for c, q in zip(comparisons, adjusted, strict=True)]
    schema = {k: TABLE_SCHEMA[k] for k in ("method", "metric", "delta", "effect_dz", "p")}
    return pl.DataFrame(rows, schema={**schema, "users": pl.Int64, "p_holm": pl.Float64})


def _run_values(methods: list[Method], metrics: tuple[str, ...]) -> pl.DataFrame:
    """``method, metric, seed, value``: each run's test value, methods then metrics in order."""
    rows = [
        {
            "method": m.name,
            "metric": metric,
            "seed": seed,
            "value": float(rec.results["test"][metric]),
        }
        for m in methods
        for metric in metrics
        for rec, seed in zip(m.runs, m.seeds, strict=True)
    ]
    schema = {"method": pl.String, "metric": pl.String, "seed": pl.Int64, "value": pl.Float64}
    return pl.DataFrame(rows, schema=schema)


def _table(
    summary: pl.DataFrame, tests: pl.DataFrame, order: list[str], metrics: tuple[str, ...]
) -> pl.DataFrame:
    rank = pl.DataFrame(
        {"method": order, "_m": list(range(len(order)))},
        schema={"method": pl.String, "_m": pl.Int64},
    )
    metric_rank = pl.DataFrame(
        {"metric": list(metrics), "_k": list(range(len(metrics)))},
        schema={"metric": pl.String, "_k": pl.Int64},
    )
    return (
        summary.join(tests, on=["method", "metric"], how="left")
        .join(rank, on="method")
        .join(metric_rank, on="metric")
        .sort("_m", "_k")
        .select(list(TABLE_SCHEMA))
        .cast(TABLE_SCHEMA)
    )
