"""Time RecBole 1.2.1's training epochs on a given train/valid/test split (run as a subprocess).

The split is read from RecBole atomic benchmark files so that RecBole trains on exactly the
interactions we train on::

    <data-dir>/<name>.train.inter
    <data-dir>/<name>.valid.inter
    <data-dir>/<name>.test.inter

where ``<name>`` is the base name of ``<data-dir>`` and each file is tab-separated with the
header ``user_id:token<TAB>item_id:token``. RecBole is configured with
``benchmark_filename: [train, valid, test]`` (no filtering, no re-splitting).

For every requested model the script builds ``Config`` → ``Dataset`` → ``data_preparation`` →
model → ``Trainer`` directly (``recbole.quick_start`` imports ray), runs ``--warmup`` untimed
epochs, then times ``trainer._train_epoch`` for ``--epochs`` epochs (negative sampling by
RecBole's dataloader included: ``worker: 0`` samples in this process), and optionally one
full-ranking evaluation of the valid split. Results go to stdout as one JSON object; RecBole's
own output is sent to stderr. It runs in a scratch working directory, because RecBole writes
``saved/`` and ``log_tensorboard/`` relative to the working directory.

Example::

    python benchmarks/recbole_epoch_time.py --data-dir /tmp/x/bench \\
        --models BPR LightGCN:2 LightGCN:3 --epochs 5 --warmup 1 --threads 2 --eval
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent))

import recbole_shims

recbole_shims.apply()

import torch  # noqa: E402

SPLITS = ("train", "valid", "test")


def parse_model(spec: str) -> tuple[str, int | None]:
    """``"LightGCN:3"`` → ``("LightGCN", 3)``; ``"BPR"`` → ``("BPR", None)``."""
    name, _, layers = spec.partition(":")
    return name, (int(layers) if layers else None)


def recbole_config(
    name: str, layers: int | None, data_dir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """The RecBole config dict matching our training settings."""
    config: dict[str, Any] = {
        "data_path": str(data_dir.parent),
        "benchmark_filename": list(SPLITS),
        "load_col": {"inter": ["user_id", "item_id"]},
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "train_neg_sample_args": {
            "distribution": "uniform",
            "sample_num": args.negatives,
            "alpha": 1.0,
            "dynamic": False,
            "candidate_num": 0,
        },
        "epochs": args.warmup + args.epochs,
        "train_batch_size": args.batch_size,
        "eval_batch_size": 4096,
        "learner": "adam",
        "learning_rate": args.lr,
        "weight_decay": 0.0,
        "embedding_size": args.dim,
        "metrics": ["Recall", "NDCG"],
        "topk": [10, 20, 50],
        "valid_metric": "NDCG@20",
        "seed": args.seed,
        "reproducibility": True,
        "gpu_id": "",
        "use_gpu": False,
        "worker": 0,
        "show_progress": False,
        "save_dataset": False,
        "save_dataloaders": False,
        "log_wandb": False,
        "checkpoint_dir": "saved",
    }
    if layers is not None:
        config["n_layers"] = layers
    if name == "LightGCN":
        config["reg_weight"] = 1e-5
    return config


class Bench:
    """One RecBole model built on the split, ready to train epoch by epoch."""

    def __init__(
        self, name: str, layers: int | None, data_dir: Path, args: argparse.Namespace
    ) -> None:
        from recbole.config import Config
        from recbole.data import create_dataset, data_preparation
        from recbole.utils import get_model, get_trainer, init_seed

        t_setup = time.perf_counter()
        config = Config(
            model=name,
            dataset=data_dir.name,
            config_dict=recbole_config(name, layers, data_dir, args),
        )
        init_seed(config["seed"], config["reproducibility"])
        dataset = create_dataset(config)
        self.train_data, self.valid_data, _ = data_preparation(config, dataset)
        init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
        model = get_model(config["model"])(config, self.train_data._dataset)
        model = model.to(config["device"])
        self.trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
        self.trainer.eval_collector.data_collect(self.train_data)
        self.threads = args.threads
        self.epochs_run = 0
        self.info: dict[str, Any] = {
            "model": name,
            "layers": layers,
            "n_users": int(dataset.user_num - 1),
            "n_items": int(dataset.item_num - 1),
            "n_train": len(self.train_data._dataset),
            "batches_per_epoch": len(self.train_data),
            "setup_seconds": time.perf_counter() - t_setup,
        }

    def epoch(self) -> tuple[float, float]:
        """Train one epoch (sampling included); return ``(seconds, summed batch loss)``."""
        # RecBole never touches the thread count, but set it again right before timing.
        torch.set_num_threads(self.threads)
        t0 = time.perf_counter()
        loss = self.trainer._train_epoch(self.train_data, self.epochs_run, show_progress=False)
        seconds = time.perf_counter() - t0
        self.epochs_run += 1
        return seconds, float(sum(loss) if isinstance(loss, tuple) else loss)

    def evaluate(self) -> tuple[float, dict[str, float]]:
        """One full-ranking evaluation of the valid split; ``(seconds, metrics)``."""
        t0 = time.perf_counter()
        metrics = self.trainer.evaluate(self.valid_data, load_best_model=False, show_progress=False)
        return time.perf_counter() - t0, {k: float(v) for k, v in metrics.items()}


def time_model(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    """Warm-up epochs, then ``args.epochs`` timed epochs (and one valid evaluation)."""
    seconds: list[float] = []
    losses: list[float] = []
    for epoch in range(args.warmup + args.epochs):
        dt, loss = bench.epoch()
        if epoch >= args.warmup:
            seconds.append(dt)
        losses.append(loss)
    result = dict(bench.info)
    result.update(
        {
            "epoch_seconds": seconds,
            "mean": statistics.fmean(seconds),
            "sd": statistics.stdev(seconds) if len(seconds) > 1 else 0.0,
            "median": statistics.median(seconds),
            "min": min(seconds),
            "losses": losses,
            "threads": torch.get_num_threads(),
        }
    )
    if args.eval:
        result["eval_seconds"], result["valid_metrics"] = bench.evaluate()
    return result


def serve(benches: list[Bench], reply: TextIO) -> None:
    """Answer line commands on stdin with one JSON line each, until ``quit`` or EOF.

    * ``train K``: one epoch of model ``K`` → ``{"seconds": s, "loss": l}``;
    * ``eval K``: one valid evaluation → ``{"seconds": s, "metrics": {...}}``.

    Lets a driver interleave RecBole epochs with its own, so both see the same machine load.
    """
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        bench = benches[int(words[1])]
        if words[0] == "train":
            dt, loss = bench.epoch()
            out: dict[str, Any] = {"seconds": dt, "loss": loss}
        elif words[0] == "eval":
            dt, metrics = bench.evaluate()
            out = {"seconds": dt, "metrics": metrics}
        else:
            out = {"error": f"unknown command {words[0]!r}"}
        reply.write(json.dumps(out) + "\n")
        reply.flush()


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, time every model, print one JSON object on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--models", nargs="+", default=["BPR", "LightGCN:2", "LightGCN:3"])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--negatives", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--eval", action="store_true", help="also time one valid evaluation")
    parser.add_argument(
        "--serve",
        action="store_true",
        help="build the models, print one JSON line of their info, then answer stdin commands "
        "(see serve()) instead of timing on its own",
    )
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    data_dir = args.data_dir.resolve()
    missing = [s for s in SPLITS if not (data_dir / f"{data_dir.name}.{s}.inter").is_file()]
    if missing:
        print(
            f"error: {data_dir} lacks {data_dir.name}.{{{','.join(missing)}}}.inter",
            file=sys.stderr,
        )
        return 2

    import recbole

    # RecBole's Config parses sys.argv for ``--key=value`` overrides: hide ours from it.
    sys.argv = sys.argv[:1]
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    results = []
    reply = sys.stdout
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="recbole_bench_") as scratch:
        os.chdir(scratch)
        try:
            with contextlib.redirect_stdout(sys.stderr):
                benches = [Bench(*parse_model(spec), data_dir, args) for spec in args.models]
                if args.serve:
                    header = {
                        "recbole_version": recbole.__version__,
                        "torch_version": torch.__version__,
                        "threads": args.threads,
                        "models": [b.info for b in benches],
                    }
                    reply.write(json.dumps(header) + "\n")
                    reply.flush()
                    serve(benches, reply)
                    return 0
                results = [time_model(bench, args) for bench in benches]
        finally:
            os.chdir(cwd)
    out = {
        "recbole_version": recbole.__version__,
        "torch_version": torch.__version__,
        "threads": args.threads,
        "epochs": args.epochs,
        "warmup": args.warmup,
        "results": results,
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
