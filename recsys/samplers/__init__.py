"""Samplers, looked up by name in :data:`SAMPLERS`."""

from __future__ import annotations

from typing import Any

from recsys.registry import Registry
from recsys.samplers.base import Sampler, ScoreFn
from recsys.samplers.uniform import UniformSampler

SAMPLERS: Registry[Any] = Registry("sampler", {"uniform": UniformSampler})

__all__ = ["SAMPLERS", "Sampler", "ScoreFn"]
