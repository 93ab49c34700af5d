"""Tuning throughput: finished trials per hour of a study run for a fixed wall-clock window.

Runs ``recsys tune CONF --workers W --no-retrain`` with a huge trial budget, stops it and its
workers (SIGTERM to the process group) after ``--window`` seconds, and counts the trials that finished
(complete or pruned) between the first trial's start and the last finish. Each worker count
gets a fresh study. ``--device cpu`` forces the trials onto the CPU (``train.device``);
otherwise they use CUDA when present, all workers sharing the one GPU.

Usage::

    python benchmarks/tune_throughput.py --workers 1 4 --window 120
    python benchmarks/tune_throughput.py --workers 4 --window 120 --device cpu
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
from optuna.trial import TrialState

REPO = Path(__file__).resolve().parents[1]


def measure(conf: Path, workers: int, window: float, device: str | None, work: Path) -> str:
    name = f"throughput-w{workers}-{device or 'auto'}"
    runs = work / name
    cmd = [sys.executable, "-m", "recsys.cli", "-q", "tune", str(conf), "--set", f"name={name}"]
    cmd += ["--n-trials", "100000", "--no-retrain", "--workers", str(workers)]
    cmd += ["--runs-dir", str(runs)]
    if device:
        cmd += ["--set", f"set=['train.device={device}']"]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    with open(work / f"{name}.log", "w") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            proc.wait(timeout=window)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)  # the CLI and its workers
            proc.wait(timeout=120)
    storage = f"sqlite:///{runs / 'tune' / f'{name}.db'}"
    trials = optuna.load_study(study_name=name, storage=storage).get_trials()
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    if not done:
        return f"workers {workers}, device {device or 'auto'}: no trial finished in {window:.0f} s"
    span = (
        max(t.datetime_complete for t in done) - min(t.datetime_start for t in trials)
    ).total_seconds()
    epochs = sum(int(t.user_attrs.get("epochs_run", 0)) for t in done)
    train_s = sum(float(t.user_attrs.get("train_seconds", 0.0)) for t in done)
    best = max((t.value for t in done if t.state == TrialState.COMPLETE), default=float("nan"))
    pruned = sum(t.state == TrialState.PRUNED for t in done)
    return (
        f"workers {workers}, device {device or 'auto'}: {len(done)} finished ({pruned} pruned) in "
        f"{span:.0f} s -> {3600 * len(done) / span:.0f} trials/hour; {epochs} epochs "
        f"({epochs / span:.1f}/s), {train_s / max(epochs, 1):.3f} train s per epoch; best valid "
        f"{best:.4f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conf", type=Path, default=REPO / "conf" / "tune" / "ml100k-lightgcn.toml")
    ap.add_argument("--workers", type=int, nargs="+", default=[1])
    ap.add_argument("--window", type=float, default=120.0)
    ap.add_argument("--device", default=None, help="force train.device (e.g. cpu)")
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    work = args.work or Path(tempfile.mkdtemp(prefix="tune-throughput-"))
    work.mkdir(parents=True, exist_ok=True)
    for w in args.workers:
        print(measure(args.conf, w, args.window, args.device, work), flush=True)


if __name__ == "__main__":
    main()
