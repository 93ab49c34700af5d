"""The base of the multi-task models: shared config, forward and full ranking.

A multi-task model maps a :class:`~recsys.types.TaskBatch` to ``(B, K)`` logits, one per task.
Subclasses implement :meth:`TaskModel.task_logits` on the :class:`PairInputs` of their input
layers (one shared :class:`~recsys.models.multitask.inputs.InputLayer`, or one per task for the
single-task model); the base builds those inputs for training batches and for the user-item
pairs of full ranking.

**Ranking** (:meth:`TaskModel.scorer_for`): the score of item ``i`` for user ``u`` is
``Σ_k w_k · log σ(logit_k(u, i))`` with ``w`` = ``cfg.rank``, else the data's
``rank_task_weights``, else 1 for every task (``w = (1, 1)`` ranks by ``p_1 · p_2``). A pair's
inputs are the user's fields, the item's fields, no row features, and the user's behaviour
sequences as of the start of the ranked split (``rank_histories[split]``). Graph propagation
and the item-side fields are computed once per scorer; pairs are scored in chunks of
``chunk_pairs`` so memory is bounded, and the result does not depend on the chunk size.
"""

from __future__ import annotations

import logging
from typing import Annotated, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from recsys.config import StrictModel
from recsys.data.multitask.tensors import MultiTaskData
from recsys.errors import ConfigError, RecsysError
from recsys.models.base import Model, Scorer, model_device
from recsys.models.multitask.inputs import InputLayer, PairInputs
from recsys.spec import DataSpec
from recsys.types import TaskBatch, TaskOutput

log = logging.getLogger(__name__)

Width = Annotated[int, Field(ge=1)]
"""A layer width (positive)."""

DEFAULT_CHUNK_PAIRS = 16_384
"""User-item pairs per forward when ranking (memory ``O(chunk · N_b · L · hidden)``)."""


class TaskModelConfig(StrictModel):
    """Settings shared by every multi-task model."""

    dim: int = Field(default=16, ge=1)
    """Embedding size ``d`` of every field."""
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Dropout after every hidden layer of the MLPs (bottoms, experts, towers)."""
    tower: tuple[Width, ...] = (64,)
    """Hidden sizes of each task's tower (then a 1-unit output)."""
    rank: dict[str, float] = Field(default_factory=dict)
    """Top-N ranking weights ``w_k`` by task name (empty: the data's ``rank_task_weights``,
    else 1 for every task; tasks not named get 0)."""
    graph_layers: int = Field(default=0, ge=0)
    """LightGCN layers of the graph backbone for the ``user_id`` / ``item_id`` fields (0: off,
    the id fields are plain embeddings)."""
    modalities: tuple[str, ...] = ()
    """Item modalities (``spec.features`` names) projected to one field each."""
    freeze_backbone: bool = False
    """Freeze the graph ego embeddings and the modality projections."""
    backbone_init: str = ""
    """A finished LightGCN run directory whose ``model.pt`` (``user_emb``, ``item_emb``)
    initialises the graph ego embeddings (needs ``graph_layers > 0`` and the same ``dim``)."""
    interest: bool = True
    """Pool the behaviour sequences (when the data has them) into interest fields."""
    attention_hidden: int = Field(default=32, ge=1)
    """Hidden size of the target-attention MLP."""
    init_std: float = Field(default=0.1, gt=0.0)
    """Field embeddings, dense field vectors and graph ego embeddings start as N(0, init_std²)."""


def task_data(spec: DataSpec, model: str) -> MultiTaskData:
    """The spec's multi-task data.

    Raises:
        ConfigError: the data has none.
    """
    data = getattr(spec, "multitask", None)
    if not isinstance(data, MultiTaskData):
        raise ConfigError(
            f"model {model!r} is a multi-task model, but data {spec.name!r} has no multi-task "
            "samples: the data config needs a [multitask] table ([multitask.ratings] or "
            "[multitask.table])"
        )
    return data


def rank_weights(cfg: TaskModelConfig, data: MultiTaskData, model: str) -> Tensor:
    """``(K,)`` float32 ranking weights (see :attr:`TaskModelConfig.rank`).

    Raises:
        ConfigError: a weight names an unknown task.
    """
    named = cfg.rank or data.rank_task_weights or dict.fromkeys(data.tasks, 1.0)
    unknown = [k for k in named if k not in data.tasks]
    if unknown:
        raise ConfigError(
            f"model {model!r}: rank weight for unknown task {unknown[0]!r}; tasks: "
            f"{', '.join(data.tasks)}"
        )
    return torch.tensor([float(named.get(t, 0.0)) for t in data.tasks], dtype=torch.float32)


class TaskModel(Model):
    """Base of the multi-task models (see the module docstring).

    Attributes:
        tasks: task names (logit column order).
        n_tasks: ``K``.
    """

    Config: ClassVar[type[StrictModel]] = TaskModelConfig
    task_model: ClassVar[bool] = True
    registry_name: ClassVar[str] = "task-model"
    rank_weights: Tensor

    def __init__(self, cfg: TaskModelConfig, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        data = task_data(spec, self.registry_name)
        self.tasks = data.tasks
        self.n_tasks = data.n_tasks
        self.register_buffer(
            "rank_weights", rank_weights(cfg, data, self.registry_name), persistent=False
        )
        self._rank_histories = data.rank_histories
        self._rankable = data.rankable
        self._row_features = data.rows["train"].features.n_fields > 0
        self._n_rank_items = len(data.item_features)
        self._data_name = spec.name

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per top-level part (``inputs``, ``mmoe``, ``towers``, ...), ``total`` and
        ``trainable`` (frozen backbone parameters excluded)."""
        counts = {
            name: sum(p.numel() for p in child.parameters())
            for name, child in self.named_children()
        }
        counts["total"] = sum(p.numel() for p in self.parameters())
        counts["trainable"] = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return counts

    def log_parameter_counts(self) -> None:
        """Log :meth:`parameter_counts` (INFO); subclasses call it at the end of ``__init__``."""
        log.info("%s parameters: %s", self.registry_name, self.parameter_counts())

    def make_inputs(self, cfg: TaskModelConfig, spec: DataSpec) -> InputLayer:
        """A new input layer for this model's data."""
        return InputLayer(cfg, spec, task_data(spec, self.registry_name), self.registry_name)

    def input_layers(self) -> list[InputLayer]:
        """The model's input layers, in the order :meth:`task_logits` expects their inputs."""
        inputs = self.inputs
        assert isinstance(inputs, InputLayer)
        return [inputs]

    def task_logits(self, inputs: list[PairInputs]) -> tuple[Tensor, dict[str, Tensor]]:
        """``(P, K)`` logits and diagnostics from the inputs of each input layer."""
        raise TypeError(f"{type(self).__name__} must define task_logits()")

    def forward(self, batch: TaskBatch) -> TaskOutput:  # type: ignore[override]
        """``(B, K)`` logits of a batch of samples."""
        logits, extra = self.task_logits(
            [layer.batch_inputs(batch) for layer in self.input_layers()]
        )
        return TaskOutput(logits, extra=extra)

    def scorer(self) -> Scorer:
        return self.scorer_for("test")

    def scorer_for(self, split: str, chunk_pairs: int = DEFAULT_CHUNK_PAIRS) -> Scorer:
        """``(B,)`` users → ``(B, n_items)`` scores ``Σ_k w_k log σ(logit_k)`` for ``split``.

        Raises:
            RecsysError: the data's samples are not user-item pairs, or have row features, or
                it has no ranking histories for ``split``.
        """
        if not self._rankable or self._row_features:
            raise RecsysError(
                f"model {self.registry_name!r}: data {self._data_name!r} cannot be ranked: its "
                "samples are not (user, item) pairs"
                + (" without row features" if self._rankable else "")
            )
        if chunk_pairs < 1:
            raise ValueError("chunk_pairs must be positive")
        layers = self.input_layers()
        device = model_device(self)
        history: Tensor | None = None
        if any(layer.behaviours for layer in layers):
            if split not in self._rank_histories:
                raise RecsysError(
                    f"model {self.registry_name!r}: data {self._data_name!r} has no ranking "
                    f"histories for split {split!r} (has: {', '.join(self._rank_histories)})"
                )
            history = self._rank_histories[split].to(device)
        n_items = self._n_rank_items
        all_items = torch.arange(n_items, device=device)
        with torch.no_grad():
            contexts = [layer.context() for layer in layers]
            item_side = [
                layer.item_fields(all_items, ctx)
                for layer, ctx in zip(layers, contexts, strict=True)
            ]
            item_vecs = [
                layer.item_vectors(all_items, ctx) if layer.behaviours else None
                for layer, ctx in zip(layers, contexts, strict=True)
            ]
        weights = self.rank_weights

        def score(users: Tensor) -> Tensor:
            users = users.to(device)
            n_users = users.shape[0]
            with torch.no_grad():
                user_side = []
                seqs: list[tuple[Tensor, Tensor] | None] = []
                for layer, ctx in zip(layers, contexts, strict=True):
                    user_side.append(layer.user_fields(users, ctx))
                    if layer.behaviours:
                        assert history is not None
                        seqs.append(layer.sequences(history.index_select(0, users), ctx))
                    else:
                        seqs.append(None)
                out = torch.empty(n_users * n_items, device=device)
                for start in range(0, n_users * n_items, chunk_pairs):
                    pair = torch.arange(
                        start, min(start + chunk_pairs, n_users * n_items), device=device
                    )
                    u, i = pair // n_items, pair % n_items
                    inputs = []
                    for m in range(len(layers)):
                        base = torch.cat(
                            [user_side[m].index_select(0, u), item_side[m].index_select(0, i)],
                            dim=1,
                        )
                        seq = seqs[m]
                        vecs = item_vecs[m]
                        if seq is None or vecs is None:
                            inputs.append(PairInputs(base))
                        else:
                            inputs.append(
                                PairInputs(
                                    base,
                                    seq[0].index_select(0, u),
                                    seq[1].index_select(0, u),
                                    vecs.index_select(0, i),
                                )
                            )
                    logits, _ = self.task_logits(inputs)
                    out[start : start + pair.shape[0]] = F.logsigmoid(logits) @ weights
            return out.view(n_users, n_items)

        return score

    def embeddings(self) -> tuple[Tensor, Tensor] | None:
        return None
