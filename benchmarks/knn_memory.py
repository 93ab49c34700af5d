"""Time and peak memory of the chunked item-item kNN graph at 100,000 items.

Each byte budget runs :func:`recsys.data.knn.knn_adjacency` on the same seeded synthetic
features (``--items`` × ``--dim`` float32 normal rows, ``--k`` neighbours) in a fresh child
process, which reports:

* **seconds**: wall time of ``knn_adjacency`` (similarity blocks, top-k, CSR assembly);
* **rss before**: the child's resident memory once torch is imported and the features exist;
* **peak rss**: the child's high-water mark (``VmHWM`` of ``/proc/self/status``) after the build;
* **extra**: peak minus before, i.e. what the build itself needed at its worst. It holds the
  normalised copy of the features (``items · dim · 4`` bytes), one similarity block (about the
  budget) and the ``items × k`` index arrays.

The dense ``items × items`` float32 similarity matrix that the chunking avoids is printed for
comparison (40 GB at 100,000 items).

Usage::

    python benchmarks/knn_memory.py --threads 2 --budgets 64,256
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # `python benchmarks/...` puts only benchmarks/ on the path

MB = 2**20


def _status_kb(field: str) -> int:
    """A ``kB`` field (``VmRSS``, ``VmHWM``) of this process's ``/proc/self/status``."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(items: int, dim: int, k: int, budget_mb: float, threads: int, device: str) -> dict:
    """Build one graph in this process and measure it (run in a fresh child process)."""
    import torch

    from recsys.data.knn import knn_adjacency

    if threads:
        torch.set_num_threads(threads)
    x = torch.randn(items, dim, generator=torch.Generator().manual_seed(0))
    max_bytes = int(budget_mb * MB)
    before = _status_kb("VmRSS")
    start = time.perf_counter()
    adj = knn_adjacency(x, k, max_bytes=max_bytes, device=torch.device(device))
    seconds = time.perf_counter() - start
    peak = _status_kb("VmHWM")
    return {
        "budget_mb": budget_mb,
        "chunk": max(1, max_bytes // (4 * items)),
        "seconds": seconds,
        "rss_before_mb": before / 1024,
        "peak_rss_mb": peak / 1024,
        "extra_mb": (peak - before) / 1024,
        "nnz": int(adj.values().numel()),
    }


def run_child(args: argparse.Namespace, budget_mb: float) -> dict:
    """Run :func:`child` for one budget in a fresh interpreter; return its measurements."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        "--items", str(args.items),
        "--dim", str(args.dim),
        "--k", str(args.k),
        "--budgets", str(budget_mb),
        "--threads", str(args.threads),
        "--device", args.device,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed for budget {budget_mb} MB:\n{proc.stderr[-3000:]}")
    result: dict = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--budgets", default="64,256", help="similarity-block budgets in MB")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--device", default="cpu", help="where the similarities run")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> str:
    """Run every budget in its own child process; print and return the report."""
    args = parse_args(argv)
    budgets = [float(b) for b in args.budgets.split(",")]
    if args.child:
        result = child(args.items, args.dim, args.k, budgets[0], args.threads, args.device)
        print(json.dumps(result))
        return ""
    dense_gb = args.items**2 * 4 / 1e9
    lines = [
        f"items {args.items:,}  dim {args.dim}  k {args.k}  device {args.device}  "
        f"threads {args.threads or 'default'}",
        f"features {args.items * args.dim * 4 / MB:.1f} MB; dense {args.items:,} x "
        f"{args.items:,} float32 similarity matrix avoided: {dense_gb:.1f} GB",
        f"{'budget MB':>9} {'chunk':>6} {'seconds':>8} {'rss before MB':>13} "
        f"{'peak rss MB':>11} {'extra MB':>9} {'nnz':>10}",
    ]
    print("\n".join(lines), flush=True)
    for budget in budgets:
        r = run_child(args, budget)
        line = (
            f"{r['budget_mb']:>9g} {r['chunk']:>6} {r['seconds']:>8.1f} "
            f"{r['rss_before_mb']:>13.0f} {r['peak_rss_mb']:>11.0f} {r['extra_mb']:>9.0f} "
            f"{r['nnz']:>10,}"
        )
        print(line, flush=True)
        lines.append(line)
    return "\n".join(lines)


if __name__ == "__main__":
    main()
