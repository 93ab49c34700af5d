"""The HTML report in a real browser: headless Chromium renders ``report.html`` and the test
reads the rendered page (screenshot pixels, DOM text), not the source. Plus the text
extraction, the blank-screenshot check and the browser error paths on synthetic inputs.

The browser tests need Chromium (fixture ``chromium`` in tests/conftest.py: skip locally
without it, fail under CI). ``RECSYS_REPORT_SCREENSHOT=docs/report_screenshot.png`` also
copies the screenshot there (the one kept in docs/).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import time
from pathlib import Path
from typing import Any

import matplotlib.image as mpimg
import numpy as np
import polars as pl
import pytest

from recsys.errors import RecsysError
from recsys.report.browser import (
    CHROMIUM_VAR,
    find_chromium,
    png_is_blank,
    png_rgb8,
    render,
    visible_text,
)
from recsys.report.build import ReportPaths
from recsys.report.standard import build_report
from tests.report.fake_runs import toy_data

WIDTH, HEIGHT = 1280, 1800
TITLE = "Toy runs & baselines"
KS = (10, 20)
# name -> (model seed, mean shift of the per-user values): three methods, three line colours.
RUNS = {"bpr": (0, 0.0), "lightgcn": (0, 0.04), "cm3": (1, 0.09)}
# matplotlib's first three cycle colours: one line per run in both figures.
LINE_COLOURS = {"C0": (0x1F, 0x77, 0xB4), "C1": (0xFF, 0x7F, 0x0E), "C2": (0x2C, 0xA0, 0x2C)}
MIN_LINE_PIXELS = 150


def make_run(root: Path, name: str, seed: int, shift: float, n_users: int = 40) -> Path:
    """A finished run with per-user metrics, results (their means) and a 6-epoch history."""
    rng = np.random.default_rng(len(name) * 100 + seed)
    base = rng.uniform(0.05, 0.35, n_users)
    values = {
        f"{metric}@{k}": np.clip(base * scale * (1 + k / 40) + shift, 0.0, 1.0)
        for metric, scale in (("recall", 1.0), ("ndcg", 0.7))
        for k in KS
    }
    run = root / f"{name}-s{seed}"
    run.mkdir(parents=True)
    config: dict[str, Any] = {
        "name": name,
        "seed": seed,
        "data": toy_data(),
        "model": {"name": name, "dim": 8},
        "losses": [{"name": "bpr", "reg_weight": 0.0}],
        "sampler": {"name": "user"},
        "train": {"epochs": 6, "lr": 1e-3, "batch_size": 64, "monitor": "ndcg@20"},
        "eval": {
            "ks": list(KS),
            "metrics": ["recall", "ndcg"],
            "idcg": "truncated",
            "average": "evaluated",
            "test_mask": "train_valid",
        },
    }
    test = {metric: float(v.mean()) for metric, v in values.items()}
    results = {
        "valid": test,
        "test": test,
        "test_users": n_users,
        "data": {"name": "toy", "hash": "hash-toy", "protocol": {}},
    }
    manifest = {"run": run.name, "status": "done", "data_hash": "hash-toy", "device": "cpu"}
    for file, obj in (("config.json", config), ("manifest.json", manifest)):
        (run / file).write_text(json.dumps(obj))
    (run / "results.json").write_text(json.dumps(results))
    history = [{"epoch": e, "valid/ndcg@20": test["ndcg@20"] * (1 - 0.5**e)} for e in range(1, 7)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in history))
    pl.DataFrame({"user_idx": np.arange(n_users, dtype=np.int32), **values}).write_parquet(
        run / "per_user_test.parquet"
    )
    return run


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> ReportPaths:
    root = tmp_path_factory.mktemp("browser")
    runs = [make_run(root / "runs", name, seed, shift) for name, (seed, shift) in RUNS.items()]
    return build_report(runs, root / "report", title=TITLE)


@pytest.fixture(scope="module")
def rendered(chromium: str, report: ReportPaths) -> tuple[Path, str]:
    png = report.html.parent / "screenshot.png"
    text = render(report.html, png, width=WIDTH, height=HEIGHT)
    target = os.environ.get("RECSYS_REPORT_SCREENSHOT")
    if target:
        shutil.copyfile(png, target)
    return png, text


def line_pixels(png: Path) -> dict[str, int]:
    """Pixels within 16 levels per channel of each matplotlib line colour."""
    rgb = png_rgb8(png).astype(np.int16)
    return {
        name: int((np.abs(rgb - np.array(colour)).max(axis=-1) <= 16).sum())
        for name, colour in LINE_COLOURS.items()
    }


def test_screenshot_is_a_non_blank_png_of_the_window(rendered: tuple[Path, str]) -> None:
    png, _ = rendered
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png_rgb8(png).shape == (HEIGHT, WIDTH, 3)
    assert not png_is_blank(png)


def test_rendered_text_shows_title_and_every_table_row(
    rendered: tuple[Path, str], report: ReportPaths
) -> None:
    _, text = rendered
    assert f"{TITLE} 3 runs of 3 methods" in text  # the <h1>, entity unescaped by the browser
    table = pl.read_csv(report.csv)
    assert table["method"].unique(maintain_order=True).to_list() == ["bpr", "lightgcn", "cm3"]
    assert "method seeds recall@10 recall@20 ndcg@10 ndcg@20" in text
    for name in ("bpr", "lightgcn", "cm3"):  # one seed each: the mean alone
        cells = " ".join(
            f"{table.filter((pl.col('method') == name) & (pl.col('metric') == m))['mean'][0]:.4f}"
            for m in ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
        )
        assert f"{name} 1 {cells}" in text, name
    # The paired tests against bpr, as the page formats them.
    assert "method metric Δ d_z t-test p Wilcoxon p permutation p users" in text
    for t in report.tests["rows"]:
        assert f"{t['method']} {t['metric']} {t['delta']:+.4f} {t['d_z']:+.3f}" in text, t
        assert f"{t['p_t_holm']:.2g}" in text
    assert "users evaluated (test) 40" in text and "K 10, 20" in text
    assert "Cohorts and list statistics need the runs' dataset" in text  # fake runs: no data


def test_embedded_figures_are_drawn(rendered: tuple[Path, str], report: ReportPaths) -> None:
    png, _ = rendered
    page = report.html.read_text()
    assert page.count("<img") == 2  # metric vs K and training curves
    counts = line_pixels(png)
    assert min(counts.values()) >= MIN_LINE_PIXELS, counts


def test_broken_images_fail_the_figure_check(
    chromium: str, report: ReportPaths, tmp_path: Path
) -> None:
    """The control: the same page with its image data cut shows no line colours."""
    page = report.html.read_text()
    broken, n = re.subn(
        r"data:image/png;base64,[A-Za-z0-9+/=]+", "data:image/png;base64,AAAA", page
    )
    assert n == 2
    html = tmp_path / "broken.html"
    html.write_text(broken)
    png = tmp_path / "broken.png"
    text = render(html, png, width=WIDTH, height=HEIGHT)
    assert TITLE in text and not png_is_blank(png)
    assert max(line_pixels(png).values()) < MIN_LINE_PIXELS


# --- no browser needed ----------------------------------------------------------------------


def test_visible_text_drops_hidden_parts_and_unescapes() -> None:
    dom = (
        "<html><head><title>T</title><style>td{color:red}</style>"
        "<script>var x = '<b>0.9999</b>';</script></head>"
        "<body><h1>A &amp; B</h1><table><tr><th>run</th><th>ndcg@20</th></tr>"
        "<tr><td>bpr</td><td><b>0.1234</b></td><td>0.5</td></tr></table>"
        "<p>x&nbsp;&lt;\n\t y</p><p>0.1<span>2</span>3 &#x3b1;</p>"
        "<template>hidden</template><img alt='not text' src='x.png'/>tail</body></html>"
    )
    assert visible_text(dom) == "A & B run ndcg@20 bpr 0.1234 0.5 x < y 0.123 α tail"
    assert visible_text("") == ""


def _write_png(path: Path, image: np.ndarray) -> Path:
    mpimg.imsave(path, image)
    return path


def test_png_is_blank(tmp_path: Path) -> None:
    white = np.ones((100, 200, 3))
    assert png_is_blank(_write_png(tmp_path / "white.png", white))
    grey = np.full((100, 200, 3), 0.4)
    assert png_is_blank(_write_png(tmp_path / "grey.png", grey))
    stray = white.copy()
    stray[5, 7] = 0.0  # 1 of 20,000 pixels: within tol=1e-4 * 20,000 = 2
    assert png_is_blank(_write_png(tmp_path / "stray.png", stray))
    assert not png_is_blank(tmp_path / "stray.png", tol=0.0)
    stray[50, 50] = stray[60, 60] = 0.0  # 3 pixels > 2
    assert not png_is_blank(_write_png(tmp_path / "stray3.png", stray))
    square = white.copy()
    square[10:20, 10:20] = (0.2, 0.6, 1.0)
    path = _write_png(tmp_path / "square.png", square)
    assert not png_is_blank(path)
    assert png_is_blank(path, tol=0.005)  # 100 of 20,000 pixels
    # Alpha is ignored: one colour under varying transparency is blank.
    rgba = np.ones((100, 200, 4))
    rgba[..., 3] = np.linspace(0.2, 1.0, 200)
    assert png_is_blank(_write_png(tmp_path / "alpha.png", rgba))
    rgb = png_rgb8(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (100, 200, 3)
    assert tuple(rgb[15, 15]) == (51, 153, 255) and tuple(rgb[0, 0]) == (255, 255, 255)


def _fake_browser(directory: Path, name: str, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    exe = directory / name
    exe.write_text("#!/bin/sh\n" + body + "\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe


def test_find_chromium_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    monkeypatch.delenv(CHROMIUM_VAR, raising=False)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert find_chromium() is None
    chrome = _fake_browser(bin_dir, "google-chrome", "exit 0")
    assert find_chromium() == str(chrome)
    chromium_browser = _fake_browser(bin_dir, "chromium-browser", "exit 0")
    assert find_chromium() == str(chromium_browser)
    chosen = _fake_browser(tmp_path / "elsewhere", "my-chrome", "exit 0")
    monkeypatch.setenv(CHROMIUM_VAR, str(chosen))
    assert find_chromium() == str(chosen)
    monkeypatch.setenv(CHROMIUM_VAR, "/nonexistent/chromium")
    assert find_chromium() is None  # no fallback to the one on PATH


def test_render_errors_are_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = tmp_path / "page.html"
    page.write_text("<html><body>hi</body></html>")
    with pytest.raises(RecsysError, match="no such HTML file"):
        render(tmp_path / "missing.html", tmp_path / "out.png")
    monkeypatch.setenv(CHROMIUM_VAR, "/nonexistent/chromium")
    with pytest.raises(RecsysError, match=r"no headless browser: install .*chromium"):
        render(page, tmp_path / "out.png")
    failing = _fake_browser(
        tmp_path / "bin",
        "failing",
        "echo '[1:2:ERROR:dbus/bus.cc:405] Failed to connect to the bus' >&2\n"
        "echo 'fatal: no display' >&2\nexit 3",
    )
    monkeypatch.setenv(CHROMIUM_VAR, str(failing))
    with pytest.raises(RecsysError, match=r"exit status 3\):\nfatal: no display$"):
        render(page, tmp_path / "out.png")
    silent = _fake_browser(tmp_path / "bin", "silent", "echo '<html></html>'")
    monkeypatch.setenv(CHROMIUM_VAR, str(silent))
    with pytest.raises(RecsysError, match="wrote no screenshot"):
        render(page, tmp_path / "out.png")
    # A hung browser whose child keeps the pipes open: the whole process group is killed.
    slow = _fake_browser(tmp_path / "bin", "slow", "echo starting >&2\nsleep 30 &\nwait")
    monkeypatch.setenv(CHROMIUM_VAR, str(slow))
    start = time.monotonic()
    with pytest.raises(RecsysError, match=r"did not finish rendering .* within 1 s:\nstarting$"):
        render(page, tmp_path / "out.png", timeout=1)
    assert time.monotonic() - start < 10
