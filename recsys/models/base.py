"""The model interface.

A model is a ``torch.nn.Module`` built as ``Model(cfg, spec)``. It must provide:

* ``forward(batch) -> ModelOutput``: scores of the batch's positives and negatives and the
  embeddings the losses regularise (not needed when ``trainable`` is False);
* ``scorer() -> Callable[[Tensor], Tensor]``: precompute whatever is shared by all users (e.g.
  LightGCN propagation) and return a function mapping ``(B,)`` user indices to ``(B, n_items)``
  scores. The evaluator calls it under ``torch.no_grad()`` in eval mode.
* ``embeddings() -> (users (n_users, d), items (n_items, d)) | None`` for export.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ClassVar

import torch
from torch import Tensor, nn

from recsys.config import StrictModel
from recsys.spec import DataSpec
from recsys.types import Batch, ModelOutput

Scorer = Callable[[Tensor], Tensor]


class Model(nn.Module):
    """Base class of every registered model."""

    Config: ClassVar[type[StrictModel]]
    trainable: ClassVar[bool] = True
    """False for models fitted in closed form at construction (most-popular)."""
    task_model: ClassVar[bool] = False
    """True for multi-task models (:mod:`recsys.models.multitask`): their forward takes a
    :class:`~recsys.types.TaskBatch` and returns a :class:`~recsys.types.TaskOutput`, and they
    need data with a ``[multitask]`` table; pairwise contract tests skip them."""

    def __init__(self, cfg: StrictModel, spec: DataSpec) -> None:
        super().__init__()
        self.cfg = cfg
        self.n_users = spec.n_users
        self.n_items = spec.n_items

    def forward(self, batch: Batch) -> ModelOutput:
        raise TypeError(f"{type(self).__name__} is not trained by gradient descent")

    def start_epoch(self, epoch: int) -> None:
        """Called by the training loop before each epoch's batches (default: nothing).

        Models that resample something per epoch (FREEDOM's pruned graph) do it here, drawing
        from the global torch RNG, which the loop seeds and checkpoints.
        """

    def scorer(self) -> Scorer:
        """Return a function: ``(B,)`` user indices → ``(B, n_items)`` scores."""
        raise TypeError(f"{type(self).__name__} must define scorer()")

    def scorer_for(self, split: str) -> Scorer:
        """The scorer used to rank all items for ``split`` ("valid" or "test").

        Models whose scores depend on what the user did before (behaviour sequences) see each
        user's history as of the start of that split; the others ignore ``split``.
        """
        return self.scorer()

    def embeddings(self) -> tuple[Tensor, Tensor] | None:
        """Final user and item embeddings, or None for models without them."""
        return None


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer (cpu for parameterless models)."""
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Put ``model`` in eval mode for the block and restore its train/eval mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def dot_scorer(users: Tensor, items: Tensor) -> Scorer:
    """A scorer over fixed final embeddings: ``users[u] @ items.T`` (detached)."""
    users_w = users.detach()
    items_t = items.detach().T.contiguous()

    def score(batch_users: Tensor) -> Tensor:
        return users_w.index_select(0, batch_users) @ items_t

    return score


def follow(t: Tensor, like: Tensor) -> Tensor:
    """``t`` on ``like``'s device (graphs are kept out of the state dict and moved lazily)."""
    return t if t.device == like.device else t.to(like.device)
