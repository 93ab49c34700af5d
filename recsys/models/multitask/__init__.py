"""Multi-task models on one shared input layer: shared-bottom, MMoE, PLE, DTRN, single-task.

Each is a :class:`~recsys.models.multitask.base.TaskModel`: ``forward(TaskBatch) ->
TaskOutput`` with ``(B, K)`` logits, and full ranking through ``scorer_for(split)``. The input
layer (:mod:`recsys.models.multitask.inputs`) turns row, user, item and modality features and
the behaviour sequences into ``d``-dim fields, optionally with a LightGCN graph backbone for
the user and item ids.
"""

from recsys.models.multitask.base import TaskModel, TaskModelConfig
from recsys.models.multitask.dtrn import DTRN, DTRNConfig
from recsys.models.multitask.mmoe import MMoE, MMoEConfig
from recsys.models.multitask.ple import PLE, PLEConfig
from recsys.models.multitask.shared_bottom import SharedBottom, SharedBottomConfig
from recsys.models.multitask.single_task import SingleTask, SingleTaskConfig

__all__ = [
    "DTRN",
    "PLE",
    "DTRNConfig",
    "MMoE",
    "MMoEConfig",
    "PLEConfig",
    "SharedBottom",
    "SharedBottomConfig",
    "SingleTask",
    "SingleTaskConfig",
    "TaskModel",
    "TaskModelConfig",
]
