"""DataSpec: everything a model, sampler or evaluator needs to know about a prepared dataset.

Models receive a DataSpec, never a polars frame or a file path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from recsys.errors import ConfigError
from recsys.types import Interactions, ItemFeatures

if TYPE_CHECKING:
    from recsys.data.multitask.tensors import MultiTaskData


@dataclass
class DataSpec:
    """A prepared dataset as tensors.

    Attributes:
        name: dataset name.
        data_hash: content hash of the prepared artifacts (inputs + data config).
        n_users, n_items: sizes of the dense index spaces ``0..n-1``.
        train, valid, test: interactions per split (``valid`` may be empty).
        user_ids, item_ids: original ids (strings) indexed by ``user_idx`` / ``item_idx``.
        eval_users_valid, eval_users_test: users evaluated on each split (sorted int64): users
            with at least one train item and one item in that split.
        card: the data card (rows, users, items, density after every step).
        protocol: a description of how the split was made (for reports).
        train_noise: ``(len(train),)`` bool, aligned with ``train``: True where the train
            interaction is known to be noise (injected, or below the clean threshold under
            natural noise); None when the dataset has no noise labels.
        features: item modalities by name, in data-config order (empty without features).
        multitask: the multi-task samples (labels, features, behaviour sequences) when the
            data config has a ``[multitask]`` table; ``valid``/``test`` then hold the top-N
            targets (the split's liked items).
    """

    name: str
    data_hash: str
    n_users: int
    n_items: int
    train: Interactions
    valid: Interactions
    test: Interactions
    user_ids: np.ndarray
    item_ids: np.ndarray
    eval_users_valid: Tensor
    eval_users_test: Tensor
    card: dict[str, Any] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)
    train_noise: Tensor | None = None
    features: dict[str, ItemFeatures] = field(default_factory=dict)
    multitask: MultiTaskData | None = None
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False)

    @property
    def graph(self) -> Any:
        """The bipartite user-item graph of the train split, built once and reused."""
        if "graph" not in self._cache:
            from recsys.data.graph import build_graph

            self._cache["graph"] = build_graph(self.train, self.n_users, self.n_items)
        return self._cache["graph"]

    def item_popularity(self) -> Tensor:
        """``(n_items,)`` number of train interactions per item (float32)."""
        if "pop" not in self._cache:
            self._cache["pop"] = torch.bincount(self.train.items, minlength=self.n_items).to(
                torch.float32
            )
        return self._cache["pop"]  # type: ignore[no-any-return]

    def train_csr(self) -> tuple[Tensor, Tensor]:
        """``(indptr (n_users + 1,), order (len(train),))``: the train rows of user ``u`` are
        ``order[indptr[u]:indptr[u + 1]]`` (indices into ``train``, in their original order)."""
        if "train_csr" not in self._cache:
            order = torch.sort(self.train.users, stable=True).indices
            counts = torch.bincount(self.train.users, minlength=self.n_users)
            indptr = torch.zeros(self.n_users + 1, dtype=torch.int64)
            torch.cumsum(counts, 0, out=indptr[1:])
            self._cache["train_csr"] = (indptr, order)
        return self._cache["train_csr"]  # type: ignore[no-any-return]

    def users_with_train(self) -> Tensor:
        """Sorted int64 indices of the users with at least one train interaction."""
        if "users_with_train" not in self._cache:
            indptr, _ = self.train_csr()
            self._cache["users_with_train"] = (indptr[1:] > indptr[:-1]).nonzero().squeeze(1)
        return self._cache["users_with_train"]  # type: ignore[no-any-return]

    def train_keys(self) -> Tensor:
        """Sorted ``user * n_items + item`` keys of the train split (int64), for membership."""
        if "train_keys" not in self._cache:
            keys = self.train.users * self.n_items + self.train.items
            self._cache["train_keys"] = torch.sort(keys).values
        return self._cache["train_keys"]  # type: ignore[no-any-return]

    def modalities(self, names: Sequence[str], model: str) -> list[ItemFeatures]:
        """The named modalities (all of them, in data-config order, when ``names`` is empty).

        Raises:
            ConfigError: the data has no features, or a name is not one of its modalities.
        """
        if not self.features:
            raise ConfigError(
                f"model {model!r} needs item features, but data {self.name!r} has none: add "
                "[features.<name>] tables (kind = text, tabular, kg or npy) to the data config"
            )
        unknown = [n for n in names if n not in self.features]
        if unknown:
            raise ConfigError(
                f"model {model!r}: unknown modality {unknown[0]!r}; data {self.name!r} has: "
                f"{', '.join(self.features)}"
            )
        return [self.features[n] for n in (names or list(self.features))]

    def modality_graph(
        self, names: Sequence[str], k: int, weights: Sequence[float] | None = None
    ) -> Tensor:
        """The item-item kNN graph of the named modalities (sparse CSR, built once per setting).

        See :func:`recsys.data.knn.modality_graph` (cosine top-k with self, row-degree
        normalised, weighted sum over modalities; equal weights by default).
        """
        key = ("modality_graph", tuple(names), k, None if weights is None else tuple(weights))
        if key not in self._cache:
            from recsys.data.knn import modality_graph

            feats = [self.features[n] for n in names]
            self._cache[key] = modality_graph(feats, k, weights)
        return self._cache[key]  # type: ignore[no-any-return]
