"""Scaling: data pipeline, LightGCN training step and full-ranking evaluation against data size.

For every size ``N`` (raw rows) a synthetic log (:mod:`recsys.data.synthetic`, seed 0) is
written once as CSV into ``--work`` (string ids, 5% duplicates, a fringe that a 5-core peels
over several rounds), then each stage runs in a FRESH child process, which reports its wall
time and its peak resident memory (``ru_maxrss`` = ``VmHWM``, the interpreter and its imports
included). The parent watches every child's RSS and kills it when it passes ``--mem-limit-gb``
(or what the machine has available), reporting the stage as aborted.

* **generate**: :func:`~recsys.data.synthetic.generate_arrays` + :func:`write_raw` (reported
  apart; skipped when the file is already in ``--work``).
* **pipeline**: ``prepare`` of the CSV (hash the input for the cache key, read + validate,
  integer codes of the ids, dedup ``last``, 5-core, random 80/10/10 split, id maps, Parquet
  artifacts; forced, never a cache hit), then ``load_spec`` and ``build_graph`` (normalised
  adjacency). The functions of ``recsys.data`` are wrapped with timers, so the time and peak
  RSS of each step are reported (inclusive and exclusive of the wrapped steps inside it).
* **train**: LightGCN (dim 64, 3 layers, BPR, Adam, batch 2048, one uniform negative) through
  ``recsys.train.loop.fit`` with batches drawn before the fit and replayed one per loop
  "epoch", so the loop's history times every step: ``--warmup`` steps, then ``--steps`` timed
  steps (fewer when they pass ``--step-budget`` seconds, at least 3; the count is reported).
  The step time is the median of the timed steps (robust to a shared machine's load spikes;
  the mean is stored too). Per-epoch cost = one epoch of negative sampling (timed) +
  ``ceil(train / 2048)`` median steps, extrapolated.
* **eval**: full-ranking evaluation (Recall/NDCG@20, train+valid masked, 256-user blocks) of a
  randomly initialised LightGCN on the test users. The first ``2048`` users are timed; when all
  users would take more than ``--eval-budget`` seconds, a seeded random subset that fits the
  budget is evaluated and the time extrapolated linearly (marked ``*``).

Children run with ``POLARS_MAX_THREADS = --threads``, ``torch.set_num_threads(--threads)`` and
``OMP_WAIT_POLICY=PASSIVE`` (``--omp-wait``): on a machine shared with other jobs, OpenMP's
default spinning waits make every parallel region wait for a descheduled thread; at a load
average of 3-4 on 2 cores that measured 100x slower LightGCN steps at 10^5 rows, 12x at 10^6
and 1.4x at 10^7.

``--pipeline-only`` sizes run generate + pipeline only; ``--stages`` re-runs some stages and
keeps the stored results of the others (generate runs when the raw file is missing). Results
are kept in ``<work>/results.json`` (``--report-only`` redraws the report from it). The report
(``--out``) keeps whatever follows its ``<!-- notes -->`` line; the plot goes next to it
(``.png``).

Usage::

    python benchmarks/scaling.py --sizes 1e5,1e6,1e7,2e7 --pipeline-only 5e7 --threads 2 \\
        --work /tmp/scaling --out docs/benchmarks/scaling.md
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import importlib
import json
import math
import os
import platform
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # `python benchmarks/...` puts only benchmarks/ on the path

GB = 2**30
BATCH = 2048
GOAL_N = 20_000_000
GOAL_SECONDS = 60.0
GOAL_GB = 4.0
NOTES = "<!-- notes -->"
BREAKDOWN_MIN = 10_000_000
"""Step tables are reported from this size up (smaller sizes: the summary only)."""
PREPARE = "prepare (exclusive: Parquet writes, locating inputs)"
LOAD = "load_spec (parquet -> tensors)"
GRAPH = "build_graph (normalised adjacency)"

# (module, attribute, label): the pipeline steps timed inside the real prepare() call. A
# function imported into several modules is wrapped under each name with the same label.
STEPS = [
    ("recsys.data.prepare", "cache_key", "hash input (cache key)"),
    ("recsys.data.prepare", "build", "build in memory (exclusive: split stats, noise, card)"),
    ("recsys.data.prepare", "_read", "read"),
    ("recsys.data.sources", "read_delimited", "read_delimited (bytes -> string frame)"),
    ("recsys.data.sources", "read_bytes", "read bytes"),
    ("recsys.data.sources", "_field_check", "field-count check (numpy)"),
    ("recsys.data.sources", "standardise", "standardise (strip, cast, validate)"),
    ("recsys.data.prepare", "with_rows", "row numbers"),
    ("recsys.data.prepare", "encode_ids", "integer codes of the ids (Enum)"),
    ("recsys.data.prepare", "clean", "clean (dedup + threshold + k-core)"),
    ("recsys.data.clean", "dedup", "dedup (one sort by pair code, time, row)"),
    ("recsys.data.clean", "kcore", "k-core (bincount rounds)"),
    ("recsys.data.clean", "frame_stats", "frame stats (bincount of id codes)"),
    ("recsys.data.prepare", "frame_stats", "frame stats (bincount of id codes)"),
    ("recsys.data.prepare", "assign_split", "split (random 80/10/10)"),
    ("recsys.data.prepare", "drop_repeats", "drop repeats"),
    ("recsys.data.prepare", "check_leakage", "leakage check"),
    ("recsys.data.prepare", "_index", "id maps + drop cold valid/test rows"),
    ("recsys.data.prepare", "label_natural", "noise labels"),
    ("recsys.data.prepare", "_split_frames", "per-split frames (sort by user, row) + stats"),
]


# --------------------------------------------------------------------------- measurement


def rss_bytes(pid: int | str = "self") -> int:
    """Current resident set size of a process (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0


def peak_rss_bytes() -> int:
    """This process's high-water mark (``ru_maxrss`` is in kB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def mem_available_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


class StepTimer:
    """Inclusive/exclusive wall time, calls and peak RSS of wrapped functions (nested).

    A thread samples the RSS every 10 ms and credits it to every step on the call stack.
    """

    def __init__(self) -> None:
        self.stats: dict[str, dict[str, float]] = {}
        self.stack: list[list[Any]] = []  # [label, start, child seconds]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _entry(self, label: str) -> dict[str, float]:
        return self.stats.setdefault(
            label, {"seconds": 0.0, "exclusive": 0.0, "calls": 0, "peak_gb": 0.0}
        )

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            rss = rss_bytes() / GB
            for label in {frame[0] for frame in list(self.stack)}:
                entry = self._entry(label)
                entry["peak_gb"] = max(entry["peak_gb"], rss)

    def wrap(self, fn: Callable[..., Any], label: str) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.step(label):  # steps are reported in the order they start
                return fn(*args, **kwargs)

        return timed

    @contextlib.contextmanager
    def step(self, label: str) -> Iterator[None]:
        """Time a block as a step (for code that is not a function of the data modules)."""
        self._entry(label)
        frame: list[Any] = [label, time.perf_counter(), 0.0]
        self.stack.append(frame)
        try:
            yield
        finally:
            self.stack.pop()
            elapsed = time.perf_counter() - frame[1]
            entry = self._entry(label)
            entry["seconds"] += elapsed
            entry["exclusive"] += elapsed - frame[2]
            entry["calls"] += 1
            entry["peak_gb"] = max(entry["peak_gb"], rss_bytes() / GB)
            if self.stack:
                self.stack[-1][2] += elapsed

    def install(self) -> None:
        """Wrap the :data:`STEPS` functions in their modules and start sampling."""
        for module_name, attr, label in STEPS:
            module = importlib.import_module(module_name)
            setattr(module, attr, self.wrap(getattr(module, attr), label))
        self.start()

    def start(self) -> None:
        """Start sampling the RSS."""
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


# --------------------------------------------------------------------------- children


def raw_path(work: Path, n: int) -> Path:
    return work / f"raw-{n}.csv"


def data_config(work: Path, n: int) -> Any:
    from recsys.data.config import DataConfig

    return DataConfig.model_validate(
        {
            "name": f"synthetic-{n}",
            "source": {"format": "csv", "path": str(raw_path(work, n))},
            "clean": {"dedup": "last", "user_core": 5, "item_core": 5},
            "split": {"method": "random", "ratios": [0.8, 0.1, 0.1]},
            "cache_dir": str(work / "cache"),
        }
    )


def child_generate(n: int, work: Path) -> dict[str, Any]:
    import numpy as np

    from recsys.data.synthetic import generate_arrays, write_raw

    t0 = time.perf_counter()
    data = generate_arrays(n, seed=0)
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    path = write_raw(data, raw_path(work, n))
    write_s = time.perf_counter() - t0
    return {
        "generate_s": gen_s,
        "write_s": write_s,
        "rows": len(data),
        "users": int(np.count_nonzero(np.bincount(data.users, minlength=data.n_users))),
        "items": int(np.count_nonzero(np.bincount(data.items, minlength=data.n_items))),
        "n_users": data.n_users,
        "n_items": data.n_items,
        "n_clusters": data.n_clusters,
        "draws": data.draws,
        "file_gb": path.stat().st_size / GB,
    }


def child_pipeline(n: int, work: Path) -> dict[str, Any]:
    timer = StepTimer()
    timer.install()
    from recsys.data import prepare as prep
    from recsys.data.graph import build_graph

    base_gb = rss_bytes() / GB
    cfg = data_config(work, n)
    t0 = time.perf_counter()
    with timer.step(PREPARE):
        prepared = prep.prepare(cfg, force=True)
    prepare_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with timer.step(LOAD):
        spec = prep.load_spec(prepared)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with timer.step(GRAPH):
        graph = build_graph(spec.train, spec.n_users, spec.n_items)
    graph_s = time.perf_counter() - t0
    timer.stop()
    stats = timer.stats
    card = prepared.card
    steps = {s["step"]: s for s in card["steps"]}
    return {
        "prepare_s": prepare_s,
        "load_spec_s": load_s,
        "graph_s": graph_s,
        "pipeline_s": prepare_s + load_s + graph_s,
        "base_gb": base_gb,
        "steps": stats,
        "read_rows": steps["read"]["rows"],
        "dedup_rows": steps["dedup"]["rows"],
        "kcore_rows": steps["k-core"]["rows"],
        "kcore_rounds": card["kcore_rounds"],
        "users": card["n_users"],
        "items": card["n_items"],
        "train": len(spec.train),
        "valid": len(spec.valid),
        "test": len(spec.test),
        "test_users": int(spec.eval_users_test.numel()),
        "edges": graph.n_edges,
    }


def _spec(work: Path, n: int) -> Any:
    from recsys.data.prepare import load_spec, prepare

    return load_spec(prepare(data_config(work, n)))  # a cache hit after the pipeline stage


class OneBatchPerEpoch:
    """A sampler that replays batches drawn before the fit, one per "epoch", so that the loop's
    history holds the time of every single step."""

    Config = None

    def __init__(self, batches: list[Any]) -> None:
        self.batches = batches

    def epoch(
        self, spec: Any, batch_size: int, generator: Any, probe: Any = None, epoch: int = 1
    ) -> Iterator[Any]:
        return iter(self.batches[epoch - 1 : epoch])


def child_train(n: int, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    import statistics

    import torch

    from recsys.losses import LOSSES
    from recsys.models import build_model
    from recsys.models.lightgcn import LightGCNConfig
    from recsys.samplers import SAMPLERS
    from recsys.seeding import generator
    from recsys.train.config import TrainConfig
    from recsys.train.loop import fit

    torch.set_num_threads(args.threads)
    spec = _spec(work, n)
    base_gb = rss_bytes() / GB
    t0 = time.perf_counter()
    model = build_model("lightgcn", LightGCNConfig(dim=64, layers=3), spec, seed=0)
    init_s = time.perf_counter() - t0  # includes building the graph
    sampler = SAMPLERS["uniform"]()
    t0 = time.perf_counter()
    it = sampler.epoch(spec, BATCH, generator(0, "sampler"))  # samples the whole epoch
    sample_s = time.perf_counter() - t0
    total = args.warmup + args.steps
    batches = [b for _, b in zip(range(total), it, strict=False)]
    started: list[float] = []

    def budget(epoch: int, row: dict[str, float]) -> bool:
        """Stop once the timed steps pass the budget (after at least 3 of them)."""
        if epoch == args.warmup:
            started.append(time.perf_counter())
        timed = epoch - args.warmup
        return bool(started) and timed >= 3 and time.perf_counter() - started[0] > args.step_budget

    cfg = TrainConfig(
        epochs=len(batches), batch_size=BATCH, lr=1e-3, optimizer="adam", patience=0,
        device="cpu", noise_diagnostics=False,
    )  # fmt: skip
    sampler_replay: Any = OneBatchPerEpoch(batches)
    losses = [LOSSES["bpr"]()]
    result = fit(model, losses, sampler_replay, spec, cfg, seed=0, hooks=[budget])
    seconds = [row["seconds"] for row in result.history]
    timed = seconds[args.warmup :]
    step_s = statistics.median(timed)
    n_steps = math.ceil(len(spec.train) / BATCH)
    return {
        "init_s": init_s,
        "sample_epoch_s": sample_s,
        "step_s": step_s,
        "step_mean_s": statistics.fmean(timed),
        "steps_timed": len(timed),
        "warmup_s": seconds[: args.warmup],
        "steps_per_epoch": n_steps,
        "epoch_s": sample_s + n_steps * step_s,
        "base_gb": base_gb,
        "loss_last": result.history[-1]["loss"],
    }


def child_eval(n: int, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from recsys.eval.config import EvalConfig
    from recsys.eval.protocol import evaluate
    from recsys.models import build_model
    from recsys.models.lightgcn import LightGCNConfig

    torch.set_num_threads(args.threads)
    spec = _spec(work, n)
    model = build_model("lightgcn", LightGCNConfig(dim=64, layers=3), spec, seed=0)
    model.eval()
    spec.train_keys()  # built once, as in training
    t0 = time.perf_counter()
    scorer = model.scorer()  # one propagation over the graph
    propagate_s = time.perf_counter() - t0
    base_gb = rss_bytes() / GB
    cfg = EvalConfig(ks=(20,), metrics=("recall", "ndcg"), export_topk=0)
    users = spec.eval_users_test
    n_eval = int(users.numel())

    def run(subset: torch.Tensor) -> tuple[float, float]:
        part = dataclasses.replace(spec, eval_users_test=subset)
        t = time.perf_counter()
        res = evaluate(scorer, part, "test", cfg)
        return time.perf_counter() - t, res.summary["recall@20"]

    probe = min(n_eval, 2048)
    probe_s, recall = run(users[:probe])
    if probe == n_eval:
        seconds, used = probe_s, n_eval
    elif probe_s * n_eval / probe <= args.eval_budget:
        seconds, recall = run(users)
        used = n_eval
    else:
        used = max(probe, int(args.eval_budget / probe_s * probe) // 256 * 256)
        gen = torch.Generator().manual_seed(0)
        subset = users[torch.randperm(n_eval, generator=gen)[:used]].sort().values
        part_s, recall = run(subset)
        seconds = part_s * n_eval / used
    return {
        "propagate_s": propagate_s,
        "eval_s": seconds,
        "users_evaluated": used,
        "test_users": n_eval,
        "extrapolated": used < n_eval,
        "items": spec.n_items,
        "base_gb": base_gb,
        "recall@20": recall,
    }


def child_main(args: argparse.Namespace) -> None:
    n, work = int(float(args.n)), Path(args.work)
    stage = args.child
    if stage == "generate":
        out = child_generate(n, work)
    elif stage == "pipeline":
        out = child_pipeline(n, work)
    elif stage == "train":
        out = child_train(n, work, args)
    else:
        out = child_eval(n, work, args)
    out["peak_gb"] = peak_rss_bytes() / GB
    print(json.dumps(out))


# --------------------------------------------------------------------------- parent


def run_stage(stage: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    """Run one stage in a fresh interpreter under the memory watchdog."""
    limit = min(args.mem_limit_gb * GB, mem_available_bytes() - GB // 2)
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--child", stage, "--n", str(n),
        "--work", str(args.work), "--threads", str(args.threads), "--steps", str(args.steps),
        "--warmup", str(args.warmup), "--step-budget", str(args.step_budget),
        "--eval-budget", str(args.eval_budget),
    ]  # fmt: skip
    env = {**os.environ, "POLARS_MAX_THREADS": str(args.threads)}
    if args.omp_wait:
        env["OMP_WAIT_POLICY"] = args.omp_wait
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    watched = {"peak": 0, "killed": False}

    def watch() -> None:
        while proc.poll() is None:
            rss = rss_bytes(proc.pid)
            watched["peak"] = max(watched["peak"], rss)
            if rss > limit:
                watched["killed"] = True
                proc.send_signal(signal.SIGKILL)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    stdout, stderr = proc.communicate()
    thread.join()
    wall = time.perf_counter() - t0
    if watched["killed"]:
        msg = f"aborted: RSS passed the {limit / GB:.1f} GB limit"
        print(f"  {stage} N={n:,}: {msg}", flush=True)
        return {"aborted": msg, "wall_s": wall, "peak_gb": watched["peak"] / GB}
    if proc.returncode != 0:
        tail = stderr.strip().splitlines()[-5:]
        raise SystemExit(f"{stage} N={n:,} failed ({proc.returncode}):\n" + "\n".join(tail))
    out = dict(json.loads(stdout.strip().splitlines()[-1]))
    out["wall_s"] = wall
    out["load"] = [load_before, os.getloadavg()[0]]  # 1-min load average before / after
    return out


def load_results(work: Path) -> dict[str, Any]:
    path = work / "results.json"
    return dict(json.loads(path.read_text())) if path.is_file() else {}


def save_results(work: Path, results: dict[str, Any]) -> None:
    from recsys.atomic import write_text

    write_text(work / "results.json", json.dumps(results, indent=1) + "\n")  # keeps step order


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    import numpy
    import polars
    import torch

    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GB
    return (
        f"{cpu}, {os.cpu_count()} cores, {ram:.0f} GB RAM, Python {platform.python_version()}, "
        f"torch {torch.__version__}, polars {polars.__version__}, numpy {numpy.__version__}"
    )


def fmt(value: Any, spec: str = ".1f", missing: str = "–") -> str:
    if value is None:
        return missing
    return format(value, spec)


def report(results: dict[str, Any], args: argparse.Namespace) -> str:
    """The Markdown report (tables), from the stored results."""
    sizes = sorted(results["sizes"], key=int)
    lines = [
        "# Scaling: data pipeline, LightGCN step and full-ranking evaluation vs data size",
        "",
        "Commands (in this order; each adds its sizes to `<work>/results.json`):",
        "",
        *[f"    {c}" for c in results["commands"]],
        "",
        f"Machine: {results['machine']}. Run {results['date']}; the machine was shared with",
        "other jobs, so single runs carry their load (each stage ran once).",
        "",
        "Data: `recsys.data.synthetic.generate_arrays(N, seed=0)` written as CSV (string ids,",
        "5% duplicate rows). Pipeline: `prepare` (hash input, read + validate, integer id codes,",
        "dedup, 5-core, random 80/10/10, id maps, Parquet) + `load_spec` + `build_graph`. Peak =",
        "the stage's process high-water RSS (`ru_maxrss`, interpreter and imports included).",
        "",
        "| N raw | users | items | rows after 5-core (rounds) | generate s (write s) | "
        "pipeline s | pipeline peak GB | LightGCN ms/step (steps) | epoch s (steps/epoch) | "
        "eval s (test users x items) | eval peak GB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in sizes:
        r = results["sizes"][key]
        g, p = r.get("generate", {}), r.get("pipeline", {})
        t, e = r.get("train"), r.get("eval")
        if "aborted" in p:
            pipe = (p["aborted"], fmt(p.get("peak_gb")))
            shape = ("–", "–", "–")
        else:
            pipe = (fmt(p.get("pipeline_s")), fmt(p.get("peak_gb"), ".2f"))
            shape = (
                f"{p['users']:,}",
                f"{p['items']:,}",
                f"{p['kcore_rows']:,} ({p['kcore_rounds']})",
            )
        gen = f"{fmt(g.get('generate_s'))} ({fmt(g.get('write_s'))})" if g else "–"
        if t and "aborted" not in t:
            step = f"{t['step_s'] * 1e3:,.0f} ({t['steps_timed']})"
            step = step if t["step_s"] >= 0.01 else f"{t['step_s'] * 1e3:.1f} ({t['steps_timed']})"
            hours = f", {t['epoch_s'] / 3600:.1f} h" if t["epoch_s"] >= 3600 else ""
            digits = ",.0f" if t["epoch_s"] >= 100 else ".1f"
            epoch = f"{t['epoch_s']:{digits}}{hours} ({t['steps_per_epoch']:,})"
        else:
            step = epoch = "–" if not t else t["aborted"]
        if e and "aborted" not in e:
            star = "*" if e["extrapolated"] else ""
            digits = ".1f" if e["eval_s"] >= 0.1 else ".2f"
            ev = f"{e['eval_s']:,{digits}}{star} ({e['test_users']:,} x {e['items']:,})"
            ev_peak = fmt(e["peak_gb"], ".2f")
        else:
            ev = ev_peak = "–" if not e else e["aborted"]
        lines.append(
            f"| {int(key):,} | {shape[0]} | {shape[1]} | {shape[2]} | {gen} | {pipe[0]} | "
            f"{pipe[1]} | {step} | {epoch} | {ev} | {ev_peak} |"
        )
    lines += [
        "",
        "`*`: evaluated on a seeded random subset of the test users and extrapolated linearly "
        "(see below). Epoch s = one epoch of uniform negative sampling + steps/epoch x the "
        "measured step (a full epoch was not run).",
        "",
    ]
    for key in sizes:
        r = results["sizes"][key]
        e = r.get("eval")
        if e and e.get("extrapolated"):
            lines.append(
                f"* N = {int(key):,}: eval timed on {e['users_evaluated']:,} of "
                f"{e['test_users']:,} test users (budget {results['eval_budget']:.0f} s), "
                "extrapolated."
            )
    lines += ["", "## Stage details", ""]
    lines += [
        "| N raw | raw file GB | rows drawn / N | prepare s | load_spec s | build_graph s | "
        "train rows | graph edges | LightGCN init s | neg. sampling s/epoch | train peak GB | "
        "scorer propagation s | load avg (pipeline / train / eval) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in sizes:
        r = results["sizes"][key]
        g, p = r.get("generate") or {}, r.get("pipeline") or {}
        t, e = r.get("train") or {}, r.get("eval") or {}
        cells = [
            f"{int(key):,}",
            fmt(g.get("file_gb"), ".2f"),
            fmt(g["draws"] / g["rows"] if g else None, ".2f"),
            fmt(p.get("prepare_s")),
            fmt(p.get("load_spec_s")),
            fmt(p.get("graph_s")),
            f"{p['train']:,}" if "train" in p else "–",
            f"{p['edges']:,}" if "edges" in p else "–",
            fmt(t.get("init_s")),
            fmt(t.get("sample_epoch_s")),
            fmt(t.get("peak_gb"), ".2f"),
            fmt(e.get("propagate_s"), ".2f"),
            " / ".join(fmt(max(x["load"]), ".1f") if "load" in x else "–" for x in (p, t, e)),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    for key in sizes:
        p = results["sizes"][key].get("pipeline", {})
        if "steps" not in p or int(key) < BREAKDOWN_MIN:
            continue
        lines += [
            "",
            f"### Where the pipeline's time goes at N = {int(key):,}",
            "",
            f"Pipeline {p['pipeline_s']:.1f} s, peak {p['peak_gb']:.2f} GB (the interpreter with "
            f"its imports: {p['base_gb']:.2f} GB). Inclusive s contains the steps nested in it; "
            "exclusive s does not; peak = the highest RSS sampled while the step ran.",
            "",
            "| step | calls | inclusive s | exclusive s | share of pipeline | peak GB |",
            "|---|---|---|---|---|---|",
        ]
        order = [PREPARE, *dict.fromkeys(label for _, _, label in STEPS), LOAD, GRAPH]
        for label in order:
            s = p["steps"].get(label)
            if not s or not s["calls"]:
                continue
            lines.append(
                f"| {label} | {int(s['calls'])} | {s['seconds']:.2f} | {s['exclusive']:.2f} | "
                f"{100 * s['exclusive'] / p['pipeline_s']:.0f}% | {s['peak_gb']:.2f} |"
            )
    goal = results["sizes"].get(str(GOAL_N), {}).get("pipeline")
    if goal and "pipeline_s" in goal:
        ok_t, ok_m = goal["pipeline_s"] <= GOAL_SECONDS, goal["peak_gb"] <= GOAL_GB
        lines += [
            "",
            f"**Goal** (N = {GOAL_N:,}: pipeline <= {GOAL_SECONDS:.0f} s and <= "
            f"{GOAL_GB:.0f} GB): measured {goal['pipeline_s']:.1f} s "
            f"({'met' if ok_t else 'MISSED'}) and {goal['peak_gb']:.2f} GB "
            f"({'met' if ok_m else 'MISSED'}).",
        ]
    lines += ["", "![cost against size](scaling.png)", ""]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(results["sizes"], key=int)

    def series(stage: str, field: str) -> tuple[list[int], list[float]]:
        xs, ys = [], []
        for key in sizes:
            r = results["sizes"][key].get(stage) or {}
            if field in r and "aborted" not in r:
                xs.append(int(key))
                ys.append(float(r[field]))
        return xs, ys

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(12, 4.8))
    for stage, field, label in [
        ("generate", "generate_s", "generate (s)"),
        ("pipeline", "pipeline_s", "pipeline: prepare + graph (s)"),
        ("train", "step_s", "LightGCN step (s)"),
        ("train", "epoch_s", "LightGCN epoch, extrapolated (s)"),
        ("eval", "eval_s", "full-ranking eval, test users (s)"),
    ]:
        xs, ys = series(stage, field)
        if xs:
            ax_t.plot(xs, ys, marker="o", label=label)
    ax_t.axhline(GOAL_SECONDS, color="grey", linestyle=":", linewidth=1)
    ax_t.axvline(GOAL_N, color="grey", linestyle=":", linewidth=1)
    ax_t.set(xscale="log", yscale="log", xlabel="raw interactions N", ylabel="seconds")
    ax_t.set_title("time")
    ax_t.legend(fontsize=8)
    for stage, label in [
        ("generate", "generate"),
        ("pipeline", "pipeline"),
        ("train", "LightGCN training"),
        ("eval", "evaluation"),
    ]:
        xs, ys = series(stage, "peak_gb")
        if xs:
            ax_m.plot(xs, ys, marker="o", label=label)
    ax_m.axhline(GOAL_GB, color="grey", linestyle=":", linewidth=1)
    ax_m.axvline(GOAL_N, color="grey", linestyle=":", linewidth=1)
    ax_m.set(xscale="log", yscale="log", xlabel="raw interactions N", ylabel="peak RSS (GB)")
    ax_m.set_title("peak memory (process high-water mark)")
    ax_m.legend(fontsize=8)
    fig.suptitle("Cost against size (2 threads; dotted: the 2e7 / 60 s / 4 GB goal)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(results: dict[str, Any], args: argparse.Namespace) -> None:
    out = Path(args.out)
    notes = ""
    if out.is_file():
        text = out.read_text(encoding="utf-8")
        if NOTES in text:
            notes = text[text.index(NOTES) :]
    from recsys.atomic import write_text

    write_text(out, report(results, args) + ("\n" + notes if notes else f"\n{NOTES}\n"))
    plot(results, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")


def parse_sizes(text: str) -> list[int]:
    return [int(float(s)) for s in text.split(",") if s.strip()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1e5,1e6,1e7,2e7", help="full runs (all stages)")
    parser.add_argument("--pipeline-only", default="5e7", help="sizes with generate + pipeline")
    parser.add_argument("--work", default="/tmp/recsys-scaling")
    parser.add_argument("--out", default=str(REPO / "docs" / "benchmarks" / "scaling.md"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--step-budget", type=float, default=120.0)
    parser.add_argument("--eval-budget", type=float, default=300.0)
    parser.add_argument("--mem-limit-gb", type=float, default=20.0)
    parser.add_argument(
        "--omp-wait",
        default="PASSIVE",
        help="OMP_WAIT_POLICY of the children ('' keeps the environment's)",
    )
    parser.add_argument(
        "--stages",
        default="generate,pipeline,train,eval",
        help="stages to (re)run; results of the others are kept",
    )
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--n", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(args)
        return
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results = load_results(work)
    results.setdefault("sizes", {})
    if not args.report_only:
        command = "python benchmarks/scaling.py " + " ".join(sys.argv[1:] if argv is None else argv)
        results["commands"] = [*results.get("commands", []), command]
        results["machine"] = machine()
        results["date"] = time.strftime("%Y-%m-%d")
        results["eval_budget"] = args.eval_budget
        full, pipe_only = parse_sizes(args.sizes), parse_sizes(args.pipeline_only)
        for n in sorted(set(full) | set(pipe_only)):
            entry = results["sizes"].setdefault(str(n), {})
            wanted = args.stages.split(",")
            stages = [s for s in ("pipeline", "train", "eval") if s in wanted]
            if n not in full:
                stages = [s for s in stages if s == "pipeline"]
            if not raw_path(work, n).is_file() or "generate" not in entry:
                stages.insert(0, "generate")
            for stage in stages:
                print(f"N={n:,}: {stage} ...", flush=True)
                entry[stage] = run_stage(stage, n, args)
                save_results(work, results)
                print(f"  {stage}: {json.dumps(_brief(entry[stage]))}", flush=True)
                if "aborted" in entry[stage]:
                    break
    write_report(results, args)


def _brief(r: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items() if k != "steps"}


if __name__ == "__main__":
    main()
