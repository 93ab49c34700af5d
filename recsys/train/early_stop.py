"""Early stopping on a validation metric."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

LOWER_IS_BETTER = frozenset({"logloss", "loss"})


def metric_name(key: str) -> str:
    """The metric of a monitor key: ``ndcg@20`` → ``ndcg``, ``like/logloss`` → ``logloss``."""
    return key.rpartition("/")[2].partition("@")[0]


"""Metric names (before ``@``) that are minimised; every other metric is maximised."""


@dataclass
class EarlyStopper:
    """Tracks the best validation value and counts validations without improvement.

    Attributes:
        monitor: the metric key, e.g. ``"ndcg@20"``.
        patience: stop after this many validations in a row without improvement (0: never).
        best_value: the best value seen (None before the first validation).
        best_epoch: the epoch of ``best_value`` (0 before the first validation).
        bad_rounds: validations since the last improvement.
    """

    monitor: str
    patience: int
    best_value: float | None = None
    best_epoch: int = 0
    bad_rounds: int = 0

    @property
    def maximize(self) -> bool:
        return metric_name(self.monitor) not in LOWER_IS_BETTER

    def update(self, epoch: int, value: float) -> bool:
        """Record a validation; return True when it is a new best (strict improvement).

        A NaN value never improves.
        """
        improved = not math.isnan(value) and (
            self.best_value is None
            or (value > self.best_value if self.maximize else value < self.best_value)
        )
        if improved:
            self.best_value, self.best_epoch, self.bad_rounds = float(value), epoch, 0
        else:
            self.bad_rounds += 1
        return improved

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.bad_rounds >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_value = state["best_value"]
        self.best_epoch = int(state["best_epoch"])
        self.bad_rounds = int(state["bad_rounds"])
