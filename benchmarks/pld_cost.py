"""PLD's cost per epoch against plain BPR on the same data, model and loop.

Data: ml-100k under PLD's protocol (``conf/data/ml-100k-pld.toml``, 70/10/20) with injected
noise ``--ratio`` (default 0.2), or ``--data`` for any data config. For each model (MF,
LightGCN) one fresh model per sampler is trained through ``recsys.train.loop.fit`` for
``--epochs`` epochs, in ONE process with the samplers interleaved round by round, so machine
load hits them alike:

* **bpr-user**: users uniform with replacement, one uniform positive (PLD's own baseline);
* **bpr-uniform**: every train pair once per epoch (the platform's default sampler);
* **pld**: PLD with ``k = 5``, ``τ = 0.1`` and no warm-up (every epoch resamples), which adds
  one ``no_grad`` forward over ``B (1 + k)`` (user, item) pairs per step (for LightGCN: one
  extra propagation).

The first epoch of every run is a warm-up and is not counted; the median epoch time over the
remaining epochs and rounds is reported, with the ratio PLD / bpr-user (the acceptance bound
is 2x). No validation and no diagnostics run inside the timed epochs.

Usage::

    python benchmarks/pld_cost.py --threads 2 --rounds 3 --epochs 6
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # `python benchmarks/...` puts only benchmarks/ on the path

from recsys.data.prepare import load_spec, prepare  # noqa: E402
from recsys.experiment import load_data_config  # noqa: E402
from recsys.losses import LOSSES  # noqa: E402
from recsys.models import build_model  # noqa: E402
from recsys.samplers import SAMPLERS  # noqa: E402
from recsys.spec import DataSpec  # noqa: E402
from recsys.train.config import TrainConfig  # noqa: E402
from recsys.train.device import resolve_device  # noqa: E402
from recsys.train.loop import fit  # noqa: E402

GOAL = 2.0
"""PLD may cost at most this many times plain BPR (bpr-user) per epoch."""
SAMPLER_SETTINGS = {
    "bpr-user": ("user", {}),
    "bpr-uniform": ("uniform", {}),
    "pld": ("pld", {"pool_size": 5, "temperature": 0.1, "warmup_epochs": 0}),
}


def epoch_seconds(
    spec: DataSpec, model_name: str, sampler_key: str, epochs: int, device: str
) -> list[float]:
    """Seconds of each epoch after the first (a warm-up)."""
    name, params = SAMPLER_SETTINGS[sampler_key]
    sampler = SAMPLERS[name](SAMPLERS[name].Config(**params))
    model = build_model(model_name, None, spec, seed=0).to(resolve_device(device))
    cfg = TrainConfig(
        epochs=epochs, batch_size=2048, lr=1e-3, optimizer="adamw", device=device, patience=0
    )
    result = fit(model, [LOSSES["bpr"]()], sampler, spec, cfg, seed=0)
    return [row["seconds"] for row in result.history[1:]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(REPO / "conf" / "data" / "ml-100k-pld.toml"))
    parser.add_argument("--ratio", type=float, default=0.2)
    parser.add_argument("--models", default="mf,lightgcn")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg, base = load_data_config(args.data, [f"noise.ratio={args.ratio}"])
    spec = load_spec(prepare(cfg, base_dir=base))
    print(
        f"data {spec.name}: {spec.n_users} users, {spec.n_items} items, {len(spec.train)} train "
        f"pairs (noise ratio {args.ratio}); device {resolve_device(args.device)}; "
        f"torch threads {torch.get_num_threads()}"
    )
    print(f"{'model':10} {'sampler':12} {'s/epoch':>9} {'x bpr-user':>11}")
    worst = 0.0
    for model_name in args.models.split(","):
        times: dict[str, list[float]] = {key: [] for key in SAMPLER_SETTINGS}
        for _ in range(args.rounds):
            for key in SAMPLER_SETTINGS:
                times[key] += epoch_seconds(spec, model_name, key, args.epochs, args.device)
        base_s = statistics.median(times["bpr-user"])
        for key, values in times.items():
            med = statistics.median(values)
            print(f"{model_name:10} {key:12} {med:9.4f} {med / base_s:11.2f}")
        worst = max(worst, statistics.median(times["pld"]) / base_s)
    verdict = "within" if worst <= GOAL else "ABOVE"
    print(f"worst PLD / bpr-user ratio {worst:.2f} ({verdict} the {GOAL:.0f}x goal)")


if __name__ == "__main__":
    main()
