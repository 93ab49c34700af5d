"""The kNN memory benchmark still runs end to end (tiny size)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "knn_memory.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("knn_memory", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["knn_memory"] = module
    spec.loader.exec_module(module)
    return module


def test_main_reports_every_budget() -> None:
    bench = _load()
    text = bench.main(
        ["--items", "2000", "--dim", "16", "--k", "5", "--budgets", "0.5,4", "--threads", "1"]
    )
    lines = text.splitlines()
    assert "dense 2,000 x 2,000 float32 similarity matrix avoided: 0.0 GB" in lines[1]
    rows = [line.split() for line in lines[3:]]
    assert [r[0] for r in rows] == ["0.5", "4"]
    # chunk = budget // (4 * items); every row has k neighbours.
    assert [int(r[1]) for r in rows] == [65, 524]
    assert all(r[-1] == "10,000" for r in rows)
    assert all(float(r[4]) >= float(r[3]) > 0 for r in rows)  # peak >= before
