"""Epoch checkpoints: everything needed to resume training bit-for-bit.

A checkpoint holds the model and optimizer states, the sampler's generator state, the global
torch RNG states (CPU and CUDA), the number of finished epochs, the early-stopping state, the
best validation weights and the history so far. It is written atomically after every epoch, so
a killed run leaves the previous epoch's checkpoint intact.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from recsys.atomic import atomic_path
from recsys.errors import RecsysError

FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """The resumable state after ``epoch`` finished epochs.

    Attributes:
        epoch: finished epochs (1-based number of the last one).
        model: the model's state dict.
        optimizer: the optimizer's state dict.
        sampler_rng: the sampler generator's state (``torch.Generator.get_state()``).
        torch_rng: the global CPU RNG state; ``cuda_rng``: one state per CUDA device.
        early_stop: :meth:`EarlyStopper.state_dict`.
        best_state: the best validation epoch's model state dict (None before a validation).
        history: one row per finished epoch.
        finished: training ended (epochs exhausted, early stop or a hook asked to stop).
        stopped_early: training ended before ``cfg.epochs``.
        meta: what the checkpoint belongs to (seed, model class, sizes), checked on resume.
        loss_states: one ``state_dict()`` per loss (``{}`` for stateless losses).
    """

    epoch: int
    model: dict[str, Tensor]
    optimizer: dict[str, Any]
    sampler_rng: Tensor
    torch_rng: Tensor
    cuda_rng: list[Tensor]
    early_stop: dict[str, Any]
    best_state: dict[str, Tensor] | None
    history: list[dict[str, float]]
    finished: bool = False
    stopped_early: bool = False
    meta: dict[str, Any] = field(default_factory=dict)
    loss_states: list[dict[str, Any]] = field(default_factory=list)


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> None:
    """Write ``ckpt`` to ``path`` atomically (temporary sibling, then rename)."""
    payload = {"format": FORMAT_VERSION, **asdict(ckpt)}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors on the CPU).

    Raises:
        RecsysError: the file is unreadable or not a checkpoint of this format.
    """
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as e:
        raise RecsysError(f"{path}: cannot read checkpoint ({e}); delete it to start over") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        raise RecsysError(f"{path}: not a recsys checkpoint (format {FORMAT_VERSION})")
    payload.pop("format")
    try:
        return Checkpoint(**payload)
    except TypeError as e:
        raise RecsysError(f"{path}: malformed checkpoint ({e}); delete it to start over") from e


def clone_state(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """A detached copy of a state dict (same devices)."""
    return {k: v.detach().clone() for k, v in state.items()}
