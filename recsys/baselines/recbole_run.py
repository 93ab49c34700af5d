"""Run a RecBole model on one of our splits and bring its top-K lists back as a run.

::

    from recsys import api
    from recsys.baselines.recbole_run import run_recbole

    exp = api.load_experiment("conf/exp/ml100k-mf.toml")   # data, eval, train settings, seed
    run_dir = run_recbole(exp, "LightGCN", {"n_layers": 3}, epochs=200)
    # runs/recbole-lightgcn-1a2b3c4d: reported by `recsys report` like any run of ml-100k

Steps (:func:`run_recbole`):

1. prepare (or load) the experiment's split and export it as RecBole atomic benchmark files
   with original ids (:mod:`recsys.baselines.recbole_export`), in a temporary directory;
2. run ``python -m recsys.baselines.recbole_worker JOB.json`` in a subprocess (RecBole and its
   compatibility shims never enter this process; :mod:`recsys.baselines.recbole_worker`):
   RecBole trains with the experiment's settings (:mod:`recsys.baselines.recbole_models`),
   validates every ``eval_every`` epochs for early stopping, restores the best epoch, reports
   its own valid/test metrics and exports every evaluated user's full-ranking top-K lists;
3. import the lists (:func:`recsys.baselines.recbole_import.import_run`): OUR evaluator computes
   every metric from them, so the run has the same data hash and evaluation protocol as our
   runs on the split, and ``results.json`` carries RecBole's numbers and the differences.

RecBole 1.2.1 installs only on Python < 3.12 (it pins ray); elsewhere every entry point raises
:class:`~recsys.errors.RecsysError` saying so (:func:`recbole_available` tells beforehand).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from recsys.baselines.recbole_export import export_spec
from recsys.baselines.recbole_import import import_run, run_config, run_dir_for
from recsys.baselines.recbole_models import (
    check_params,
    list_length,
    recbole_config,
    resolve_model,
    supported_models,
)
from recsys.config import parse_value
from recsys.errors import ConfigError, RecsysError
from recsys.experiment import Experiment, load_experiment
from recsys.runs import DONE, status

__all__ = [
    "import_run",
    "recbole_available",
    "require_recbole",
    "run_recbole",
    "run_recbole_cli",
    "supported_models",
]

NOT_INSTALLED = (
    "RecBole is not installed (it needs Python < 3.12: recbole 1.2.1 pins ray, which has no "
    "wheels beyond Python 3.11); on Python 3.11, `pip install -e .` installs recbole==1.2.1"
)
WORKER_MODULE = "recsys.baselines.recbole_worker"
LOG_TAIL_LINES = 40


def recbole_available() -> bool:
    """True when ``recbole`` can be imported by this interpreter (checked without importing)."""
    return importlib.util.find_spec("recbole") is not None


def require_recbole() -> None:
    """Raise :class:`RecsysError` (:data:`NOT_INSTALLED`) unless RecBole is installed."""
    if not recbole_available():
        raise RecsysError(NOT_INSTALLED)


def _experiment(exp: Experiment | str | Path, sets: Sequence[str]) -> Experiment:
    if isinstance(exp, Experiment):
        if sets:
            raise ConfigError("overrides (sets) apply to an experiment file, not to an Experiment")
        return exp
    return load_experiment(exp, list(sets))


def _dataset_name(name: str) -> str:
    """A RecBole dataset (directory and file) name for our dataset name.

    Always prefixed with ``recsys-``: RecBole special-cases some names (``ml-100k`` reads its
    bundled copy and its own dataset settings instead of our files).
    """
    return "recsys-" + (re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "data")


def run_worker(job: Mapping[str, Any], work_dir: Path, timeout_s: float | None = None) -> Path:
    """Run :mod:`recsys.baselines.recbole_worker` on ``job`` (its ``out_dir`` receives the output).

    The job is written to ``<out_dir>/job.json``, the worker's stdout and stderr to
    ``<out_dir>/worker.log``; it runs with ``work_dir`` as its working directory.

    Returns:
        The output directory.

    Raises:
        RecsysError: the worker failed (with the end of its log) or timed out.
    """
    out_dir = Path(job["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    job_path = out_dir / "job.json"
    job_path.write_text(json.dumps(job, indent=2, sort_keys=True), encoding="utf-8")
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    log_path = out_dir / "worker.log"
    cmd = [sys.executable, "-m", WORKER_MODULE, str(job_path)]
    with open(log_path, "w", encoding="utf-8") as log_file:
        try:
            proc = subprocess.run(
                cmd,
                cwd=work_dir,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise RecsysError(
                f"RecBole {job['model']} did not finish within {timeout_s} s (log: {log_path})"
            ) from None
    if proc.returncode != 0:
        tail = "\n".join(log_path.read_text(encoding="utf-8").splitlines()[-LOG_TAIL_LINES:])
        raise RecsysError(
            f"RecBole {job['model']} failed (exit {proc.returncode}); end of its log:\n{tail}"
        )
    return out_dir


def run_recbole(
    exp: Experiment | str | Path,
    model: str,
    params: Mapping[str, Any] | None = None,
    *,
    epochs: int | None = None,
    runs_dir: str | Path = "runs",
    name: str | None = None,
    sets: Sequence[str] = (),
    force: bool = False,
    threads: int | None = None,
    timeout_s: float | None = None,
) -> Path:
    """Train a RecBole model on ``exp``'s split and import its lists as a run directory.

    Args:
        exp: an :class:`~recsys.experiment.Experiment` or the path of an experiment TOML (with
            ``sets`` overrides). It supplies the data (and split), the evaluation protocol, the
            training settings (batch size, optimizer, lr, weight decay, validation every, monitor,
            patience, restore-best, device) and the seed; its model, losses and sampler are not
            used.
        model: a supported RecBole model (:func:`supported_models`), case-insensitive.
        params: its hyperparameters, RecBole's names (e.g. ``{"n_layers": 3}``); RecBole's
            defaults for the rest.
        epochs: maximum epochs (default ``exp``'s ``train.epochs``); must be >= 1.
        runs_dir: where run directories live.
        name: the run's experiment name (default ``recbole-<model>``, e.g. ``recbole-lightgcn``).
        sets: ``key=value`` overrides when ``exp`` is a path.
        force: run again and replace a finished run of the same config.
        threads: ``torch.set_num_threads`` in the worker (default: torch's).
        timeout_s: kill the worker after this many seconds.

    Returns:
        The run directory (``runs_dir/<name>-<hash8>``).

    Raises:
        RecsysError: RecBole is not installed, the worker failed, or (``AlreadyDone``) the run
            exists and ``force`` is False.
        ConfigError: an unsupported model or parameter, ``epochs < 1``, or
            ``eval.test_mask = "train"``.
    """
    from recsys.api import AlreadyDone, prepare_data
    from recsys.train.device import resolve_device

    experiment = _experiment(exp, sets)
    rb_model = resolve_model(model)
    params = check_params(rb_model, params or {})
    epochs = experiment.cfg.train.epochs if epochs is None else epochs
    if epochs < 1:
        raise ConfigError(f"RecBole {rb_model.name}: epochs must be >= 1, got {epochs}")
    device = str(resolve_device(experiment.cfg.train.device))

    def config_for(n_items: int | None) -> dict[str, Any]:
        return recbole_config(
            rb_model,
            params,
            train=experiment.cfg.train,
            eval_cfg=experiment.cfg.eval,
            seed=experiment.cfg.seed,
            epochs=epochs,
            device=device,
            n_items=n_items,
        )

    config_for(None)  # validates the settings before anything runs
    require_recbole()
    prepared, spec = prepare_data(experiment.cfg.data, experiment.base_dir)
    config = config_for(spec.n_items)
    run_dir = run_dir_for(
        run_config(experiment, rb_model, params, epochs, name), prepared.hash, runs_dir
    )
    if status(run_dir) == DONE and not force:
        raise AlreadyDone(run_dir)
    with tempfile.TemporaryDirectory(prefix="recsys_recbole_") as tmp:
        work = Path(tmp)
        exported = export_spec(spec, work / "data" / _dataset_name(spec.name))
        job = {
            "model": rb_model.name,
            "param_names": list(rb_model.params),
            "data_dir": str(exported.data_dir),
            "out_dir": str(work / "out"),
            "config": config,
            "list_k": list_length(experiment.cfg.eval),
            "load_best_model": experiment.cfg.train.restore_best,
            "threads": threads,
            "export": {"rows": exported.rows, "dropped": exported.dropped},
        }
        out_dir = run_worker(job, work, timeout_s)
        return import_run(
            experiment,
            rb_model.name,
            out_dir,
            params=params,
            epochs=epochs,
            runs_dir=runs_dir,
            name=name,
            force=force,
            data=(prepared, spec),
        )


def parse_params(items: Sequence[str]) -> dict[str, Any]:
    """``["n_layers=3", "reg_weight=1e-4"]`` → ``{"n_layers": 3, "reg_weight": 0.0001}``.

    Values are parsed as TOML literals (numbers, booleans, lists), else kept as strings.

    Raises:
        ConfigError: an item without ``=``.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"RecBole parameter {item!r}: expected KEY=VALUE, e.g. n_layers=3")
        out[key.strip()] = parse_value(value.strip())
    return out


def run_recbole_cli(
    experiment: str | Path,
    model: str,
    params: Sequence[str] = (),
    *,
    sets: Sequence[str] = (),
    epochs: int | None = None,
    runs_dir: str | Path = "runs",
    name: str | None = None,
    force: bool = False,
    threads: int | None = None,
) -> Path:
    """:func:`run_recbole` with string arguments, as a command line gives them.

    Args:
        experiment: path of an experiment TOML.
        model: RecBole model name.
        params: ``KEY=VALUE`` hyperparameters (:func:`parse_params`).
        sets: ``KEY=VALUE`` experiment overrides (``--set``).
        epochs, runs_dir, name, force, threads: as :func:`run_recbole`.

    Returns:
        The run directory.
    """
    return run_recbole(
        experiment,
        model,
        parse_params(params),
        epochs=epochs,
        runs_dir=runs_dir,
        name=name,
        sets=sets,
        force=force,
        threads=threads,
    )
