"""Losses, looked up by name in :data:`LOSSES`."""

from __future__ import annotations

from typing import Any

from recsys.losses.base import Loss
from recsys.losses.bpr import BPR
from recsys.registry import Registry

LOSSES: Registry[Any] = Registry("loss", {"bpr": BPR})

__all__ = ["LOSSES", "Loss"]
