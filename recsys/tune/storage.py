"""Where a study lives: a local SQLite file under runs/ by default, or any database URL
(PostgreSQL for many workers on many machines). Trials send heartbeats, so a trial whose worker
died is marked failed instead of running forever."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from recsys.errors import RecsysError


def default_url(runs_dir: Path, name: str) -> str:
    """``sqlite:///<runs_dir>/tune/<name>.db`` (the directory is created)."""
    path = (runs_dir / "tune" / f"{name}.db").resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def shown(url: str) -> str:
    """The URL with its password hidden (for messages and logs)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def open_storage(url: str, heartbeat_seconds: int) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeats every ``heartbeat_seconds``; a running trial without a
    heartbeat for twice that is failed by the next worker that starts a trial.

    Raises:
        RecsysError: a malformed URL, a missing database driver or an unreachable server.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise RecsysError(
            f"tuning storage {url!r} is not a database URL ({e}); expected e.g. "
            "sqlite:///runs/tune/study.db or postgresql+psycopg2://user:pass@host:5432/db"
        ) from None
    backend = parsed.get_backend_name()
    engine_kwargs: dict[str, object] = {"pool_pre_ping": True}
    if backend == "sqlite":
        engine_kwargs["connect_args"] = {"timeout": 120}
        if parsed.database and parsed.database != ":memory:":
            try:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise RecsysError(f"cannot open tuning storage {url}: {e}") from None
    elif backend == "postgresql":
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_seconds,
                grace_period=2 * heartbeat_seconds,
            )
    except ModuleNotFoundError as e:
        raise RecsysError(
            f"tuning storage {shown(url)}: the database driver is not installed ({e.name}); "
            "for PostgreSQL install recsys[postgres]"
        ) from None
    except Exception as e:  # sqlalchemy's connection errors have no common narrow base
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RecsysError(f"cannot open tuning storage {shown(url)}: {first}") from None
