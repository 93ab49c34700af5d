"""Create or resume a study and run workers until it holds ``n_trials`` finished trials.

Finished means complete or pruned; failed trials (a NaN loss, a killed worker) do not count,
so a study interrupted at any point reaches its total when started again. Several workers (on
one machine through ``--workers``, or on many against one database) share the count.
"""

from __future__ import annotations

import logging
import os
import platform
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from recsys import api
from recsys.errors import RecsysError
from recsys.hashing import hash_obj
from recsys.tune.config import PrunerConfig
from recsys.tune.context import TuneContext
from recsys.tune.objective import Objective, directions
from recsys.tune.storage import open_storage, shown

log = logging.getLogger(__name__)
# Heartbeats, stale-trial failing and grouped TPE are marked experimental; they are what
# resuming and sharing a study rely on, and their behaviour is pinned by tests here.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
MAX_FAILURES_IN_A_ROW = 3
FINGERPRINT = "recsys:fingerprint"


def sampler_seed(seed: int, stream: str | None) -> int:
    """``seed`` itself for a lone worker; a seed derived from ``(seed, stream)`` for each of
    several workers, which would otherwise all draw the same parameters."""
    if stream is None:
        return seed
    return int(hash_obj({"seed": seed, "stream": stream})[:8], 16)


def make_sampler(ctx: TuneContext, stream: str | None = None) -> optuna.samplers.BaseSampler:
    s = ctx.cfg.sampler.model_copy(update={"seed": sampler_seed(ctx.cfg.sampler.seed, stream)})
    if s.name == "random":
        return optuna.samplers.RandomSampler(seed=s.seed)
    if s.name == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=s.population_size, seed=s.seed)
    return optuna.samplers.TPESampler(
        seed=s.seed,
        n_startup_trials=s.n_startup_trials,
        n_ei_candidates=s.n_ei_candidates,
        multivariate=s.multivariate,
        group=s.group and s.multivariate,
        constant_liar=s.constant_liar,
    )


def make_pruner(ctx: TuneContext) -> optuna.pruners.BasePruner:
    name = ctx.cfg.pruner_name
    if name == "none":
        return optuna.pruners.NopPruner()
    p = ctx.cfg.pruner or PrunerConfig()
    if name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=p.n_startup_trials,
            n_warmup_steps=p.n_warmup_steps,
            interval_steps=p.interval_steps,
        )
    return optuna.pruners.HyperbandPruner(
        min_resource=p.min_resource,
        max_resource=max(ctx.base.cfg.train.epochs, p.min_resource),
        reduction_factor=p.reduction_factor,
    )


def open_study(ctx: TuneContext, url: str, stream: str | None = None) -> optuna.Study:
    """Create the study, or load it when it exists (refusing one made from another
    definition). ``stream`` names this worker among several (see :func:`sampler_seed`)."""
    storage = open_storage(url, ctx.cfg.heartbeat_seconds)
    study = optuna.create_study(
        study_name=ctx.cfg.name,
        storage=storage,
        sampler=make_sampler(ctx, stream),
        pruner=make_pruner(ctx),
        directions=directions(ctx),
        load_if_exists=True,
    )
    mine = ctx.fingerprint()
    stored = study.user_attrs.get(FINGERPRINT)
    if stored is None:
        study.set_user_attr(FINGERPRINT, mine)
        study.set_user_attr("recsys:config", str(ctx.path))
    elif stored != mine:
        raise RecsysError(
            f"study {ctx.cfg.name!r} in {shown(url)} was created from another definition "
            "(search space, objective, sampler, pruner or experiment differ); give this one "
            f"another name (--set name=...) or delete the old one (optuna delete-study "
            f"--study-name {ctx.cfg.name} --storage URL)"
        )
    if len(study.directions) != len(directions(ctx)):
        raise RecsysError(f"study {ctx.cfg.name!r} in {shown(url)} has other objectives")
    return study


def counts(study: optuna.Study) -> tuple[int, int]:
    """(finished, running) trials."""
    trials = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
    running = sum(t.state == TrialState.RUNNING for t in trials)
    return len(trials) - running, running


def work(ctx: TuneContext, url: str, stream: str | None = None, poll_seconds: float = 2.0) -> None:
    """One worker: start trials until the study holds ``n_trials`` finished ones.

    While the remaining trials are running elsewhere it waits: if one of them belongs to a
    worker that died, its heartbeat stops, it is marked failed, and this worker replaces it.

    Raises:
        RecsysError: ``MAX_FAILURES_IN_A_ROW`` trials of this worker failed in a row.
    """
    study = open_study(ctx, url, stream)
    objective = Objective(ctx)
    failures: list[FrozenTrial] = []

    def track(_: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state == TrialState.FAIL:
            failures.append(trial)
        else:
            failures.clear()

    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        finished, running = counts(study)
        if finished >= ctx.cfg.n_trials:
            return
        if finished + running >= ctx.cfg.n_trials:
            time.sleep(poll_seconds)
            continue
        study.optimize(objective, n_trials=1, catch=(RecsysError,), callbacks=[track])
        if len(failures) >= MAX_FAILURES_IN_A_ROW:
            last = failures[-1]
            reason = last.user_attrs.get("error") or last.system_attrs.get("fail_reason", "?")
            raise RecsysError(
                f"study {ctx.cfg.name!r}: {len(failures)} trials in a row failed "
                f"(trials {[t.number for t in failures]}); the last: {reason}"
            )


def cpu_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def run_search(ctx: TuneContext, url: str, workers: int = 1, shared: bool = False) -> optuna.Study:
    """Run the search with ``workers`` processes on this machine (one: in this process).

    Worker processes split the CPU threads between them (``torch.set_num_threads``) and share
    the GPU when there is one. ``shared``: the storage may have workers on other machines, so
    this machine's sampler streams are told apart by the host name (and process id). Returns
    the study.
    """
    if workers < 1:
        raise RecsysError(f"--workers must be >= 1 (got {workers})")
    host = platform.node()
    if workers == 1:
        work(ctx, url, f"{host}/{os.getpid()}" if shared else None)
        return open_study(ctx, url)
    study = open_study(ctx, url)
    api.prepare_data(ctx.base.cfg.data, ctx.exp_base_dir)  # once, before the workers read it
    threads = max(1, cpu_threads() // workers)
    cmd = [sys.executable, "-m", "recsys.tune.worker", str(ctx.path), "--storage", url]
    cmd += ["--runs-dir", str(ctx.runs_dir), "--threads", str(threads)]
    for s in ctx.sets:
        cmd += ["--set", s]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    log.info("starting %d workers with %d threads each on %s", workers, threads, shown(url))
    procs = [
        subprocess.Popen([*cmd, "--stream", f"{host}/{k}" if shared else str(k)], env=env)
        for k in range(workers)
    ]
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            p.wait()
        raise
    bad = [c for c in codes if c != 0]
    if bad:
        raise RecsysError(
            f"{len(bad)} of {workers} tuning workers exited with errors (codes {bad}); "
            "see their messages above; run the same command again to resume"
        )
    return study


def worker_main(argv: list[str] | None = None) -> int:
    """``python -m recsys.tune.worker CONF --storage URL [--runs-dir D] [--threads T]``."""
    import argparse

    import torch

    from recsys.tune.context import load_context

    parser = argparse.ArgumentParser(prog="recsys.tune.worker")
    parser.add_argument("conf", type=Path)
    parser.add_argument("--storage", required=True)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--stream", default=None, help="this worker's sampler stream")
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format=f"[worker {os.getpid()}] %(message)s")
    logging.getLogger("recsys.train.loop").setLevel(logging.WARNING)
    try:
        work(load_context(args.conf, args.set, args.runs_dir), args.storage, args.stream)
    except RecsysError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # the parent passes Ctrl-C on; its trial is failed by heartbeat
        return 130
    return 0
