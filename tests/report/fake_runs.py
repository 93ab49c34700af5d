"""Config sections shared by the fake run directories of the report tests."""

from __future__ import annotations

from typing import Any


def toy_data(split_seed: int = 2020, **extra: Any) -> dict[str, Any]:
    """The ``data`` section of a run on the toy csv with a random 80/10/10 split."""
    return {
        "name": "toy",
        "source": {"path": "toy.csv"},
        "clean": {"dedup": "last"},
        "split": {"method": "random", "ratios": [0.8, 0.1, 0.1], "seed": split_seed},
        **extra,
    }
