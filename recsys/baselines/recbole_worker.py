"""Train and evaluate one RecBole model on exported benchmark files (run as a subprocess).

Usage (what :func:`recsys.baselines.recbole_run.run_recbole` executes)::

    python -m recsys.baselines.recbole_worker CONFIG.json

``CONFIG.json`` holds:

* ``model``: RecBole model name; ``param_names``: its hyperparameter names (recorded);
* ``data_dir``: the directory of ``<name>.{train,valid,test}.inter``
  (:mod:`recsys.baselines.recbole_export`);
* ``out_dir``: where the results go;
* ``config``: RecBole's ``config_dict`` (:func:`recsys.baselines.recbole_models.recbole_config`);
* ``list_k``: length of the exported lists; ``load_best_model``: test with the best validation
  checkpoint; ``threads``: ``torch.set_num_threads`` (null: leave it).

It applies :mod:`recsys.baselines.recbole_shims`, then calls RecBole's API directly (not
``recbole.quick_start``, which imports ray): ``Config`` → ``create_dataset`` →
``data_preparation`` → ``get_model`` → ``get_trainer`` → ``trainer.fit(train, valid)`` →
``trainer.evaluate`` on valid and test. For every user of the valid and the test loader it then
takes the full-ranking top-``list_k`` with ``recbole.utils.case_study.full_sort_topk`` (which
masks ``[PAD]`` and the user's history as the evaluation does: train items on valid, train and
valid items on test), batch by batch over the SAME user batches as ``trainer.evaluate`` so the
scores are bit-identical to those RecBole's metrics were computed from. Entries scored ``-inf``
(fewer candidates than ``list_k``) are left out.

Writes to ``out_dir``:

* ``topk_valid.parquet``, ``topk_test.parquet``: ``user_id`` (token), ``rank`` (1-based, int32),
  ``item_id`` (token), ``score`` (float32, RecBole's);
* ``recbole.json``: RecBole's own ``valid``/``test`` metrics, ``best_epoch``, ``epochs_run``,
  ``history`` (per epoch: mean batch ``loss``, ``seconds``, ``valid/<metric>``), dataset sizes,
  the model's effective hyperparameters and library versions.

RecBole writes ``saved/`` and ``log_tensorboard/`` relative to the working directory, so the
worker runs in a scratch directory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from recsys.baselines import recbole_shims

SPLITS = ("valid", "test")


@contextlib.contextmanager
def _scratch_cwd() -> Iterator[Path]:
    """A temporary working directory for the block (RecBole writes relative paths)."""
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="recbole_worker_") as scratch:
        os.chdir(scratch)
        try:
            yield Path(scratch)
        finally:
            os.chdir(cwd)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("recbole", "torch", "numpy", "scipy", "pandas"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "absent"
    return out


def _record(trainer: Any, n_batches: int) -> tuple[list[dict[str, Any]], list[int]]:
    """Wrap the trainer's epoch, validation and checkpoint methods to record the history.

    Returns:
        ``(history rows, [best epoch])``; both filled while ``trainer.fit`` runs. The best epoch
        (1-based) is the last one RecBole saved a checkpoint for: it saves on every new best.
    """
    history: list[dict[str, Any]] = []
    best = [0]
    train_epoch, valid_epoch, save = (
        trainer._train_epoch,
        trainer._valid_epoch,
        trainer._save_checkpoint,
    )

    def timed_train(train_data: Any, epoch_idx: int, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        loss = train_epoch(train_data, epoch_idx, *args, **kwargs)
        total = float(sum(loss) if isinstance(loss, tuple) else loss)
        history.append(
            {
                "epoch": epoch_idx + 1,
                "loss": total / max(n_batches, 1),
                "seconds": time.perf_counter() - t0,
            }
        )
        return loss

    def recorded_valid(valid_data: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        score, result = valid_epoch(valid_data, *args, **kwargs)
        if history:
            history[-1].update({f"valid/{k}": float(v) for k, v in result.items()})
            history[-1]["valid_seconds"] = time.perf_counter() - t0
        return score, result

    def recorded_save(epoch: int, *args: Any, **kwargs: Any) -> Any:
        best[0] = epoch + 1
        return save(epoch, *args, **kwargs)

    trainer._train_epoch = timed_train
    trainer._valid_epoch = recorded_valid
    trainer._save_checkpoint = recorded_save
    return history, best


def _topk_rows(loader: Any, model: Any, dataset: Any, k: int, device: Any) -> dict[str, Any]:
    """Top-``k`` of every user of a full-sort loader, over the loader's own user batches."""
    import numpy as np
    import torch
    from recbole.utils.case_study import full_sort_topk

    uid_field, iid_field = dataset.uid_field, dataset.iid_field
    users, items, scores = [], [], []
    for batch in loader:
        uids = batch[0][uid_field]
        values, index = full_sort_topk(uids, model, loader, k, device=device)
        users.append(uids.cpu().unsqueeze(1).expand(-1, index.shape[1]))
        items.append(index.cpu())
        scores.append(values.cpu())
    user_t, item_t, score_t = torch.cat(users), torch.cat(items), torch.cat(scores)
    rank = torch.arange(1, item_t.shape[1] + 1).expand_as(item_t)
    keep = torch.isfinite(score_t)
    return {
        "user_id": np.asarray(dataset.id2token(uid_field, user_t[keep].numpy())).astype(str),
        "rank": rank[keep].numpy().astype(np.int32),
        "item_id": np.asarray(dataset.id2token(iid_field, item_t[keep].numpy())).astype(str),
        "score": score_t[keep].numpy().astype(np.float32),
    }


def run(job: dict[str, Any]) -> dict[str, Any]:
    """Train, evaluate and export the lists of one job (see the module docstring).

    Returns:
        The ``recbole.json`` record (also written to ``out_dir``).
    """
    recbole_shims.apply()
    import polars as pl
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    data_dir = Path(job["data_dir"]).resolve()
    # RecBole tries to DOWNLOAD a dataset whose directory it cannot find: refuse first.
    missing = [
        f"{data_dir.name}.{split}.inter"
        for split in ("train", *SPLITS)
        if not (data_dir / f"{data_dir.name}.{split}.inter").is_file()
    ]
    if missing:
        raise FileNotFoundError(f"{data_dir} lacks {', '.join(missing)}")
    out_dir = Path(job["out_dir"]).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    # RecBole's Config parses sys.argv for ``--key=value`` overrides: hide ours from it.
    sys.argv = sys.argv[:1]
    t_start = time.perf_counter()
    with _scratch_cwd() as scratch:
        config_dict = {
            **job["config"],
            "data_path": str(data_dir.parent),
            "checkpoint_dir": str(scratch / "saved"),
        }
        config = Config(model=job["model"], dataset=data_dir.name, config_dict=config_dict)
        init_seed(config["seed"], config["reproducibility"])
        dataset = create_dataset(config)
        train_data, valid_data, test_data = data_preparation(config, dataset)
        init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
        model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
        history, best = _record(trainer, len(train_data))
        t_fit = time.perf_counter()
        trainer.fit(train_data, valid_data, verbose=False, saved=True, show_progress=False)
        t_eval = time.perf_counter()
        k = min(int(job["list_k"]), dataset.item_num - 1)
        metrics: dict[str, dict[str, float]] = {}
        users_evaluated: dict[str, int] = {}
        for split, loader in zip(SPLITS, (valid_data, test_data), strict=True):
            result = trainer.evaluate(
                loader, load_best_model=bool(job["load_best_model"]), show_progress=False
            )
            metrics[split] = {key: float(value) for key, value in result.items()}
            rows = _topk_rows(loader, trainer.model, dataset, k, config["device"])
            pl.DataFrame(rows).write_parquet(out_dir / f"topk_{split}.parquet")
            users_evaluated[split] = len(loader.uid_list)
    t_end = time.perf_counter()
    record: dict[str, Any] = {
        "model": job["model"],
        "model_params": {name: config[name] for name in job.get("param_names", [])},
        "valid": metrics["valid"],
        "test": metrics["test"],
        "best_epoch": best[0] if history else 0,
        "epochs_run": len(history),
        "train_seconds": float(sum(row["seconds"] for row in history)),
        "seconds": {
            "setup": t_fit - t_start,
            "fit": t_eval - t_fit,
            "evaluate_and_lists": t_end - t_eval,
        },
        "history": history,
        "list_k": k,
        "n_users": int(dataset.user_num - 1),
        "n_items": int(dataset.item_num - 1),
        "rows": {
            "train": len(train_data._dataset),
            "valid": len(valid_data._dataset),
            "test": len(test_data._dataset),
        },
        "users_evaluated": users_evaluated,
        "device": str(config["device"]),
        "versions": _versions(),
    }
    with open(out_dir / "recbole.json", "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2, sort_keys=True, default=str)
    return record


def main(argv: list[str] | None = None) -> int:
    """``python -m recsys.baselines.recbole_worker CONFIG.json``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m recsys.baselines.recbole_worker CONFIG.json", file=sys.stderr)
        return 2
    with open(args[0], encoding="utf-8") as f:
        job = json.load(f)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    # RecBole prints progress to stdout; keep stdout for nothing but our own messages.
    with contextlib.redirect_stdout(sys.stderr):
        run(job)
    return 0


if __name__ == "__main__":
    sys.exit(main())
