"""The Python API; the CLI is a thin layer over it.

Typical notebook use::

    from recsys import api
    exp = api.load_experiment("conf/exp/ml100k-lightgcn.toml", ["train.epochs=20"])
    run = api.train(exp)                       # prepares data (cached), trains, evaluates
    run.results["test"]["ndcg@20"]
    model = run.model()                        # the trained torch module
    recs = run.recommend(k=10)                 # polars frame with original ids
    run.export_embeddings("emb/")              # users.parquet / items.parquet
    run = api.load_run("runs/lightgcn-1a2b3c4d")
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from recsys import atomic
from recsys.config import validate
from recsys.data.config import DataConfig
from recsys.data.prepare import Prepared, cache_root, load_spec, prepare
from recsys.errors import RecsysError
from recsys.eval.config import EvalConfig
from recsys.eval.protocol import EvalResult, evaluate_model
from recsys.eval.task_metrics import TaskPredictions, evaluate_tasks
from recsys.experiment import Experiment, build_experiment, load_experiment
from recsys.losses import build_losses
from recsys.models import build_model
from recsys.models.base import Model
from recsys.runs import DONE, new_manifest, read_json, run_id, status
from recsys.samplers import SAMPLERS
from recsys.spec import DataSpec
from recsys.train.device import resolve_device
from recsys.train.loop import Diagnostic, FitResult, fit
from recsys.types import ItemFeatures

__all__ = [
    "AlreadyDone",
    "TrainedRun",
    "evaluate",
    "load_experiment",
    "load_run",
    "prepare_data",
    "train",
]

log = logging.getLogger(__name__)


class AlreadyDone(RecsysError):
    """The run already finished; pass ``force=True`` to run it again."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(f"run already finished: {run_dir} (use --force to run it again)")
        self.run_dir = run_dir


def prepare_data(
    cfg: DataConfig, base_dir: Path | None = None, force: bool = False
) -> tuple[Prepared, DataSpec]:
    """Prepare (or load from the cache) a dataset and return its artifacts and DataSpec.

    Item features (``cfg.features``) are built or read from their own cache and attached to
    the spec; their card (dimensions, missing items per modality) goes to
    ``spec.card["features"]``. Multi-task samples (``cfg.multitask``) are built on top and
    attached as ``spec.multitask`` (a ``table`` builder has no interactions to prepare).
    """
    if cfg.multitask is not None and cfg.multitask.table is not None:
        from recsys.data.multitask.build import table_tasks

        return table_tasks(cfg, base_dir)
    prepared = prepare(cfg, base_dir=base_dir, force=force)
    spec = load_spec(prepared)
    if cfg.features:
        spec.features, card = item_features(cfg, prepared, spec, base_dir)
        spec.card = {**spec.card, "features": card}
    if cfg.multitask is not None:
        from recsys.data.multitask.build import with_rating_tasks

        spec = with_rating_tasks(cfg, prepared, spec, base_dir)
    return prepared, spec


def item_features(
    cfg: DataConfig, prepared: Prepared, spec: DataSpec, base_dir: Path | None
) -> tuple[dict[str, ItemFeatures], dict[str, Any]]:
    """The item modalities of ``cfg`` aligned with ``spec``'s items, and their card."""
    from recsys.data.features import build_features

    return build_features(
        cfg.features,
        item_ids=spec.item_ids,
        data_hash=prepared.hash,
        cache_dir=cache_root(cfg, base_dir),
        base_dir=base_dir,
        source_file=prepared.source_file,
    )


def evaluate(model: Model, spec: DataSpec, split: str, cfg: EvalConfig) -> EvalResult:
    """Full-ranking evaluation of ``model`` on ``split`` ("valid" or "test")."""
    return evaluate_model(model, spec, split, cfg)


@dataclass
class TrainedRun:
    """A run directory and what can be done with it."""

    dir: Path
    _spec: DataSpec | None = field(default=None, repr=False)
    _model: Model | None = field(default=None, repr=False)

    @cached_property
    def config(self) -> dict[str, Any]:
        return dict(read_json(self.dir / "config.json"))

    @cached_property
    def manifest(self) -> dict[str, Any]:
        return dict(read_json(self.dir / "manifest.json"))

    @property
    def results(self) -> dict[str, Any]:
        return dict(read_json(self.dir / "results.json"))

    @cached_property
    def experiment(self) -> Experiment:
        return build_experiment(
            self.config, str(self.dir / "config.json"), Path(self.manifest["base_dir"])
        )

    def spec(self) -> DataSpec:
        """The run's dataset (from the cache, prepared again if it was removed).

        Only the config's ``data`` section is read, so runs of models this package does not
        build (e.g. imported RecBole runs) have a dataset too.
        """
        if self._spec is None:
            data = validate(DataConfig, self.config["data"], str(self.dir / "config.json"), "data")
            _, self._spec = prepare_data(data, Path(self.manifest["base_dir"]))
        return self._spec

    def model(self, device: str | None = None) -> Model:
        """The trained model, loaded from ``model.pt``."""
        if self._model is None:
            exp = self.experiment
            spec = self.spec()
            model = build_model(exp.model.name, exp.model.cfg, spec, seed=exp.cfg.seed)
            state = torch.load(self.dir / "model.pt", map_location="cpu", weights_only=True)
            model.load_state_dict(state)
            self._model = model.to(resolve_device(device or "cpu"))
        return self._model

    def evaluate(self, split: str = "test", cfg: EvalConfig | None = None) -> EvalResult:
        """Evaluate the saved model again (e.g. with other K or conventions)."""
        return evaluate_model(self.model(), self.spec(), split, cfg or self.experiment.cfg.eval)

    def recommend(self, k: int = 10, users: Sequence[str] | None = None) -> pl.DataFrame:
        """Top-``k`` items per user with original ids, train items excluded.

        Args:
            k: list length.
            users: original user ids (default: every user).
        """
        spec = self.spec()
        model = self.model()
        if users is None:
            idx = torch.arange(spec.n_users)
        else:
            lookup = {u: i for i, u in enumerate(spec.user_ids.tolist())}
            missing = [u for u in users if u not in lookup]
            if missing:
                raise RecsysError(f"unknown user ids: {missing[:5]} ({len(missing)} in all)")
            idx = torch.tensor([lookup[u] for u in users], dtype=torch.int64)
        from recsys.eval.recommend import recommend_topk

        items, scores = recommend_topk(model, spec, idx, k)
        n = len(idx)
        return pl.DataFrame(
            {
                "user_id": np.repeat(spec.user_ids[idx.numpy()], k),
                "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), n),
                "item_id": spec.item_ids[items.reshape(-1)],
                "score": scores.reshape(-1).astype(np.float32),
            }
        )

    def export_embeddings(self, out_dir: str | Path) -> list[Path]:
        """Write ``users.parquet`` and ``items.parquet`` (original id + embedding vector)."""
        emb = self.model().embeddings()
        if emb is None:
            raise RecsysError(f"model {self.experiment.model.name!r} has no embeddings to export")
        spec = self.spec()
        out = Path(out_dir)
        paths = []
        for kind, ids, matrix in (
            ("users", spec.user_ids, emb[0]),
            ("items", spec.item_ids, emb[1]),
        ):
            frame = pl.DataFrame(
                {
                    f"{kind[:-1]}_id": ids,
                    "embedding": matrix.detach().cpu().float().numpy(),
                }
            )
            path = out / f"{kind}.parquet"
            with atomic.atomic_path(path) as tmp:
                frame.write_parquet(tmp)
            paths.append(path)
        return paths


def load_run(path: str | Path) -> TrainedRun:
    """Open a finished run directory."""
    run_dir = Path(path)
    if status(run_dir) != DONE:
        raise RecsysError(f"{run_dir}: not a finished run (no manifest with status 'done')")
    return TrainedRun(run_dir)


def train(
    exp: Experiment,
    *,
    runs_dir: str | Path = "runs",
    force: bool = False,
    progress: bool = False,
    hooks: Sequence[Callable[[int, dict[str, float]], bool]] = (),
    test: bool = True,
) -> TrainedRun:
    """Prepare the data, train, evaluate and write the run directory.

    A finished run raises :class:`AlreadyDone` unless ``force``; an unfinished one resumes
    from its last epoch checkpoint. ``hooks`` are the loop's per-epoch hooks (e.g. tuning's
    pruning). With ``test=False`` only the validation split is evaluated (tuning trials: the
    test split stays unseen until the chosen configuration is retrained).
    """
    cfg = exp.cfg
    prepared, spec = prepare_data(cfg.data, exp.base_dir)
    resolved = exp.resolved()
    run_dir = Path(runs_dir) / run_id(cfg.name, resolved, prepared.hash)
    state = status(run_dir)
    if state == DONE and not force:
        raise AlreadyDone(run_dir)
    if force and run_dir.exists():
        shutil.rmtree(run_dir)
        state = None
    device = resolve_device(cfg.train.device)
    if state is None:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic.write_json(run_dir / "config.json", resolved)
        seeds = {"model": cfg.seed, "split": cfg.data.split.seed}
        atomic.write_json(
            run_dir / "manifest.json",
            new_manifest(run_dir.name, str(device), seeds, prepared.hash, exp.base_dir),
        )
    else:
        log.info("resuming unfinished run %s", run_dir)

    t0 = time.perf_counter()
    model = build_model(exp.model.name, exp.model.cfg, spec, seed=cfg.seed).to(device)
    fit_seconds = 0.0 if model.trainable else time.perf_counter() - t0  # closed form: the fit
    losses = build_losses(exp, spec)
    sampler = SAMPLERS[exp.sampler.name](exp.sampler.cfg)
    history_path = run_dir / "metrics.jsonl"

    def validate(m: Model) -> dict[str, float]:
        metrics: dict[str, float] = {}
        if spec.multitask is not None and m.task_model:
            metrics.update(evaluate_tasks(m, spec.multitask, "valid")[0])
        if _ranks(spec) and (not m.task_model or "@" in cfg.train.monitor):
            metrics.update(evaluate_model(m, spec, "valid", cfg.eval).summary)
        return metrics

    def on_epoch(row: dict[str, float]) -> None:
        with open(history_path, "a", encoding="utf-8") as f:
            f.write(_json_line(row))

    result = fit(
        model,
        losses,
        sampler,
        spec,
        cfg.train,
        seed=cfg.seed,
        validate=validate,
        checkpoint_path=run_dir / "checkpoint.pt",
        on_epoch=on_epoch,
        hooks=hooks,
        diagnostics=_diagnostics(spec, cfg.seed, cfg.train.noise_diagnostics),
        progress=progress,
    )
    # The checkpoint's history is authoritative (a resumed run appended only new epochs).
    atomic.write_text(history_path, "".join(_json_line(r) for r in result.history))
    splits = ("valid", "test") if test else ("valid",)
    _finish(run_dir, model, spec, exp, result, splits, fit_seconds)
    return TrainedRun(run_dir, _spec=spec, _model=model)


def _diagnostics(spec: DataSpec, seed: int, enabled: bool) -> list[Diagnostic]:
    """Per-epoch noise-detection AUROC when the dataset has noise labels (and it is enabled)."""
    if not enabled or spec.train_noise is None or not bool(spec.train_noise.any()):
        return []
    from recsys.train.noise_diagnostics import NoiseDiagnostic

    return [NoiseDiagnostic(spec, seed)]


def _json_line(row: dict[str, Any]) -> str:
    import json

    return json.dumps(row, sort_keys=True) + "\n"


def _finish(
    run_dir: Path,
    model: Model,
    spec: DataSpec,
    exp: Experiment,
    fitted: FitResult,
    splits: tuple[str, ...],
    fit_seconds: float = 0.0,
) -> None:
    """Save the model, evaluate ``splits``, write results and mark the run done."""
    with atomic.atomic_path(run_dir / "model.pt") as tmp:
        torch.save(model.state_dict(), tmp)
    ecfg = exp.cfg.eval
    results: dict[str, Any] = {
        "best_epoch": fitted.best_epoch,
        "epochs_run": fitted.epochs_run,
        "stopped_early": fitted.stopped_early,
        # closed-form models fit when built: their build time
        "train_seconds": float(sum(r.get("seconds", 0.0) for r in fitted.history)) + fit_seconds,
        "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
    for split in splits:
        results[split] = {}
        if spec.multitask is not None and model.task_model:  # pairwise models: top-N only
            metrics, pred = evaluate_tasks(model, spec.multitask, split)
            results[split].update(metrics)
            _write_predictions(run_dir / f"pred_{split}.parquet", pred, spec.multitask.tasks)
        if _ranks(spec):
            _rank_split(run_dir, model, spec, ecfg, split, results)
    results["data"] = {"name": spec.name, "hash": spec.data_hash, "protocol": spec.protocol}
    if spec.multitask is not None:
        results["data"]["multitask"] = spec.multitask.card
    atomic.write_json(run_dir / "results.json", results)
    manifest = read_json(run_dir / "manifest.json")
    manifest["status"] = DONE
    atomic.write_json(run_dir / "manifest.json", manifest)
    (run_dir / "checkpoint.pt").unlink(missing_ok=True)


def _ranks(spec: DataSpec) -> bool:
    """Whether the data supports top-N ranking (multi-task data only with users and items)."""
    return spec.multitask is None or spec.multitask.rankable


def _write_predictions(path: Path, pred: TaskPredictions, tasks: tuple[str, ...]) -> None:
    """Per-sample probabilities, labels and masks of a split (for paired AUC tests)."""
    columns: dict[str, Any] = {"row": np.arange(len(pred.users), dtype=np.int64)}
    columns["user_idx"] = pred.users
    for k, task in enumerate(tasks):
        columns[f"p_{task}"] = pred.probs[:, k]
        columns[f"y_{task}"] = pred.labels[:, k].astype(np.int8)
        columns[f"m_{task}"] = pred.mask[:, k]
    with atomic.atomic_path(path) as tmp:
        pl.DataFrame(columns).write_parquet(tmp)


def _rank_split(
    run_dir: Path,
    model: Model,
    spec: DataSpec,
    ecfg: EvalConfig,
    split: str,
    results: dict[str, Any],
) -> None:
    """Full-ranking evaluation of ``split``: summary into ``results``, per-user metrics and
    (test) top-K lists to the run directory."""
    res = evaluate_model(model, spec, split, ecfg)
    results[split].update(res.summary)
    results[f"{split}_protocol"] = res.protocol
    results[f"{split}_users"] = res.n_users_evaluated
    frame = pl.DataFrame(
        {
            "user_idx": res.users.astype(np.int32),
            "user_id": spec.user_ids[res.users],
            **{k: v for k, v in res.per_user.items()},
        }
    )
    with atomic.atomic_path(run_dir / f"per_user_{split}.parquet") as tmp:
        frame.write_parquet(tmp)
    if split == "test" and res.topk is not None:
        k = res.topk.shape[1]
        flat = res.topk.reshape(-1)
        top = pl.DataFrame(
            {
                "user_id": np.repeat(spec.user_ids[res.users], k),
                "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), len(res.users)),
                "item_id": spec.item_ids[np.maximum(flat, 0)],
            }
        )
        # a user with fewer than K candidate items has empty slots (index -1): no item
        top = top.filter(pl.Series(flat >= 0))
        with atomic.atomic_path(run_dir / "topk_test.parquet") as tmp:
            top.write_parquet(tmp)
