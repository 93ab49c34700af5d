"""Bad input through the CLI: one clear message, exit 2, no traceback, nothing cached."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import run_cli

CSV_HEADER = "user_id,item_id,rating,timestamp\n"


def data_conf(tmp_path: Path, body: str) -> Path:
    conf = tmp_path / "data.toml"
    conf.write_text(body)
    return conf


def csv_conf(tmp_path: Path, path: str, extra: str = "") -> Path:
    return data_conf(
        tmp_path,
        f'name = "toy"\n[source]\nformat = "csv"\npath = "{path}"\n{extra}'
        '[split]\nmethod = "random"\n',
    )


CASES = {
    "missing file": ("", None, "nope.csv"),
    "misnamed column": ("user,item_id,rating,timestamp\n1,2,3,4\n", None, "user_id"),
    "malformed line": (CSV_HEADER + "1,2,3,4\n1,2,3\n2,3,x,y,z\n", None, "line"),
    "nan rating": (CSV_HEADER + "1,2,3,4\n1,3,NaN,5\n", None, "rating"),
    "nan timestamp": (CSV_HEADER + "1,2,3,4\n1,3,4,NaN\n", None, "timestamp"),
    "empty after k-core": (
        CSV_HEADER + "1,2,3,4\n1,3,4,5\n2,2,4,5\n",
        "[clean]\nuser_core = 5\nitem_core = 5\n",
        "k-core",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_csv(tmp_path: Path, case: str) -> None:
    content, extra, needle = CASES[case]
    if case != "missing file":
        (tmp_path / "in.csv").write_text(content)
    conf = csv_conf(tmp_path, "nope.csv" if case == "missing file" else "in.csv", extra or "")
    out = run_cli("data", "prepare", str(conf), cwd=tmp_path)
    assert out.returncode == 2, (case, out.stdout, out.stderr)
    assert needle in out.stderr, (case, out.stderr)
    assert ("nope.csv" if case == "missing file" else "in.csv") in out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    cache = tmp_path / "data" / "cache"
    assert not cache.exists() or not any(p for p in cache.iterdir() if not p.name.startswith("."))


def test_lightgcn_list_with_non_integer_id(tmp_path: Path) -> None:
    d = tmp_path / "lists"
    d.mkdir()
    (d / "train.txt").write_text("0 1 2\n1 2 x3\n")
    (d / "test.txt").write_text("0 3\n1 1\n")
    conf = data_conf(
        tmp_path,
        f'name = "g"\n[source]\nformat = "lightgcn"\npath = "{d}"\n[split]\nmethod = "lightgcn"\n',
    )
    out = run_cli("data", "prepare", str(conf), cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert "train.txt" in out.stderr and "line 2" in out.stderr
    assert "Traceback" not in out.stderr


def test_unknown_data_key(tmp_path: Path) -> None:
    conf = data_conf(tmp_path, 'name = "x"\n[clean]\nusr_core = 3\n')
    out = run_cli("data", "prepare", str(conf), cwd=tmp_path)
    assert out.returncode == 2
    assert "data.toml: unknown key 'clean.usr_core'" in out.stderr
