"""Samplers, looked up by name in :data:`SAMPLERS`."""

from __future__ import annotations

from typing import Any

from recsys.registry import Registry
from recsys.samplers.base import Probe, Sampler
from recsys.samplers.per_user import UserSampler
from recsys.samplers.pld import PLDSampler
from recsys.samplers.task_rows import TaskRowSampler
from recsys.samplers.uniform import UniformSampler

SAMPLERS: Registry[Any] = Registry(
    "sampler",
    {
        "uniform": UniformSampler,
        "user": UserSampler,
        "pld": PLDSampler,
        "task-rows": TaskRowSampler,
    },
)

__all__ = ["SAMPLERS", "Probe", "Sampler"]
