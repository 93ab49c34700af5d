"""Item modality inputs shared by the multimodal models (VBPR, FREEDOM, CM3).

The raw features are data, not state: they are non-persistent buffers (checkpoints stay small
and are rebuilt from the DataSpec), moved with the model. Missing rows follow the modality's
policy (:class:`recsys.types.ItemFeatures`): under ``learned`` a trainable placeholder vector
per modality replaces them, initialised at the mean of the present rows; ``mean`` and ``zero``
were filled by the feature stage and are used as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pydantic import Field
from torch import Tensor, nn

from recsys.config import StrictModel
from recsys.errors import ConfigError
from recsys.spec import DataSpec
from recsys.types import ItemFeatures


class ItemGraphConfig(StrictModel):
    """Settings shared by the models with a frozen modality kNN item graph (FREEDOM, CM3)."""

    knn_k: int = Field(default=10, ge=1)
    """Neighbours per item in each modality's cosine kNN graph (self included)."""
    modalities: list[str] = Field(default_factory=list)
    """Modalities used (empty: all of the data's, in data-config order)."""
    modality_weights: list[float] = Field(default_factory=list)
    """Weights of the modality kNN graphs (empty: equal; MMRec's two-modality default is image
    0.1, text 0.9)."""


class ModalityInputs(nn.Module):
    """The raw ``(n_items, d_m)`` matrices of the chosen modalities, missing rows filled.

    Attributes:
        names: modality names, in order.
        dims: their feature dimensions.
    """

    def __init__(self, features: Sequence[ItemFeatures]) -> None:
        super().__init__()
        self.names = [f.name for f in features]
        self.dims = [f.dim for f in features]
        self.placeholders = nn.ParameterDict()
        self._learned: list[bool] = []
        for m, f in enumerate(features):
            values = f.values.to(torch.float32)
            self.register_buffer(f"values_{m}", values, persistent=False)
            self.register_buffer(f"missing_{m}", f.missing.to(torch.bool), persistent=False)
            learned = f.policy == "learned" and f.n_missing > 0
            self._learned.append(learned)
            if learned:
                present = values[~f.missing]
                self.placeholders[str(m)] = nn.Parameter(present.mean(0).clone())

    def __len__(self) -> int:
        return len(self.names)

    def raw(self, m: int) -> Tensor:
        """Modality ``m``'s stored values (missing rows unfilled)."""
        out: Tensor = getattr(self, f"values_{m}")
        return out

    def missing(self, m: int) -> Tensor:
        """Modality ``m``'s ``(n_items,)`` missing mask."""
        out: Tensor = getattr(self, f"missing_{m}")
        return out

    def filled(self, m: int, items: Tensor | None = None) -> Tensor:
        """Modality ``m``'s features (of ``items``, or all items), placeholders in place."""
        values, missing = self.raw(m), self.missing(m)
        if items is not None:
            values, missing = values.index_select(0, items), missing.index_select(0, items)
        if not self._learned[m]:
            return values
        return torch.where(missing.unsqueeze(-1), self.placeholders[str(m)], values)

    def all_filled(self, items: Tensor | None = None) -> list[Tensor]:
        """Every modality's filled features, in order."""
        return [self.filled(m, items) for m in range(len(self))]


def select_modalities(
    spec: DataSpec, names: Sequence[str], weights: Sequence[float], model: str
) -> list[ItemFeatures]:
    """The model's modalities (all of the data's when ``names`` is empty), checking that
    ``weights`` (the kNN graph weights; empty = equal) has one entry per modality.

    Raises:
        ConfigError: unknown modality, no features, or a weight count mismatch.
    """
    features = spec.modalities(names, model)
    if weights and len(weights) != len(features):
        raise ConfigError(
            f"model {model!r}: modality_weights has {len(weights)} entries for "
            f"{len(features)} modalities ({', '.join(f.name for f in features)})"
        )
    return features


def item_graph_inputs(
    spec: DataSpec, cfg: ItemGraphConfig, model: str
) -> tuple[ModalityInputs, Tensor]:
    """The model's modality inputs and its frozen modality kNN graph (``(n_items, n_items)``
    sparse CSR, cached on the spec)."""
    features = select_modalities(spec, cfg.modalities, cfg.modality_weights, model)
    names = [f.name for f in features]
    graph = spec.modality_graph(names, cfg.knn_k, cfg.modality_weights or None)
    return ModalityInputs(features), graph
