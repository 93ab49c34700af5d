"""``recsys report``: Markdown + self-contained HTML + CSV tables for a set of runs."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from recsys import atomic
from recsys.errors import RecsysError
from recsys.report.noise_plots import noise_auroc_png
from recsys.report.plots import metric_vs_k_png, training_curves_png
from recsys.report.runs_loader import RunRecord, comparable_protocol, load_runs
from recsys.report.tables import results_table
from recsys.report.text_format import fmt_setting, split_rule


@dataclass(frozen=True)
class ReportPaths:
    markdown: Path
    html: Path
    csv: Path
    table: pl.DataFrame
    tests: dict[str, Any]


def build_report(
    runs: list[Path], out_dir: Path, baseline: Path | None = None, title: str = "recsys report"
) -> ReportPaths:
    """Write ``report.md``, ``report.html`` (plots embedded) and ``results.csv`` to ``out_dir``.

    Runs on different splits or evaluation conventions are refused (see
    :func:`comparable_protocol`). ``baseline`` defaults to the first run.
    """
    records = load_runs(runs)
    protocol = comparable_protocol(records)
    base = records[0]
    if baseline is not None:
        matches = [r for r in records if r.dir.resolve() == baseline.resolve()]
        if not matches:
            raise RecsysError(f"--baseline {baseline} is not among the reported runs")
        base = matches[0]
    table, tests = results_table(records, base if len(records) > 1 else None)
    metrics = tuple(dict.fromkeys(c.split("@")[0] for c in table.columns if "@" in c))
    figures = {
        "metric_vs_k.png": metric_vs_k_png(
            records, tuple(m for m in ("recall", "ndcg") if m in metrics) or metrics[:2]
        )
    }
    monitor = str(base.config.get("train", {}).get("monitor", "ndcg@20"))
    curves = training_curves_png(records, monitor)
    if curves is not None:
        figures["training_curves.png"] = curves
    labels = [r.label for r in records]
    lines = {r.label if labels.count(r.label) == 1 else r.dir.name: [r.history()] for r in records}
    auroc = noise_auroc_png({"": lines})
    if auroc is not None:
        figures["noise_auroc.png"] = auroc
    card = _protocol_card(records, protocol)
    content = _Content(title, table, tests, card, figures)
    return write_report(out_dir, figures, table, _markdown(content), _html(content), tests)


def write_report(
    out_dir: Path,
    figures: dict[str, bytes],
    table: pl.DataFrame,
    markdown: str,
    html: str,
    tests: dict[str, Any],
) -> ReportPaths:
    """Write the figures, ``results.csv``, ``report.md`` and ``report.html``, each atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, png in figures.items():
        with atomic.atomic_path(out_dir / name) as tmp:
            tmp.write_bytes(png)
    csv = out_dir / "results.csv"
    with atomic.atomic_path(csv) as tmp:
        table.write_csv(tmp)
    md, page = out_dir / "report.md", out_dir / "report.html"
    atomic.write_text(md, markdown)
    atomic.write_text(page, html)
    return ReportPaths(md, page, csv, table, tests)


def _protocol_card(records: list[RunRecord], protocol: dict[str, Any]) -> list[tuple[str, str]]:
    first = records[0]
    data = first.config.get("data", {})
    ev = first.config.get("eval", {})
    res = first.results
    dprot = res.get("data", {}).get("protocol", {})
    return [
        ("dataset", f"{data.get('name')} (source {data.get('source', {}).get('path')})"),
        ("data hash", str(protocol["data hash (dataset and split)"])),
        ("cleaning", fmt_setting(data.get("clean"))),
        ("split", fmt_setting(data.get("split"))),
        ("split rule", split_rule(dprot)),
        *eval_protocol_lines(ev),
        ("users evaluated (test)", str(res.get("test_users"))),
        ("model seeds", ", ".join(sorted({str(r.config.get("seed")) for r in records}))),
        ("ties", "broken by lower item index"),
    ]


def eval_protocol_lines(ev: dict[str, Any]) -> list[tuple[str, str]]:
    """Protocol-card lines for an eval config: candidates, masking, NDCG, averaging, K."""
    return [
        ("candidates", "full ranking over all items"),
        (
            "masking",
            "train items (valid: train; test: train + valid)"
            if ev.get("test_mask") == "train_valid"
            else "train items only (valid and test)",
        ),
        (
            "NDCG",
            "binary relevance, IDCG over min(n_test_u, K)"
            if ev.get("idcg") == "truncated"
            else "binary relevance, IDCG over all n_test_u positions (untruncated)",
        ),
        (
            "averaging",
            "mean over evaluated users"
            if ev.get("average") == "evaluated"
            else "sum over evaluated users / all users",
        ),
        ("K", ", ".join(str(k) for k in ev.get("ks", []))),
    ]


def _rows(table: pl.DataFrame, tests: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    cols = [c for c in table.columns if c != "run"]
    best = {c: table[c].max() for c in cols}
    header = ["run", *cols]
    has_tests = bool(tests["rows"])
    if has_tests:
        header += [f"Δ{tests['metric']} p (paired t, Holm)", "effect d_z"]
    body = []
    for row in table.iter_rows(named=True):
        cells = [str(row["run"])]
        for c in cols:
            text = f"{row[c]:.4f}"
            cells.append(f"**{text}**" if row[c] == best[c] else text)
        if has_tests:
            t = tests["rows"].get(row["run"])
            cells += (
                ["baseline", "-"] if t is None else [f"{t['p_holm']:.2g}", f"{t['effect_dz']:+.3f}"]
            )
        body.append(cells)
    return header, body


@dataclass(frozen=True)
class _Content:
    title: str
    table: pl.DataFrame
    tests: dict[str, Any]
    card: list[tuple[str, str]]
    figures: dict[str, bytes]


def _markdown(c: _Content) -> str:
    title, tests, card, figures = c.title, c.tests, c.card, c.figures
    header, body = _rows(c.table, tests)
    lines = [f"# {title}", "", "## Test results", ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(r) + " |" for r in body]
    lines.append("")
    lines.append("Best value per column in bold.")
    if tests["rows"]:
        lines.append(
            f"p: paired t-test of per-user {tests['metric']} against {tests['baseline']}, "
            "Holm-corrected over the comparisons in this table; d_z = mean difference / sd."
        )
    lines += ["", "## Protocol", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in card]
    lines.append("")
    for name in figures:
        lines += [f"![{name}]({name})", ""]
    return "\n".join(lines)


def _html(c: _Content) -> str:
    title, tests, card, figures = c.title, c.tests, c.card, c.figures
    header, body = _rows(c.table, tests)
    esc = html.escape

    def cell(text: str, tag: str = "td") -> str:
        if text.startswith("**"):
            return f"<{tag}><b>{esc(text.strip('*'))}</b></{tag}>"
        return f"<{tag}>{esc(text)}</{tag}>"

    rows = "".join("<tr>" + "".join(cell(c) for c in r) + "</tr>" for r in body)
    head = "<tr>" + "".join(cell(h, "th") for h in header) + "</tr>"
    card_rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in card)
    imgs = "".join(
        f'<figure><img alt="{esc(n)}" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode()}"/></figure>'
        for n, png in figures.items()
    )
    note = (
        f"<p>p: paired t-test of per-user {esc(tests['metric'])} against "
        f"{esc(str(tests['baseline']))}, Holm-corrected; d_z = mean difference / sd.</p>"
        if tests["rows"]
        else ""
    )
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}"
        "table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}"
        "img{max-width:100%}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
        f"<style>{style}</style></head><body><h1>{esc(title)}</h1>"
        f"<h2>Test results</h2><table id='results'>{head}{rows}</table>"
        f"<p>Best value per column in bold.</p>{note}"
        f"<h2>Protocol</h2><table id='protocol'>{card_rows}</table>"
        f"<h2>Figures</h2>{imgs}</body></html>\n"
    )
