"""What a modality builder returns, and the missing-value policy applied to it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recsys.errors import DataError
from recsys.types import MissingPolicy


@dataclass(frozen=True)
class RawFeatures:
    """A built modality before the policy is applied.

    Attributes:
        values: ``(n_items, d)`` float32, aligned with ``item_idx``; rows of missing items are 0.
        missing: ``(n_items,)`` bool.
        columns: names of the ``d`` columns where they have one (tabular), else empty.
    """

    values: np.ndarray
    missing: np.ndarray
    columns: list[str] = field(default_factory=list)


def finish(
    values: np.ndarray, missing: np.ndarray, columns: list[str] | None = None
) -> RawFeatures:
    """Cast to float32 / bool and zero the missing rows."""
    vals = np.ascontiguousarray(values, dtype=np.float32)
    miss = np.ascontiguousarray(missing, dtype=bool)
    vals[miss] = 0.0
    return RawFeatures(vals, miss, columns or [])


def apply_policy(values: np.ndarray, missing: np.ndarray, policy: MissingPolicy) -> np.ndarray:
    """The stored values: missing rows hold the mean of the present rows (``mean``) or zeros
    (``learned``, ``zero``; models put their placeholder there for ``learned``).

    Returns a new float32 array; ``values`` is not modified.
    """
    out = np.array(values, dtype=np.float32, copy=True)
    if policy == "mean":
        present = ~missing
        out[missing] = out[present].mean(axis=0, dtype=np.float64).astype(np.float32)
    else:
        out[missing] = 0.0
    return out


def check_some_present(missing: np.ndarray, name: str, source: str) -> None:
    """Raise :class:`DataError` when every item is missing (or there are no items)."""
    if missing.size == 0 or bool(missing.all()):
        raise DataError(
            f"{source}: features.{name}: every item of the dataset ({missing.size}) is missing; "
            "check the item ids and the file"
        )
