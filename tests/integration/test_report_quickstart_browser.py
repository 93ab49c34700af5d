"""The quickstart's report as a reader sees it: rendered by headless Chromium, it shows
most-popular, MF and LightGCN with their paired-test p-values and the cohort table."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import polars as pl

from recsys.report.browser import png_is_blank, render


def test_quickstart_report_in_a_browser(quickstart: Path, chromium: str) -> None:
    out = quickstart / "reports" / "quickstart"
    png = out / "screenshot.png"
    text = render(out / "report.html", png, width=1280, height=2400)
    assert not png_is_blank(png)
    target = os.environ.get("RECSYS_REPORT_SCREENSHOT")  # docs/report_screenshot.png
    if target:
        shutil.copyfile(png, target)

    results = pl.read_csv(out / "results.csv")
    for row in results.filter(pl.col("metric") == "ndcg@20").iter_rows(named=True):
        assert f"{row['method']} 1 " in text and f"{row['mean']:.4f}" in text, row
    tests = pl.read_csv(out / "tests.csv")
    assert set(tests["method"]) == {"mf", "lightgcn"}  # against most-popular
    for row in tests.iter_rows(named=True):
        shown = f"{row['p_t_holm']:.2g}" + ("*" if row["p_t_holm"] < 0.05 else "")
        assert f"{row['method']} {row['metric']} {row['delta']:+.4f}" in text, row
        assert shown in text, row
    assert "Users by activity quartile" in text
    cohorts = pl.read_csv(out / "cohorts.csv")
    assert cohorts["cohort"].n_unique() == 4
    for row in cohorts.filter(pl.col("method") == "lightgcn").iter_rows(named=True):
        assert f"{row['cohort']} {row['users']} " in text, row
        assert f"{row['ndcg@20']:.4f}" in text, row
    lists = pl.read_csv(out / "lists.csv")
    pop = lists.filter(pl.col("method") == "pop").row(0, named=True)
    assert pop["head_share"] == 1.0 and pop["tail_recall"] == 0.0  # popularity ranks the head
