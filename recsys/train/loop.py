"""The one training loop: the only place that calls ``zero_grad``, ``backward`` and ``step``.

Per epoch it draws the sampler's batches, sums every loss's named terms, steps the optimizer,
logs the mean of each term, validates every ``eval_every`` epochs through a callback (the loop
never imports the evaluator), tracks early stopping and the best weights, runs hooks and writes
a checkpoint from which a killed run resumes to exactly the same numbers.

History rows have the keys ``epoch``, ``loss`` (mean total), ``loss/<term>`` (mean of each
named term; terms of the same name from several losses are summed), ``seconds`` (training time
of the epoch), and after a validation ``valid/<metric>`` and ``valid_seconds``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from recsys.errors import ConfigError, RecsysError
from recsys.losses.base import Loss
from recsys.models.base import Model, eval_mode, model_device
from recsys.samplers.base import Sampler
from recsys.seeding import generator
from recsys.spec import DataSpec
from recsys.train.checkpoint import Checkpoint, clone_state, load_checkpoint, save_checkpoint
from recsys.train.config import TrainConfig
from recsys.train.early_stop import EarlyStopper
from recsys.types import Batch

log = logging.getLogger(__name__)

Validate = Callable[[Model], dict[str, float]]
Hook = Callable[[int, dict[str, float]], bool]
"""Called after every epoch with ``(epoch, history row)``; returning True stops training."""
Diagnostic = Callable[[Model, int], dict[str, float]]
"""Called after every epoch's training steps with ``(model, epoch)`` in eval mode under
``no_grad``; its values join the epoch's history row (e.g. ``noise/auroc_user``)."""


@dataclass
class FitResult:
    """What :func:`fit` did.

    Attributes:
        best_epoch: the best validation epoch (the last epoch when nothing was validated).
        best_value: the monitored metric at ``best_epoch`` (None without validation).
        epochs_run: finished epochs, including those before a resume.
        stopped_early: training ended before ``cfg.epochs`` (patience ran out or a hook).
        history: one row per epoch (see the module docstring), including resumed ones.
        resumed_from: the checkpoint's epoch when the run resumed, else None.
    """

    best_epoch: int
    best_value: float | None
    epochs_run: int
    stopped_early: bool
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from: int | None = None


def fit(
    model: Model,
    losses: Sequence[Loss],
    sampler: Sampler,
    spec: DataSpec,
    cfg: TrainConfig,
    *,
    seed: int,
    validate: Validate | None = None,
    checkpoint_path: Path | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    hooks: Sequence[Hook] = (),
    diagnostics: Sequence[Diagnostic] = (),
    progress: bool = False,
) -> FitResult:
    """Train ``model`` in place.

    Args:
        model: built (and seeded) by the caller, already on its device.
        losses: their terms are summed into the minimised total.
        sampler: yields the batches of each epoch from a generator seeded by
            ``(seed, "sampler")``.
        spec: the dataset.
        cfg: epochs, batch size, optimizer, validation cadence, early stopping.
        seed: the run seed.
        validate: returns validation metrics such as ``{"ndcg@20": 0.3}``; called in eval mode
            under ``no_grad`` every ``cfg.eval_every`` epochs and after the last epoch.
        checkpoint_path: written after every epoch; when it exists at the start, training
            resumes from it.
        on_epoch: receives each epoch's history row (after the checkpoint is written).
        hooks: called with ``(epoch, row)`` before the checkpoint; True stops training.
        diagnostics: called after each epoch's steps (see :data:`Diagnostic`).
        progress: show a rich progress bar over epochs.

    Returns:
        A :class:`FitResult`. With ``cfg.restore_best`` the model ends with the best validation
        epoch's weights.

    Raises:
        RecsysError: a non-finite loss (the previous epoch's checkpoint is kept), a
            ``cfg.monitor`` missing from the validation metrics, or a checkpoint of another run.
    """
    if not model.trainable:
        return _fit_closed_form(model, cfg, validate, on_epoch)
    if not losses:
        raise ConfigError(f"{type(model).__name__} is trainable but no loss was given")
    if cfg.batch_size < 1 or cfg.eval_every < 1 or cfg.epochs < 0 or cfg.patience < 0:
        raise ConfigError(
            "train: batch_size and eval_every must be >= 1, epochs and patience >= 0 (got "
            f"batch_size={cfg.batch_size}, eval_every={cfg.eval_every}, epochs={cfg.epochs}, "
            f"patience={cfg.patience})"
        )
    device = model_device(model)
    # Losses with parameters (uncertainty weighting's log-variances) train with the model.
    loss_modules = [loss for loss in losses if isinstance(loss, torch.nn.Module)]
    for module in loss_modules:
        module.to(device)
    optimizer = make_optimizer(
        [*model.parameters(), *(p for m in loss_modules for p in m.parameters())], cfg
    )
    sampler_rng = generator(seed, "sampler")
    stopper = EarlyStopper(cfg.monitor, cfg.patience)
    meta = {
        "seed": seed,
        "model": type(model).__name__,
        "n_users": spec.n_users,
        "n_items": spec.n_items,
    }
    state = _RunState(history=[], best_state=None)
    resumed_from: int | None = None
    if checkpoint_path is not None and Path(checkpoint_path).exists():
        ckpt = load_checkpoint(checkpoint_path)
        _check_meta(checkpoint_path, ckpt.meta, meta)
        model.load_state_dict(ckpt.model)
        optimizer.load_state_dict(ckpt.optimizer)
        sampler_rng.set_state(ckpt.sampler_rng)
        torch.set_rng_state(ckpt.torch_rng)
        if ckpt.cuda_rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt.cuda_rng)
        stopper.load_state_dict(ckpt.early_stop)
        _load_loss_states(losses, ckpt.loss_states, checkpoint_path)
        state = _RunState(
            history=list(ckpt.history),
            best_state=ckpt.best_state,
            epoch=ckpt.epoch,
            finished=ckpt.finished,
            stopped_early=ckpt.stopped_early,
        )
        resumed_from = ckpt.epoch
        log.info("resuming from %s (epoch %d)", checkpoint_path, ckpt.epoch)

    probe = _LiveProbe(model)
    with _progress_bar(progress, cfg.epochs, state.epoch) as advance:
        while not state.finished and state.epoch < cfg.epochs:
            epoch = state.epoch + 1
            row = _train_epoch(
                model, losses, sampler, spec, cfg, optimizer, sampler_rng, epoch, device, probe
            )
            row.update(_diagnose(model, diagnostics, epoch))
            if validate is not None and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
                metrics = _validate(model, validate, cfg.monitor)
                row.update(metrics)
                if stopper.update(epoch, metrics[f"valid/{cfg.monitor}"]):
                    state.best_state = clone_state(model.state_dict())
            state.history.append(row)
            stop_by_hook = any([bool(hook(epoch, row)) for hook in hooks])
            state.epoch = epoch
            state.stopped_early = (stop_by_hook or stopper.should_stop) and epoch < cfg.epochs
            state.finished = state.stopped_early or epoch >= cfg.epochs
            if checkpoint_path is not None:
                save_checkpoint(
                    checkpoint_path,
                    _snapshot(model, losses, optimizer, sampler_rng, stopper, state, meta),
                )
            if on_epoch is not None:
                on_epoch(row)
            advance(row)
            log.info(
                "epoch %d: %s",
                epoch,
                ", ".join(
                    f"{k}={v:.4g}" for k, v in row.items() if k == "loss" or k.startswith("valid/")
                ),
            )

    if cfg.restore_best and state.best_state is not None:
        model.load_state_dict(state.best_state)
    has_best = stopper.best_value is not None
    return FitResult(
        best_epoch=stopper.best_epoch if has_best else state.epoch,
        best_value=stopper.best_value,
        epochs_run=state.epoch,
        stopped_early=state.stopped_early,
        history=state.history,
        resumed_from=resumed_from,
    )


def make_optimizer(params: Iterable[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer named by ``cfg.optimizer`` with ``cfg.lr`` and ``cfg.weight_decay``.

    The fused implementation is used where torch supports it (measured ~1.2x faster per MF
    step on CPU than ``foreach``), else the ``foreach`` one. ``adamw`` gets
    ``cfg.weight_decay`` as is (torch's default of 0.01 does not apply).
    """
    classes: dict[str, Any] = {
        "adam": torch.optim.Adam,
        "adamw": torch.optim.AdamW,
        "sgd": torch.optim.SGD,
    }
    cls = classes[cfg.optimizer]
    trainable = [p for p in params if p.requires_grad]
    if not trainable:
        raise ConfigError("the model has no trainable parameters")
    kwargs: dict[str, Any] = {"lr": cfg.lr, "weight_decay": cfg.weight_decay}
    try:
        return cls(trainable, fused=True, **kwargs)
    except (RuntimeError, ValueError, TypeError):
        return cls(trainable, foreach=True, **kwargs)


@dataclass
class _RunState:
    history: list[dict[str, float]]
    best_state: dict[str, Tensor] | None
    epoch: int = 0
    finished: bool = False
    stopped_early: bool = False


class _LiveProbe:
    """The sampler's :class:`~recsys.samplers.base.Probe`: the current parameters, ``no_grad``.

    Pair scores go through ``model.forward`` in eval mode (no dropout), so any model that
    scores pairs can drive a score-aware sampler; the training mode is restored afterwards.
    """

    def __init__(self, model: Model) -> None:
        self.model = model
        self.device = model_device(model)

    def scores(self, users: Tensor) -> Tensor:
        with torch.no_grad(), eval_mode(self.model):
            return self.model.scorer()(users.to(self.device))

    def pair_scores(self, users: Tensor, pos: Tensor, neg: Tensor) -> tuple[Tensor, Tensor]:
        batch = Batch(users, pos, neg).to(self.device)
        with torch.no_grad(), eval_mode(self.model):
            out = self.model(batch)
        return out.pos_scores, out.neg_scores


def _diagnose(model: Model, diagnostics: Sequence[Diagnostic], epoch: int) -> dict[str, float]:
    row: dict[str, float] = {}
    if not diagnostics:
        return row
    with torch.no_grad(), eval_mode(model):
        for diagnostic in diagnostics:
            row.update({k: float(v) for k, v in diagnostic(model, epoch).items()})
    return row


def _loss_state(loss: Loss) -> dict[str, Any]:
    """A stateful loss's ``state_dict()`` (e.g. T-CE's step counter), else ``{}``."""
    state = getattr(loss, "state_dict", None)
    return dict(state()) if callable(state) else {}


def _load_loss_states(losses: Sequence[Loss], states: list[dict[str, Any]], path: Path) -> None:
    if not states:
        return
    if len(states) != len(losses):
        raise RecsysError(
            f"{path}: checkpoint has {len(states)} loss states for {len(losses)} losses; delete "
            "it or use another run directory"
        )
    for loss, state in zip(losses, states, strict=True):
        load = getattr(loss, "load_state_dict", None)
        if state and callable(load):
            load(state)


def _train_epoch(
    model: Model,
    losses: Sequence[Loss],
    sampler: Sampler,
    spec: DataSpec,
    cfg: TrainConfig,
    optimizer: torch.optim.Optimizer,
    sampler_rng: torch.Generator,
    epoch: int,
    device: torch.device,
    probe: _LiveProbe,
) -> dict[str, float]:
    """One pass over the sampler's batches; returns the epoch's loss row."""
    model.train()
    start = time.perf_counter()
    model.start_epoch(epoch)
    names: list[str] = []
    steps: list[Tensor] = []
    for batch in sampler.epoch(spec, cfg.batch_size, sampler_rng, probe, epoch):
        batch = batch.to(device)
        out = model(batch)
        terms: dict[str, Tensor] = {}
        for loss in losses:
            for name, value in loss(batch, out).items():
                terms[name] = terms[name] + value if name in terms else value
        for name, value in out.aux.items():
            terms[name] = terms[name] + value if name in terms else value
        total = torch.stack(list(terms.values())).sum()
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        if not names:
            names = list(terms)
        steps.append(torch.stack([total, *terms.values()]).detach())
    if not steps:
        raise RecsysError(f"epoch {epoch}: the sampler yielded no batches")
    # One device sync per epoch: per-step values are checked and averaged here.
    values = torch.stack(steps).float().cpu()
    finite = torch.isfinite(values).all(dim=1)
    if not bool(finite.all()):
        step = int((~finite).nonzero()[0, 0])
        shown = ", ".join(
            f"{n}={v:.6g}" for n, v in zip(["total", *names], values[step].tolist(), strict=True)
        )
        raise RecsysError(f"non-finite loss at epoch {epoch} step {step} (terms: {shown})")
    means = values.mean(dim=0).tolist()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    row: dict[str, float] = {"epoch": epoch, "loss": means[0]}
    row.update({f"loss/{n}": m for n, m in zip(names, means[1:], strict=True)})
    row["seconds"] = time.perf_counter() - start
    stats = getattr(sampler, "stats", None)
    if callable(stats):
        row.update({k: float(v) for k, v in stats().items()})
    return row


def _validate(model: Model, validate: Validate, monitor: str) -> dict[str, float]:
    start = time.perf_counter()
    with torch.no_grad(), eval_mode(model):
        metrics = validate(model)
    if monitor not in metrics:
        raise RecsysError(
            f"train.monitor {monitor!r} is not among the validation metrics: {sorted(metrics)}"
        )
    row = {f"valid/{k}": float(v) for k, v in metrics.items()}
    row["valid_seconds"] = time.perf_counter() - start
    if math.isnan(row[f"valid/{monitor}"]):
        log.warning("validation %s is NaN", monitor)
    return row


def _fit_closed_form(
    model: Model,
    cfg: TrainConfig,
    validate: Validate | None,
    on_epoch: Callable[[dict[str, float]], None] | None,
) -> FitResult:
    """Non-trainable models: no epochs, one validation (epoch 0)."""
    row: dict[str, float] = {"epoch": 0, "seconds": 0.0}
    best: float | None = None
    if validate is not None:
        row.update(_validate(model, validate, cfg.monitor))
        best = row[f"valid/{cfg.monitor}"]
    if on_epoch is not None:
        on_epoch(row)
    return FitResult(
        best_epoch=0, best_value=best, epochs_run=0, stopped_early=False, history=[row]
    )


def _snapshot(
    model: Model,
    losses: Sequence[Loss],
    optimizer: torch.optim.Optimizer,
    sampler_rng: torch.Generator,
    stopper: EarlyStopper,
    state: _RunState,
    meta: dict[str, Any],
) -> Checkpoint:
    return Checkpoint(
        epoch=state.epoch,
        model=model.state_dict(),
        optimizer=optimizer.state_dict(),
        sampler_rng=sampler_rng.get_state(),
        torch_rng=torch.get_rng_state(),
        cuda_rng=list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        early_stop=stopper.state_dict(),
        best_state=state.best_state,
        history=state.history,
        finished=state.finished,
        stopped_early=state.stopped_early,
        meta=meta,
        loss_states=[_loss_state(loss) for loss in losses],
    )


def _check_meta(path: Path, found: dict[str, Any], expected: dict[str, Any]) -> None:
    diff = [f"{k}: {found.get(k)!r} != {v!r}" for k, v in expected.items() if found.get(k) != v]
    if diff:
        raise RecsysError(
            f"{path}: checkpoint belongs to another run ({'; '.join(diff)}); delete it or use "
            "another run directory"
        )


@contextmanager
def _progress_bar(
    enabled: bool, total: int, done: int
) -> Iterator[Callable[[dict[str, float]], None]]:
    """Yield an ``advance(row)`` callback driving a rich progress bar (a no-op if disabled)."""
    if not enabled:
        yield lambda row: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("[bold]train"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        transient=False,
    ) as bar:
        task = bar.add_task("", total=total, completed=done)

        def advance(row: dict[str, float]) -> None:
            shown = {k: v for k, v in row.items() if k == "loss" or k.startswith("valid/")}
            desc = " ".join(f"{k}={v:.4f}" for k, v in shown.items())
            bar.update(task, advance=1, description=desc)

        yield advance
