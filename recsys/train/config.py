"""Training-loop configuration."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from recsys.config import StrictModel


class TrainConfig(StrictModel):
    """The one training loop's settings."""

    epochs: int = Field(default=300, ge=0)
    batch_size: int = Field(default=2048, ge=1)
    lr: float = Field(default=1e-3, gt=0.0)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    weight_decay: float = Field(default=0.0, ge=0.0)
    eval_every: int = Field(default=1, ge=1)
    """Validate every this many epochs."""
    monitor: str = "ndcg@20"
    """Validation metric for early stopping and best-epoch selection (``metric@K``)."""
    patience: int = Field(default=10, ge=0)
    """Stop after this many validations without improvement (0: never stop early)."""
    restore_best: bool = True
    """Load the best validation epoch's weights at the end."""
    noise_diagnostics: bool = True
    """With noise labels in the data, log each epoch's AUROC of the train loss as a noise
    detector, globally and within users (``noise/*`` history keys; about one evaluation pass)."""
    device: str = "auto"
    """``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:1``..."""
