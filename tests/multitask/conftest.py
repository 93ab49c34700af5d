"""Multi-task datasets shared by the tests: ml-100k (embedded) and census-income (shared data,
skipped with a reason where ../shared is absent)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from recsys import api
from recsys.experiment import load_data_config
from recsys.spec import DataSpec

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf" / "data"
CENSUS = ROOT / ".." / "shared" / "data" / "census_income_kdd_mmoe" / "census-income.test.gz"


def load(name: str, cache: Path, sets: tuple[str, ...] = ()) -> DataSpec:
    # Machines without the recbole package reuse the ml-100k files already fetched into the
    # repository's default cache (builtin:ml-100k looks in <cache_dir>/builtin).
    fetched = ROOT / "data" / "cache" / "builtin"
    if fetched.is_dir() and not (cache / "builtin").exists():
        shutil.copytree(fetched, cache / "builtin")
    cfg, base = load_data_config(CONF / name, [f"cache_dir={cache}", *sets])
    return api.prepare_data(cfg, base)[1]


@pytest.fixture(scope="session")
def ml100k_mt(tmp_path_factory: pytest.TempPathFactory) -> DataSpec:
    return load("ml-100k-multitask.toml", tmp_path_factory.mktemp("mt-cache"))


@pytest.fixture(scope="session")
def census(tmp_path_factory: pytest.TempPathFactory) -> DataSpec:
    if not CENSUS.resolve().is_file():
        pytest.skip(f"census-income file not found at {CENSUS.resolve()} (../shared/data)")
    return load("census-income.toml", tmp_path_factory.mktemp("census-cache"))
