"""Report output: the written paths, atomic writing of the files, protocol-card lines.

The standard report itself is :mod:`recsys.report.standard`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from recsys import atomic


@dataclass(frozen=True)
class ReportPaths:
    markdown: Path
    html: Path
    csv: Path
    table: pl.DataFrame
    tests: dict[str, Any]


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
