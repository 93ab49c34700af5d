"""Losses, looked up by name in :data:`LOSSES`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from recsys.losses.align_uniform import AlignUniform, CalibratedUniformity
from recsys.losses.base import Loss
from recsys.losses.bce import BCE
from recsys.losses.bpr import BPR
from recsys.losses.denoise import RCE, TCE
from recsys.losses.task_bce import TaskBCE
from recsys.registry import Registry

if TYPE_CHECKING:
    from recsys.experiment import Experiment
    from recsys.spec import DataSpec

LOSSES: Registry[Any] = Registry(
    "loss",
    {
        "bpr": BPR,
        "bce": BCE,
        "tce": TCE,
        "rce": RCE,
        "align_uniform": AlignUniform,
        "calibrated_uniformity": CalibratedUniformity,
        "task-bce": TaskBCE,
    },
)


def build_losses(exp: Experiment, spec: DataSpec) -> list[Loss]:
    """The experiment's losses, each bound to the dataset when it defines ``bind(spec)``
    (e.g. calibrated uniformity with ``content = "features"``)."""
    losses = []
    for component in exp.losses:
        loss = LOSSES[component.name](component.cfg)
        bind = getattr(loss, "bind", None)
        if callable(bind):
            bind(spec)
        losses.append(loss)
    return losses


__all__ = ["LOSSES", "Loss", "build_losses"]
