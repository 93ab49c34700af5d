"""Full-ranking evaluation cost vs a bare lower bound, on Gowalla's full test users.

Data: the NGCF/LightGCN Gowalla split in ``shared/data/gowalla_lightgcn`` (29,858 users,
40,981 items, 810,128 train / 217,242 test pairs). Embeddings: random float32, dim 64 (the
cost of ranking does not depend on their values).

* **ours**: ``recsys.eval.protocol.evaluate`` on the test split with the default metrics:
  fixed 256-user scorer blocks, train masking, exact deterministic top-k, Recall/NDCG/Precision/
  Hit/MRR/MAP at K = 10 and 20, per-user arrays, top-20 export. **ours_k20**: the same with only
  Recall@20 and NDCG@20 and no export.
* **bound**: the least any evaluator must do: ``scores = U[u] @ I.T``; mask train items
  (searchsorted + index_put); ``torch.topk(scores, 20)``, in user chunks of ``--chunk`` users (the
  ``batch_users`` given to ours). No metric, no tie handling. **bound256**: the same in chunks of
  256 users (ours' GEMM shape).

Time: the four methods run interleaved in ONE subprocess (one untimed warm-up each, then
``--repeats`` rounds; the minimum per method is reported), so a fluctuating machine load hits
them alike. Peak memory: each method in a fresh subprocess (so allocator caches of one do not
flatter another), one warm-up pass then one measured pass; the peak resident set size above the
level before the pass, sampled every millisecond from ``/proc/self/statm``.

Usage::

    python benchmarks/eval_bound.py --threads 2
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # `python benchmarks/...` puts only benchmarks/ on the path

DATA = REPO.parent / "shared" / "data" / "gowalla_lightgcn"
GOAL = 2.0
"""Target ratio ours / bound (time and memory)."""


def read_lines(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``uid item item ...`` lines → (users, items) int64 arrays."""
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    frame = (
        pl.DataFrame({"line": lines})
        .select(pl.col("line").str.strip_chars().str.split(" ").alias("tok"))
        .filter(pl.col("tok").list.len() > 1)
        .select(
            pl.col("tok").list.first().cast(pl.Int64).alias("user"),
            pl.col("tok").list.slice(1).alias("item"),
        )
        .explode("item")
        .with_columns(pl.col("item").cast(pl.Int64))
    )
    return frame["user"].to_numpy().copy(), frame["item"].to_numpy().copy()


def load_spec(data_dir: Path) -> Any:
    from recsys.spec import DataSpec
    from recsys.types import Interactions

    tr_u, tr_i = read_lines(data_dir / "train.txt.gz")
    te_u, te_i = read_lines(data_dir / "test.txt.gz")
    n_users = int(max(tr_u.max(), te_u.max())) + 1
    n_items = int(max(tr_i.max(), te_i.max())) + 1
    train = Interactions(torch.from_numpy(tr_u), torch.from_numpy(tr_i))
    test = Interactions(torch.from_numpy(te_u), torch.from_numpy(te_i))
    empty = Interactions(torch.empty(0, dtype=torch.int64), torch.empty(0, dtype=torch.int64))
    has_train = torch.zeros(n_users, dtype=torch.bool)
    has_train[train.users] = True
    has_test = torch.zeros(n_users, dtype=torch.bool)
    has_test[test.users] = True
    return DataSpec(
        name="gowalla",
        data_hash="bench",
        n_users=n_users,
        n_items=n_items,
        train=train,
        valid=empty,
        test=test,
        user_ids=np.arange(n_users).astype(str),
        item_ids=np.arange(n_items).astype(str),
        eval_users_valid=torch.empty(0, dtype=torch.int64),
        eval_users_test=(has_train & has_test).nonzero().squeeze(1),
    )


class PeakRss:
    """Samples the resident set size in a thread; ``peak`` is the maximum seen (bytes)."""

    def __init__(self) -> None:
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.001)

    def __enter__(self) -> PeakRss:
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def bound_pass(spec: Any, user_emb: torch.Tensor, item_emb: torch.Tensor, chunk: int) -> int:
    """Bare full ranking: GEMM, train masking, torch.topk(20). Returns a checksum."""
    keys = spec.train_keys()
    users_all = spec.eval_users_test
    n_items = spec.n_items
    total = 0
    for start in range(0, len(users_all), chunk):
        u = users_all[start : start + chunk]
        scores = user_emb[u] @ item_emb.T
        lo = torch.searchsorted(keys, u * n_items)
        hi = torch.searchsorted(keys, (u + 1) * n_items)
        counts = hi - lo
        rows = torch.repeat_interleave(torch.arange(len(u)), counts)
        offsets = torch.cumsum(counts, 0) - counts
        pos = torch.arange(int(counts.sum())) - offsets[rows] + lo[rows]
        scores[rows, keys[pos] - u[rows] * n_items] = -torch.inf
        _, idx = torch.topk(scores, 20, dim=1)
        total += int(idx[:, 0].sum())
    return total


def make_runs(spec: Any, chunk: int) -> dict[str, Callable[[], Any]]:
    """The measured passes, keyed by method name."""
    from recsys.eval.config import EvalConfig
    from recsys.eval.protocol import evaluate

    gen = torch.Generator().manual_seed(0)
    user_emb = torch.randn(spec.n_users, 64, generator=gen) * 0.1
    item_emb = torch.randn(spec.n_items, 64, generator=gen) * 0.1
    spec.train_keys()  # built once, like in training; not part of either measurement

    def scorer(users: torch.Tensor) -> torch.Tensor:
        return user_emb[users] @ item_emb.T

    full = EvalConfig(ks=(10, 20), batch_users=chunk, export_topk=20)
    lean = EvalConfig(ks=(20,), metrics=("recall", "ndcg"), batch_users=chunk, export_topk=0)
    return {
        "bound": lambda: bound_pass(spec, user_emb, item_emb, chunk),
        "bound256": lambda: bound_pass(spec, user_emb, item_emb, 256),
        "ours": lambda: evaluate(scorer, spec, "test", full).summary["recall@20"],
        "ours_k20": lambda: evaluate(scorer, spec, "test", lean).summary["recall@20"],
    }


def child(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    """``time``: all methods interleaved in one process (fair under a fluctuating load);
    ``mem:<method>``: one method's peak memory in a fresh process."""
    torch.set_num_threads(args.threads)
    spec = load_spec(Path(args.data))
    runs = make_runs(spec, args.chunk)
    info = {"users": len(spec.eval_users_test), "n_items": spec.n_items}
    if mode == "time":
        for run in runs.values():
            run()  # warm-up
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, run in runs.items():
                t0 = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - t0)
        return {**info, "seconds": {name: min(v) for name, v in times.items()}, "all": times}
    method = mode.split(":", 1)[1]
    run = runs[method]
    run()  # warm-up
    with PeakRss() as mem:
        base = mem.rss()
        run()
    return {**info, "peak_mb": (mem.peak - base) / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=2048, help="users per chunk (batch_users)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args)))
        return
    if not (Path(args.data) / "train.txt.gz").is_file():
        raise SystemExit(f"{args.data}/train.txt.gz not found")

    def call(mode: str) -> dict[str, Any]:
        cmd = [sys.executable, __file__, "--child", mode, "--data", args.data]
        cmd += ["--threads", str(args.threads), "--chunk", str(args.chunk)]
        cmd += ["--repeats", str(args.repeats)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        return dict(json.loads(out.strip().splitlines()[-1]))

    timed = call("time")
    seconds: dict[str, float] = timed["seconds"]
    peak = {name: call(f"mem:{name}")["peak_mb"] for name in seconds}
    print(
        f"Gowalla test: {timed['users']} users x {timed['n_items']} items, dim 64, "
        f"torch {torch.__version__}, {args.threads} threads, chunk {args.chunk} users, "
        f"min of {args.repeats} interleaved repeats"
    )
    print(f"{'method':<10} {'seconds':>8} {'peak MB':>8} {'x time':>7} {'x mem':>7}")
    for name in seconds:
        print(
            f"{name:<10} {seconds[name]:8.3f} {peak[name]:8.1f} "
            f"{seconds[name] / seconds['bound']:7.2f} "
            f"{peak[name] / max(peak['bound'], 1e-9):7.2f}"
        )
    ratio = seconds["ours"] / seconds["bound"]
    verdict = "within" if ratio <= GOAL else "ABOVE"
    print(f"ours / bound time = {ratio:.2f} ({verdict} the {GOAL:.0f}x goal)")


if __name__ == "__main__":
    main()
