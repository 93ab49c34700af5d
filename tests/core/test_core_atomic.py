"""Atomic writes leave the old file or the new one, never a partial file."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys import atomic


def test_atomic_path_replaces_on_success(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    with atomic.atomic_path(target) as tmp:
        tmp.write_text("new")
        assert target.read_text() == "old"
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_path_keeps_old_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_dir(tmp_path: Path) -> None:
    target = tmp_path / "d"
    with pytest.raises(RuntimeError), atomic.atomic_dir(target) as tmp:
        (tmp / "x").write_text("1")
        raise RuntimeError
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic.atomic_dir(target) as tmp:
        (tmp / "x").write_text("1")
    assert (target / "x").read_text() == "1"
    with atomic.atomic_dir(target) as tmp:
        (tmp / "y").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["y"]  # replaced, old copy removed
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


def test_atomic_dir_keeps_an_entry_completed_meanwhile(tmp_path: Path) -> None:
    """A content-keyed cache entry finished by another process while we built ours is kept
    (readers of it are never pulled from under), and our copy is discarded."""
    target = tmp_path / "entry"
    with atomic.atomic_dir(target, replace=False) as mine:
        (mine / "v").write_text("mine")
        with atomic.atomic_dir(target) as theirs:  # another builder finishes first
            (theirs / "v").write_text("theirs")
        reader = (target / "v").open()
    assert reader.read() == "theirs" and (target / "v").read_text() == "theirs"
    reader.close()
    assert [p.name for p in tmp_path.iterdir()] == ["entry"]
