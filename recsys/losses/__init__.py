"""Losses, looked up by name in :data:`LOSSES`."""

from __future__ import annotations

from typing import Any

from recsys.losses.base import Loss
from recsys.losses.bce import BCE
from recsys.losses.bpr import BPR
from recsys.losses.denoise import RCE, TCE
from recsys.registry import Registry

LOSSES: Registry[Any] = Registry("loss", {"bpr": BPR, "bce": BCE, "tce": TCE, "rce": RCE})

__all__ = ["LOSSES", "Loss"]
