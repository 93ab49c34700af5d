"""Training-loop configuration."""

from __future__ import annotations

from typing import Literal

from recsys.config import StrictModel


class TrainConfig(StrictModel):
    """The one training loop's settings."""

    epochs: int = 300
    batch_size: int = 2048
    lr: float = 1e-3
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    weight_decay: float = 0.0
    eval_every: int = 1
    """Validate every this many epochs."""
    monitor: str = "ndcg@20"
    """Validation metric for early stopping and best-epoch selection (``metric@K``)."""
    patience: int = 10
    """Stop after this many validations without improvement (0: never stop early)."""
    restore_best: bool = True
    """Load the best validation epoch's weights at the end."""
    noise_diagnostics: bool = True
    """With noise labels in the data, log each epoch's AUROC of the train loss as a noise
    detector, globally and within users (``noise/*`` history keys; about one evaluation pass)."""
    device: str = "auto"
    """``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:1``..."""
