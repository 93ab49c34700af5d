"""The tensors of a multi-task dataset, as models, samplers and evaluators see them.

A sample (one row) has binary labels for ``K`` tasks, a mask saying which labels are defined
(``like`` exists only on watched items: PLE's sample-space indicator δ), optional user and item
indices (into the user and item feature tables), its own row features (census rows have no
user or item), and an index into a table of behaviour sequences (several samples share one:
a watched event and its sampled negatives have the same history).

Categorical values are integer codes per field, ``0`` meaning missing or unseen in train;
dense values are z-scored with train statistics (missing values become 0, the train mean).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from recsys.types import TaskBatch

SPLITS = ("train", "valid", "test")
USER_FIELD, ITEM_FIELD = "user_id", "item_id"
"""Names of the id fields in the user and item tables (graph backbones take their place)."""


@dataclass(frozen=True)
class FeatureTable:
    """Categorical and dense features of ``n`` entities (rows, users or items).

    Attributes:
        sparse: ``(n, F)`` int64 codes; field ``f`` takes values ``0..cardinalities[f] - 1``
            (``0``: missing or not seen in train).
        dense: ``(n, D)`` float32, z-scored with train statistics.
        sparse_names, cardinalities: one entry per categorical field.
        dense_names: one entry per dense column.
    """

    sparse: Tensor
    dense: Tensor
    sparse_names: tuple[str, ...] = ()
    cardinalities: tuple[int, ...] = ()
    dense_names: tuple[str, ...] = ()

    @staticmethod
    def empty(n: int) -> FeatureTable:
        return FeatureTable(torch.zeros(n, 0, dtype=torch.int64), torch.zeros(n, 0))

    def __len__(self) -> int:
        return int(self.sparse.shape[0])

    @property
    def n_fields(self) -> int:
        """Categorical fields plus dense columns (each dense column is one field)."""
        return len(self.sparse_names) + len(self.dense_names)

    def take(self, idx: Tensor) -> FeatureTable:
        return FeatureTable(
            self.sparse.index_select(0, idx),
            self.dense.index_select(0, idx),
            self.sparse_names,
            self.cardinalities,
            self.dense_names,
        )


@dataclass(frozen=True)
class TaskRows:
    """The labelled samples of one split.

    Attributes:
        labels: ``(N, K)`` float32 in {0, 1} (0 where the label is masked).
        mask: ``(N, K)`` bool, True where the task's label is defined for the sample.
        users: ``(N,)`` int64 user index, ``-1`` for datasets without users.
        items: ``(N,)`` int64 item index, ``-1`` for datasets without items.
        features: the samples' own features (``FeatureTable.empty`` when they have none).
        history: ``(N,)`` int64 index into :attr:`MultiTaskData.histories` (``-1``: none).
    """

    labels: Tensor
    mask: Tensor
    users: Tensor
    items: Tensor
    features: FeatureTable
    history: Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class MultiTaskData:
    """A multi-task dataset.

    Attributes:
        tasks: task names, in label-column order.
        rows: the labelled samples per split (``train``, ``valid``, ``test``).
        user_features, item_features: feature tables indexed by user / item index (empty
            tables with 0 rows when the dataset has no users / items).
        behaviours: names of the behaviour sequences (e.g. ``watched``, ``liked``,
            ``disliked``); empty when the dataset has none.
        histories: ``(H, n_behaviours, L)`` int64 item index + 1 of each behaviour's last ``L``
            events strictly before the sample's time, oldest first, left-padded with 0.
        rank_histories: per split, ``(n_users, n_behaviours, L)``: each user's sequences as of
            the start of their events in that split (what a model may see when it ranks all
            items for that split); empty dict for datasets without users and items.
        rank_task_weights: default weights of the top-N ranking score
            ``Σ_k w_k log p_k`` (``{"watch": 1, "like": 1}`` ranks by ``p_watch · p_like``).
        card: counts per split and task, positives, masked labels, history lengths.
    """

    tasks: tuple[str, ...]
    rows: dict[str, TaskRows]
    user_features: FeatureTable
    item_features: FeatureTable
    behaviours: tuple[str, ...] = ()
    histories: Tensor = field(default_factory=lambda: torch.zeros(0, 0, 0, dtype=torch.int64))
    rank_histories: dict[str, Tensor] = field(default_factory=dict)
    rank_task_weights: dict[str, float] = field(default_factory=dict)
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    @property
    def seq_len(self) -> int:
        return int(self.histories.shape[2]) if self.histories.dim() == 3 else 0

    @property
    def has_users(self) -> bool:
        return len(self.user_features) > 0

    @property
    def has_items(self) -> bool:
        return len(self.item_features) > 0

    @property
    def rankable(self) -> bool:
        """True when samples are (user, item) pairs, so all items can be ranked per user."""
        return self.has_users and self.has_items

    def task_index(self, name: str) -> int:
        """Index of task ``name`` (raises KeyError listing the tasks)."""
        try:
            return self.tasks.index(name)
        except ValueError:
            raise KeyError(f"unknown task {name!r}; tasks: {', '.join(self.tasks)}") from None


def take_batch(data: MultiTaskData, rows: TaskRows, idx: Tensor) -> TaskBatch:
    """The samples ``idx`` of ``rows`` as a :class:`~recsys.types.TaskBatch` (histories
    gathered; samples without one get an all-padding history)."""
    hist_idx = rows.history.index_select(0, idx)
    n_b, length = data.histories.shape[1:] if data.histories.dim() == 3 else (0, 0)
    if n_b and length:
        history = data.histories.index_select(0, hist_idx.clamp(min=0))
        history = history.masked_fill((hist_idx < 0)[:, None, None], 0)
    else:
        history = torch.zeros(idx.numel(), 0, 0, dtype=torch.int64)
    return TaskBatch(
        users=rows.users.index_select(0, idx),
        items=rows.items.index_select(0, idx),
        sparse=rows.features.sparse.index_select(0, idx),
        dense=rows.features.dense.index_select(0, idx),
        history=history,
        labels=rows.labels.index_select(0, idx),
        mask=rows.mask.index_select(0, idx),
    )
