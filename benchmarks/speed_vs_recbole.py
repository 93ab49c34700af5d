"""Seconds per training epoch on ml-100k: recsys vs RecBole 1.2.1, on the same split.

Both sides are timed the same way: one untimed warm-up epoch, then ``--epochs`` timed epochs,
negative sampling included, ``torch.set_num_threads(--threads)``, CPU, batch 2048, dim 64,
one uniform negative per positive, Adam lr 1e-3. Models: MF-BPR (RecBole ``BPR``) and LightGCN
with 2 and 3 layers.

* The split comes from our data layer (``recsys.data.prepare``: ml-100k, random 80/10/10 per
  user, seed 2020). It is written as RecBole atomic benchmark files with the ORIGINAL ids so
  RecBole trains on exactly the same interactions (``benchmark_filename: [train, valid, test]``).
  If the data layer cannot be imported, a per-user random 80/10/10 split of RecBole's bundled
  ml-100k is made here instead (``--split fallback`` forces it) and our side is skipped.
* RecBole runs in a subprocess (``benchmarks/recbole_epoch_time.py``), which applies the
  compatibility shims of ``recsys.baselines.recbole_shims``; this process never imports RecBole.
  The atomic files are written by ``recsys.baselines.recbole_export``.
* Our side runs here through ``recsys.train.loop.fit`` with ``validate=None``.

Usage::

    python benchmarks/speed_vs_recbole.py --epochs 5 --threads 2 \\
        --out docs/benchmarks/speed_vs_recbole.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # `python benchmarks/...` puts only benchmarks/ on the path
RECBOLE_SCRIPT = Path(__file__).resolve().parent / "recbole_epoch_time.py"
SPLITS = ("train", "valid", "test")
GOAL = 0.2
"""Target ratio ours / RecBole."""

# (our model name, layers or None) → RecBole model spec for recbole_epoch_time.py
CASES: list[tuple[str, int | None, str]] = [
    ("mf", None, "BPR"),
    ("lightgcn", 2, "LightGCN:2"),
    ("lightgcn", 3, "LightGCN:3"),
]


@dataclass
class Split:
    """A train/valid/test split as original (string) ids, plus where it came from."""

    source: str
    users: dict[str, np.ndarray]
    items: dict[str, np.ndarray]
    spec: Any = None
    """Our ``DataSpec`` when the split came from our data layer."""


@dataclass
class Timing:
    """Seconds per epoch of one model on one side."""

    seconds: list[float]
    how: str

    @property
    def mean(self) -> float:
        return statistics.fmean(self.seconds)

    @property
    def sd(self) -> float:
        return statistics.stdev(self.seconds) if len(self.seconds) > 1 else 0.0

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def log(msg: str) -> None:
    """Progress to stderr (stdout carries the table)."""
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- split


def recsys_split() -> Split:
    """ml-100k random 80/10/10 (seed 2020) from our data layer, as original ids."""
    from recsys.data.config import DataConfig
    from recsys.data.prepare import load_spec, prepare

    spec = load_spec(prepare(DataConfig()))
    user_ids = np.asarray(spec.user_ids).astype(str)
    item_ids = np.asarray(spec.item_ids).astype(str)
    users, items = {}, {}
    for name in SPLITS:
        part = getattr(spec, name)
        users[name] = user_ids[part.users.cpu().numpy()]
        items[name] = item_ids[part.items.cpu().numpy()]
    return Split("recsys.data.prepare (DataConfig() defaults)", users, items, spec)


def fallback_split(seed: int = 2020) -> Split:
    """Per-user random 80/10/10 of RecBole's bundled ml-100k (used when ours is unavailable).

    Each user's interactions are shuffled; ``floor(0.1 n)`` go to valid, ``floor(0.1 n)`` to
    test, the rest to train.
    """
    import importlib.util

    found = importlib.util.find_spec("recbole")
    if found is None or found.origin is None:
        raise SystemExit("error: recbole is not installed; cannot build the fallback split")
    path = Path(found.origin).parent / "dataset_example" / "ml-100k" / "ml-100k.inter"
    data = np.loadtxt(path, skiprows=1, dtype=np.int64, usecols=(0, 1))
    rng = np.random.default_rng(seed)
    data = data[np.lexsort((rng.random(len(data)), data[:, 0]))]
    user = data[:, 0]
    starts = np.r_[0, np.flatnonzero(np.diff(user)) + 1]
    counts = np.diff(np.r_[starts, len(user)])
    rank = np.arange(len(user)) - np.repeat(starts, counts)
    n = np.repeat(counts, counts)
    n_hold = np.floor(n * 0.1).astype(np.int64)
    part = np.where(rank < n - 2 * n_hold, 0, np.where(rank < n - n_hold, 1, 2))
    users = {s: data[part == i, 0].astype(str) for i, s in enumerate(SPLITS)}
    items = {s: data[part == i, 1].astype(str) for i, s in enumerate(SPLITS)}
    return Split(f"fallback: per-user random 80/10/10 of {path.name}, seed {seed}", users, items)


def spec_from_split(split: Split) -> Any:
    """A ``DataSpec`` over the fallback split (dense indices in sorted original-id order)."""
    from recsys.spec import DataSpec
    from recsys.types import Interactions

    all_users = np.concatenate([split.users[s] for s in SPLITS])
    all_items = np.concatenate([split.items[s] for s in SPLITS])
    user_ids, user_idx = np.unique(all_users, return_inverse=True)
    item_ids, item_idx = np.unique(all_items, return_inverse=True)
    bounds = np.cumsum([0, *(len(split.users[s]) for s in SPLITS)])
    parts = {
        s: Interactions(
            torch.as_tensor(user_idx[bounds[i] : bounds[i + 1]], dtype=torch.int64),
            torch.as_tensor(item_idx[bounds[i] : bounds[i + 1]], dtype=torch.int64),
        )
        for i, s in enumerate(SPLITS)
    }
    train_users = torch.unique(parts["train"].users)

    def eval_users(name: str) -> torch.Tensor:
        users = torch.unique(parts[name].users)
        return users[torch.isin(users, train_users)]

    return DataSpec(
        name="ml-100k-fallback",
        data_hash="fallback",
        n_users=len(user_ids),
        n_items=len(item_ids),
        train=parts["train"],
        valid=parts["valid"],
        test=parts["test"],
        user_ids=user_ids,
        item_ids=item_ids,
        eval_users_valid=eval_users("valid"),
        eval_users_test=eval_users("test"),
    )


def write_atomic_files(split: Split, data_dir: Path) -> None:
    """Write ``<data_dir>/<name>.{train,valid,test}.inter`` (RecBole benchmark files).

    The writer is :func:`recsys.baselines.recbole_export.write_benchmark_files`.
    """
    from recsys.baselines.recbole_export import write_benchmark_files

    write_benchmark_files(data_dir, split.users, split.items)


# ----------------------------------------------------------------------------- RecBole


class RecBoleServer:
    """``recbole_epoch_time.py --serve`` in a subprocess: one RecBole epoch per request.

    Running RecBole's epochs between ours (rather than all of one side, then the other) makes
    both sides see the same load on a shared machine, and pairs each of our epochs with one of
    RecBole's.
    """

    def __init__(self, data_dir: Path, args: argparse.Namespace) -> None:
        cmd = [
            sys.executable,
            str(RECBOLE_SCRIPT),
            "--data-dir",
            str(data_dir),
            "--models",
            *[case[2] for case in CASES],
            "--threads",
            str(args.threads),
            "--serve",
        ]
        log(f"RecBole: {shlex.join(cmd)}")
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True
        )
        self.header = self._read()

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            self._proc.wait(timeout=60)
            self._stderr.seek(0)
            log(self._stderr.read()[-4000:])
            raise SystemExit(f"error: the RecBole subprocess died (exit {self._proc.returncode})")
        out: dict[str, Any] = json.loads(line)
        if "error" in out:
            raise SystemExit(f"error: RecBole subprocess: {out['error']}")
        return out

    def call(self, command: str) -> dict[str, Any]:
        """Send one command (``train K`` / ``eval K``); return its JSON reply."""
        assert self._proc.stdin is not None
        self._proc.stdin.write(command + "\n")
        self._proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        """Ask the subprocess to quit and wait for it."""
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.write("quit\n")
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._stderr.close()


# ----------------------------------------------------------------------------- ours

_SECONDS_KEYS = ("seconds", "epoch_seconds", "train_seconds", "time", "train_time", "epoch_time")


def _history_seconds(history: Sequence[Any]) -> list[float] | None:
    """Per-epoch seconds from a FitResult history, if it records them."""
    if not history:
        return None
    first = history[0]
    row = first if isinstance(first, dict) else getattr(first, "__dict__", {})
    for key in _SECONDS_KEYS:
        if key in row:
            out = []
            for h in history:
                value = h[key] if isinstance(h, dict) else getattr(h, key)
                out.append(float(value))
            return out
    return None


def time_ours(
    spec: Any,
    model_name: str,
    layers: int | None,
    args: argparse.Namespace,
    after_epoch: Callable[[], None],
) -> Timing:
    """Train our model for warm-up + ``args.epochs`` epochs; return the timed epochs.

    ``after_epoch`` runs after each of our epochs (a fit hook, outside our epoch's timer): the
    driver runs one RecBole epoch there.
    """
    from recsys.losses import LOSSES
    from recsys.models import MODELS, build_model
    from recsys.samplers import SAMPLERS
    from recsys.train.config import TrainConfig
    from recsys.train.loop import fit

    def hook(epoch: int, row: dict[str, float]) -> bool:
        after_epoch()
        return False

    def one_fit(epochs: int, hooks: Sequence[Any]) -> tuple[Any, float]:
        extra = {} if layers is None else {"layers": layers}
        config_cls: Any = MODELS[model_name].Config
        model = build_model(model_name, config_cls(dim=64, **extra), spec, seed=0)
        loss = LOSSES["bpr"](LOSSES["bpr"].Config())
        sampler = SAMPLERS["uniform"](SAMPLERS["uniform"].Config())
        cfg = TrainConfig(
            epochs=epochs, batch_size=2048, lr=1e-3, patience=0, device="cpu", restore_best=False
        )
        torch.set_num_threads(args.threads)
        t0 = time.perf_counter()
        result = fit(model, [loss], sampler, spec, cfg, seed=0, validate=None, hooks=hooks)
        return result, time.perf_counter() - t0

    result, _ = one_fit(args.warmup + args.epochs, [hook])
    seconds = _history_seconds(getattr(result, "history", []))
    if seconds is not None and len(seconds) == args.warmup + args.epochs:
        return Timing(seconds[args.warmup :], "per-epoch seconds from FitResult.history")
    # No per-epoch times recorded: difference of two fits' wall times, per extra epoch.
    base = max(args.warmup, 1)
    _, wall_short = one_fit(base, [])
    walls = []
    for _ in range(2):
        _, wall_long = one_fit(base + args.epochs, [])
        walls.append((wall_long - wall_short) / args.epochs)
    return Timing(walls, "(wall(fit warm-up+N) - wall(fit warm-up)) / N, 2 repeats, unpaired")


def run_both(
    split: Split, data_dir: Path, args: argparse.Namespace, errors: list[str]
) -> tuple[dict[str, Any], dict[str, Timing | None]]:
    """Time every case, our epochs interleaved with RecBole's; failures go to ``errors``.

    Returns:
        RecBole's results (same layout as ``recbole_epoch_time.py``'s JSON) and our timings
        keyed by RecBole model spec.
    """
    server = RecBoleServer(data_dir, args)
    total = args.warmup + args.epochs
    results: list[dict[str, Any]] = []
    ours: dict[str, Timing | None] = {}
    try:
        for k, (ours_name, layers, rb_spec) in enumerate(CASES):
            rb_seconds: list[float] = []

            def recbole_epoch(k: int = k, rb_seconds: list[float] = rb_seconds) -> None:
                if len(rb_seconds) < total:
                    rb_seconds.append(float(server.call(f"train {k}")["seconds"]))

            ours[rb_spec] = None
            if split.spec is not None:
                log(f"timing recsys {ours_name} (layers={layers}) interleaved with {rb_spec}")
                try:
                    ours[rb_spec] = time_ours(split.spec, ours_name, layers, args, recbole_epoch)
                except Exception as exc:  # report it, still time RecBole's side
                    errors.append(f"{ours_name}: {type(exc).__name__}: {exc}")
                    log(f"WARNING: recsys side failed: {errors[-1]}")
            else:
                log(f"timing {rb_spec}")
            while len(rb_seconds) < total:
                recbole_epoch()
            evaluation = server.call(f"eval {k}")
            results.append(
                {
                    **server.header["models"][k],
                    "epoch_seconds": rb_seconds[args.warmup :],
                    "eval_seconds": evaluation["seconds"],
                    "valid_metrics": evaluation["metrics"],
                }
            )
    finally:
        server.close()
    rb = {key: server.header[key] for key in ("recbole_version", "torch_version", "threads")}
    rb["results"] = results
    return rb, ours


# ----------------------------------------------------------------------------- report


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or platform's guess)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit() -> str:
    """The repository's HEAD commit (read-only), or ``unknown``."""
    proc = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() or "unknown"


def fmt(t: Timing | None) -> str:
    """``mean ± sd`` in seconds, or ``n/a``."""
    return "n/a" if t is None else f"{t.mean:.3f} ± {t.sd:.3f}"


def fmt_robust(t: Timing | None) -> str:
    """``median / min`` in seconds, or ``n/a``."""
    return "n/a" if t is None else f"{t.median:.3f} / {min(t.seconds):.3f}"


def ratio(mine: Timing | None, theirs: Timing) -> str:
    """Ratio columns: medians, minima, median of per-epoch paired ratios, goal verdict.

    The verdict uses the paired ratio when both sides have one time per epoch (epoch ``i`` of
    ours ran right before epoch ``i`` of RecBole's), else the ratio of medians.
    """
    if mine is None:
        return "n/a | n/a | n/a | n/a"
    med = mine.median / theirs.median
    low = min(mine.seconds) / min(theirs.seconds)
    paired: float | None = None
    if "unpaired" not in mine.how and len(mine.seconds) == len(theirs.seconds):
        paired = statistics.median(o / r for o, r in zip(mine.seconds, theirs.seconds, strict=True))
    verdict = paired if paired is not None else med
    met = "yes" if round(verdict, 3) <= GOAL else "no"
    shown = "n/a" if paired is None else f"{paired:.3f}"
    return f"{med:.3f} | {low:.3f} | {shown} | {met}"


def loadavg() -> str:
    """The 1-minute load average (other processes on a shared machine distort timings)."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "unknown"


def build_report(
    split: Split,
    rb: dict[str, Any],
    ours: dict[str, Timing | None],
    ours_errors: list[str],
    args: argparse.Namespace,
    command: str,
    loads: str,
) -> str:
    """The markdown report (also printed to stdout)."""
    lines = [
        "# Speed: seconds per training epoch, recsys vs RecBole 1.2.1 (ml-100k)",
        "",
        f"Generated {dt.datetime.now().isoformat(timespec='seconds')} at commit {git_commit()}.",
        "",
        "| model | recsys s/epoch mean ± sd | RecBole s/epoch mean ± sd "
        "| recsys median / min | RecBole median / min | ratio of medians | ratio of minima "
        f"| paired ratio (median) | ratio ≤ {GOAL} |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (ours_name, layers, rb_spec), rb_res in zip(CASES, rb["results"], strict=True):
        label = ours_name if layers is None else f"{ours_name} ({layers} layers)"
        rb_t = Timing(rb_res["epoch_seconds"], "recbole")
        mine = ours.get(rb_spec)
        lines.append(
            f"| {label} vs {rb_spec} | {fmt(mine)} | {fmt(rb_t)} | {fmt_robust(mine)} "
            f"| {fmt_robust(rb_t)} | {ratio(mine, rb_t)} |"
        )
    lines += [
        "",
        f"Seconds per epoch over {args.epochs} timed epochs after {args.warmup} warm-up "
        "epoch(s), negative sampling included, CPU. Ratios are recsys / RecBole. Each of our "
        "epochs is followed by one RecBole epoch (RecBole runs as a subprocess that trains an "
        "epoch on request), so both sides share the machine's load; the paired ratio is the "
        "median over epochs of ours_i / RecBole_i and decides the verdict. 1-minute load "
        f"average before/after: {loads}; {os.cpu_count()} logical CPUs.",
    ]
    for error in ours_errors:
        lines += ["", f"recsys side not measured: {error}"]
    hows = sorted({t.how for t in ours.values() if t is not None})
    if hows:
        lines += ["", "recsys timing: " + "; ".join(hows) + "."]
    lines += [
        "",
        "RecBole full-ranking evaluation of the valid split (one `trainer.evaluate` call, "
        "Recall/NDCG@{10,20,50}):",
        "",
        "| RecBole model | eval seconds | valid NDCG@20 after warm-up+timed epochs |",
        "|---|---|---|",
    ]
    for rb_res in rb["results"]:
        spec = rb_res["model"] + ("" if rb_res["layers"] is None else f":{rb_res['layers']}")
        ndcg = rb_res.get("valid_metrics", {}).get("ndcg@20", float("nan"))
        lines.append(f"| {spec} | {rb_res.get('eval_seconds', float('nan')):.3f} | {ndcg:.4f} |")
    n = {s: len(split.users[s]) for s in SPLITS}
    first = rb["results"][0]
    lines += [
        "",
        "## Setup",
        "",
        f"- Split: {split.source}; train/valid/test = {n['train']}/{n['valid']}/{n['test']} "
        f"interactions; RecBole sees {first['n_users']} users, {first['n_items']} items, "
        f"{first['n_train']} train rows, {first['batches_per_epoch']} batches per epoch.",
        "- Both sides: batch 2048, dim 64, 1 uniform negative per positive (RecBole "
        "`train_neg_sample_args: {distribution: uniform, sample_num: 1}`), Adam lr 1e-3, "
        "LightGCN reg weight as each side's default; RecBole with `worker: 0` (sampling in the "
        "timed process) and its `trainer._train_epoch` timed; ours with "
        "`recsys.train.loop.fit(..., validate=None)`.",
        f"- Threads: `torch.set_num_threads({args.threads})` on both sides.",
        f"- Machine: {cpu_model()}, {platform.system()} {platform.machine()}; Python "
        f"{platform.python_version()}; torch {torch.__version__} (RecBole subprocess: torch "
        f"{rb['torch_version']}); RecBole {rb['recbole_version']} with "
        "`recsys.baselines.recbole_shims`.",
        "",
        "Command:",
        "",
        "```",
        command,
        "```",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run both sides, print the table, optionally write it to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per model")
    parser.add_argument("--warmup", type=int, default=1, help="untimed epochs first")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="write the markdown report here")
    parser.add_argument(
        "--split",
        choices=("auto", "recsys", "fallback"),
        default="auto",
        help="auto: our data layer, or the fallback split when it cannot be imported",
    )
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("--epochs and --threads must be >= 1, --warmup >= 0")
    raw = sys.argv[1:] if argv is None else argv
    command = shlex.join(["python", "benchmarks/speed_vs_recbole.py", *raw])
    torch.set_num_threads(args.threads)

    split: Split | None = None
    ours_errors: list[str] = []
    if args.split != "fallback":
        try:
            split = recsys_split()
        except Exception as exc:  # any failure of our data layer → fallback
            if args.split == "recsys":
                raise
            log(
                f"WARNING: our data layer failed ({type(exc).__name__}: {exc}); using the "
                "fallback split (built here) for both sides"
            )
    if split is None:
        split = fallback_split()
        try:
            split.spec = spec_from_split(split)
        except Exception as exc:  # recsys itself unavailable: RecBole side only
            ours_errors.append(f"cannot build a DataSpec ({type(exc).__name__}: {exc})")
            log(f"WARNING: {ours_errors[-1]}; skipping our side")
    log(f"split: {split.source}")

    load_before = loadavg()
    with tempfile.TemporaryDirectory(prefix="speed_vs_recbole_") as tmp:
        data_dir = Path(tmp) / "bench"
        write_atomic_files(split, data_dir)
        rb, ours = run_both(split, data_dir, args, ours_errors)
    loads = f"{load_before}/{loadavg()}"

    report = build_report(split, rb, ours, ours_errors, args, command, loads)
    print(report)
    if args.out is not None:
        from recsys.atomic import write_text

        write_text(args.out, report)
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
