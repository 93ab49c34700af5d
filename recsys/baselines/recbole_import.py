"""Import RecBole's top-K lists as an ordinary run directory, evaluated by OUR evaluator.

The worker (:mod:`recsys.baselines.recbole_worker`) leaves, for the valid and the test split,
every evaluated user's full-ranking top-``K`` list (original ids) and RecBole's own metrics.
:func:`import_run` turns them into a run directory like :func:`recsys.api.train` writes:

* ``config.json``: the experiment's resolved config with ``name`` (default
  ``recbole-<model>``), ``model = {"name": "recbole", "model": <RecBole class>, **params}``,
  ``losses = [{"name": "recbole", "loss": ...}]``, ``sampler = {"name": "recbole", ...}`` and
  ``train.epochs`` replaced; ``data`` and ``eval`` are the experiment's, so
  :func:`recsys.report.runs_loader.comparable_protocol` accepts it next to our runs;
* ``manifest.json`` (data hash of the prepared split, ``versions.recbole``), ``metrics.jsonl``
  (RecBole's per-epoch mean batch loss, seconds and validation metrics);
* ``results.json``, ``per_user_valid.parquet``, ``per_user_test.parquet``,
  ``topk_test.parquet``: computed by :func:`recsys.eval.protocol.evaluate` from the lists;
  ``results["recbole"]`` holds RecBole's own numbers, the differences ``ours - RecBole`` and
  the consistency checks below;
* ``recbole/``: the worker's raw output (lists with RecBole's scores, ``recbole.json``, the
  RecBole config and its log).

**List scorer.** A user's listed item at rank ``r`` scores ``K - r + 1``, every other item
``-inf``. Our evaluator masks train items (and valid items at test) with ``-inf`` and takes the
top ``K`` by (score desc, item index asc): since RecBole's lists were built with the same items
masked, no listed item is masked again and the top ``K`` is exactly RecBole's list, in its order
(``-inf`` items after the list are never hits). Our metrics on the lists therefore equal
RecBole's up to float rounding, provided (checked and recorded in ``results["recbole"]
["checks"]``): every user we evaluate has a list (``users_without_list = 0``) and RecBole
evaluates no one else (``extra_list_users = 0``; the export drops valid/test rows of users
without train items for that), and no listed item is one we mask (``masked_listed = 0``: an item
both in the user's train/valid and test rows is history for us but a positive for RecBole).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from torch import Tensor

from recsys import atomic
from recsys.baselines.recbole_models import (
    SAMPLED,
    RecBoleModel,
    check_params,
    list_length,
    resolve_model,
)
from recsys.data.prepare import Prepared
from recsys.errors import DataError, RecsysError
from recsys.eval.config import EvalConfig
from recsys.eval.protocol import EvalResult, evaluate
from recsys.experiment import Experiment
from recsys.models.base import Scorer
from recsys.runs import DONE, new_manifest, read_json, run_id, status
from recsys.spec import DataSpec

log = logging.getLogger(__name__)

SPLITS = ("valid", "test")
RECBOLE_SUBDIR = "recbole"
"""Run subdirectory holding the worker's raw output."""


def run_config(
    exp: Experiment,
    model: RecBoleModel,
    params: Mapping[str, Any],
    epochs: int,
    name: str | None = None,
) -> dict[str, Any]:
    """The ``config.json`` of a RecBole run of ``exp`` (see the module docstring)."""
    out = exp.resolved()
    out["name"] = name or f"recbole-{model.name.lower()}"
    out["model"] = {"name": "recbole", "model": model.name, **check_params(model, params)}
    out["losses"] = [{"name": "recbole", "loss": model.loss}]
    sampling = SAMPLED if model.negative_sampling else {"distribution": "none"}
    out["sampler"] = {"name": "recbole", **sampling}
    out["train"] = {**out["train"], "epochs": epochs}
    return out


def run_dir_for(config: Mapping[str, Any], data_hash: str, runs_dir: str | Path) -> Path:
    """``<runs_dir>/<name>-<hash8>`` as for our runs (config and data hash)."""
    return Path(runs_dir) / run_id(str(config["name"]), dict(config), data_hash)


def read_lists(path: Path, spec: DataSpec, k: int) -> tuple[np.ndarray, np.ndarray]:
    """RecBole's lists as ``(users (n,), items (n, k))`` indices; ``-1`` past a short list.

    Raises:
        DataError: unknown user or item ids, ranks outside ``1..k`` or repeated.
    """
    if not path.is_file():
        raise DataError(f"{path}: no RecBole top-K list file")
    top = pl.read_parquet(path, columns=["user_id", "rank", "item_id"])
    users = pl.DataFrame({"user_id": np.asarray(spec.user_ids).astype(str)}).with_row_index("u")
    items = pl.DataFrame({"item_id": np.asarray(spec.item_ids).astype(str)}).with_row_index("i")
    top = (
        top.with_columns(pl.col("user_id").cast(pl.String), pl.col("item_id").cast(pl.String))
        .join(users, on="user_id", how="left")
        .join(items, on="item_id", how="left")
    )
    unknown = top.filter(pl.col("u").is_null() | pl.col("i").is_null())
    if len(unknown):
        raise DataError(
            f"{path}: {len(unknown)} rows name ids that are not in dataset {spec.name!r}, e.g. "
            f"{unknown.select('user_id', 'item_id').head(3).rows()}"
        )
    bad_rank = top.filter((pl.col("rank") < 1) | (pl.col("rank") > k))
    if len(bad_rank) or top.select("u", "rank").is_duplicated().any():
        raise DataError(f"{path}: ranks must be 1..{k} and unique per user")
    list_users, row = np.unique(top["u"].to_numpy().astype(np.int64), return_inverse=True)
    table = np.full((len(list_users), k), -1, dtype=np.int64)
    table[row, top["rank"].to_numpy().astype(np.int64) - 1] = top["i"].to_numpy()
    return list_users, table


def list_scorer(users: np.ndarray, table: np.ndarray, n_users: int, n_items: int) -> Scorer:
    """A scorer that ranks each user's list first, in list order, and nothing else.

    Item ``table[j, r - 1]`` of user ``users[j]`` scores ``K - r + 1`` (``K = table.shape[1]``);
    every other item, every ``-1`` slot and every user without a list scores ``-inf``.

    Args:
        users: ``(n,)`` user indices with a list.
        table: ``(n, K)`` item indices in rank order, ``-1`` past a short list.
        n_users: number of users.
        n_items: number of items.
    """
    k = table.shape[1]
    row_of = torch.full((n_users,), -1, dtype=torch.int64)
    row_of[torch.as_tensor(users, dtype=torch.int64)] = torch.arange(len(users))
    lists = torch.as_tensor(table, dtype=torch.int64)
    values = torch.arange(k, 0, -1, dtype=torch.float32)  # rank r → K - r + 1

    def score(batch_users: Tensor) -> Tensor:
        rows = row_of[batch_users.cpu()]
        chosen = lists[rows.clamp(min=0)]
        ok = (rows >= 0).unsqueeze(1) & (chosen >= 0)
        out = torch.full((len(rows), n_items), -torch.inf)
        which = torch.arange(len(rows)).unsqueeze(1).expand_as(chosen)
        out[which[ok], chosen[ok]] = values.expand_as(chosen)[ok]
        return out

    return score


def list_checks(spec: DataSpec, split: str, users: np.ndarray, table: np.ndarray) -> dict[str, int]:
    """How far RecBole's lists may differ from what our evaluator sees (all 0 when exact).

    Returns:
        ``users_without_list`` (evaluated by us, no list), ``extra_list_users`` (a list, not
        evaluated by us) and ``masked_listed`` (listed items our evaluator masks: train items,
        and valid items at test).
    """
    evaluated = (spec.eval_users_valid if split == "valid" else spec.eval_users_test).numpy()
    listed = torch.as_tensor(table)
    owner = torch.as_tensor(users).unsqueeze(1).expand_as(listed)
    ok = listed >= 0
    keys = owner[ok] * spec.n_items + listed[ok]
    masked = [spec.train.users * spec.n_items + spec.train.items]
    if split == "test":
        masked.append(spec.valid.users * spec.n_items + spec.valid.items)
    return {
        "users_without_list": int((~np.isin(evaluated, users)).sum()),
        "extra_list_users": int((~np.isin(users, evaluated)).sum()),
        "masked_listed": int(torch.isin(keys, torch.cat(masked)).sum()),
    }


def _write_split(run_dir: Path, spec: DataSpec, res: EvalResult) -> None:
    """``per_user_<split>.parquet`` and, for test, ``topk_test.parquet`` (as our runs)."""
    frame = pl.DataFrame(
        {
            "user_idx": res.users.astype(np.int32),
            "user_id": spec.user_ids[res.users],
            **dict(res.per_user.items()),
        }
    )
    frame.write_parquet(run_dir / f"per_user_{res.split}.parquet")
    if res.split == "test" and res.topk is not None:
        k = res.topk.shape[1]
        pl.DataFrame(
            {
                "user_id": np.repeat(spec.user_ids[res.users], k),
                "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), len(res.users)),
                "item_id": spec.item_ids[res.topk.reshape(-1)],
            }
        ).write_parquet(run_dir / "topk_test.parquet")


def import_run(
    exp: Experiment,
    model: str,
    recbole_dir: str | Path,
    *,
    params: Mapping[str, Any] | None = None,
    epochs: int | None = None,
    runs_dir: str | Path = "runs",
    name: str | None = None,
    force: bool = False,
    data: tuple[Prepared, DataSpec] | None = None,
) -> Path:
    """Write a run directory from a RecBole worker's output (see the module docstring).

    Args:
        exp: the experiment whose data, eval, train and seed settings the RecBole run used.
        model: the RecBole model name.
        recbole_dir: the worker's ``out_dir`` (``topk_{valid,test}.parquet``, ``recbole.json``).
        params: the model hyperparameters it ran with (recorded in ``config.json``).
        epochs: its maximum epochs (default ``exp.cfg.train.epochs``).
        runs_dir: where run directories live.
        name: the run's experiment name (default ``recbole-<model>``).
        force: replace a finished run of the same config.
        data: the prepared data of ``exp`` when the caller has it (else prepared/loaded here).

    Returns:
        The run directory.

    Raises:
        AlreadyDone: the run exists and ``force`` is False.
        DataError: lists that name unknown ids or bad ranks.
        RecsysError: missing worker output.
    """
    from recsys.api import AlreadyDone, prepare_data

    rb_model = resolve_model(model)
    params = dict(params or {})
    epochs = exp.cfg.train.epochs if epochs is None else epochs
    recbole_dir = Path(recbole_dir)
    record_path = recbole_dir / "recbole.json"
    if not record_path.is_file():
        raise RecsysError(f"{recbole_dir}: no recbole.json (not a finished RecBole worker output)")
    record = read_json(record_path)
    prepared, spec = data or prepare_data(exp.cfg.data, exp.base_dir)
    config = run_config(exp, rb_model, params, epochs, name)
    run_dir = run_dir_for(config, prepared.hash, runs_dir)
    if status(run_dir) == DONE and not force:
        raise AlreadyDone(run_dir)
    ecfg: EvalConfig = exp.cfg.eval
    k = list_length(ecfg)
    results: dict[str, Any] = {
        "best_epoch": int(record.get("best_epoch", 0)),
        "epochs_run": int(record.get("epochs_run", 0)),
        "stopped_early": int(record.get("epochs_run", 0)) < epochs,
        "train_seconds": float(record.get("train_seconds", 0.0)),
    }
    recbole_summary: dict[str, Any] = {
        "model": rb_model.name,
        "model_params": record.get("model_params", {}),
        "valid": record.get("valid", {}),
        "test": record.get("test", {}),
        "list_k": record.get("list_k"),
        "n_users": record.get("n_users"),
        "n_items": record.get("n_items"),
        "users_evaluated": record.get("users_evaluated", {}),
        "seconds": record.get("seconds", {}),
        "scores": "imported top-K lists: rank r scores K - r + 1, unlisted items -inf",
        "checks": {},
        "difference": {},
    }
    with atomic.atomic_dir(run_dir) as tmp:
        for split in SPLITS:
            users, table = read_lists(recbole_dir / f"topk_{split}.parquet", spec, k)
            checks = list_checks(spec, split, users, table)
            if any(checks.values()):
                log.warning("RecBole %s lists differ from our protocol: %s", split, checks)
            scorer = list_scorer(users, table, spec.n_users, spec.n_items)
            res = evaluate(scorer, spec, split, ecfg)
            results[split] = res.summary
            results[f"{split}_protocol"] = {**res.protocol, "scores": recbole_summary["scores"]}
            results[f"{split}_users"] = res.n_users_evaluated
            _write_split(tmp, spec, res)
            theirs = recbole_summary[split]
            recbole_summary["checks"][split] = checks
            recbole_summary["difference"][split] = {
                key: value - float(theirs[key])
                for key, value in res.summary.items()
                if key in theirs
            }
        results["data"] = {"name": spec.name, "hash": spec.data_hash, "protocol": spec.protocol}
        results["recbole"] = recbole_summary
        atomic.write_json(tmp / "config.json", config)
        seeds = {"model": exp.cfg.seed, "split": exp.cfg.data.split.seed}
        manifest = new_manifest(
            run_dir.name, str(record.get("device", "cpu")), seeds, prepared.hash, exp.base_dir
        )
        manifest["versions"]["recbole"] = record.get("versions", {}).get("recbole", "unknown")
        manifest["recbole_versions"] = record.get("versions", {})
        history = record.get("history", [])
        atomic.write_text(
            tmp / "metrics.jsonl",
            "".join(f"{_json(row)}\n" for row in history),
        )
        shutil.copytree(recbole_dir, tmp / RECBOLE_SUBDIR)
        atomic.write_json(tmp / "results.json", results)
        manifest["status"] = DONE
        atomic.write_json(tmp / "manifest.json", manifest)
    return run_dir


def _json(row: Mapping[str, Any]) -> str:
    import json

    return json.dumps(dict(row), sort_keys=True)
