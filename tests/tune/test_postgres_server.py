"""The PostgreSQL server for tests marked postgres: plain SQL and an Optuna study on it."""

from __future__ import annotations

import uuid

import optuna
import pytest
import sqlalchemy

pytestmark = pytest.mark.postgres


def test_table_round_trip(postgres_url: str) -> None:
    table = f"recsys_probe_{uuid.uuid4().hex}"
    rows = [{"user_id": 3, "score": 0.25}, {"user_id": 1, "score": -1.5}]
    engine = sqlalchemy.create_engine(postgres_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                sqlalchemy.text(f"create table {table} (user_id integer primary key, score real)")
            )
            connection.execute(
                sqlalchemy.text(f"insert into {table} (user_id, score) values (:user_id, :score)"),
                rows,
            )
        with engine.connect() as connection:
            got = connection.execute(
                sqlalchemy.text(f"select user_id, score from {table} order by user_id")
            ).all()
        assert [tuple(row) for row in got] == [(1, -1.5), (3, 0.25)]
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text(f"drop table {table}"))
        assert table not in sqlalchemy.inspect(engine).get_table_names()
    finally:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text(f"drop table if exists {table}"))
        engine.dispose()


def test_optuna_study_on_postgres(postgres_url: str) -> None:
    name = f"recsys-probe-{uuid.uuid4().hex}"
    storage = optuna.storages.RDBStorage(postgres_url)
    try:
        study = optuna.create_study(study_name=name, storage=storage, direction="minimize")
        study.optimize(lambda trial: trial.suggest_float("x", -1.0, 1.0) ** 2, n_trials=3)

        # Read back through a second storage (own engine): the trials live in the database.
        other = optuna.storages.RDBStorage(postgres_url)
        try:
            reloaded = optuna.load_study(study_name=name, storage=other)
            trials = reloaded.get_trials(deepcopy=False)
        finally:
            other.engine.dispose()
        assert len(trials) == 3
        assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
        for t in trials:
            assert t.value == pytest.approx(t.params["x"] ** 2)
        assert reloaded.best_value == pytest.approx(min(t.params["x"] ** 2 for t in trials))

        optuna.delete_study(study_name=name, storage=storage)
        assert name not in optuna.get_all_study_names(storage=storage)
    finally:
        if name in optuna.get_all_study_names(storage=storage):
            optuna.delete_study(study_name=name, storage=storage)
        storage.engine.dispose()
