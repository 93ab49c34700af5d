"""Item features (text, tabular, knowledge graph, precomputed ``.npy``), cached by content hash.

The configs (:mod:`recsys.data.features.config`) are imported eagerly; everything that reads
data is imported on first use, so :mod:`recsys.data.config` can import the configs without an
import cycle (the readers import :mod:`recsys.data.sources`, which imports the data config).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from recsys.data.features.config import (
    KgConfig,
    ModalityConfig,
    NpyConfig,
    TabularConfig,
    TextConfig,
)

if TYPE_CHECKING:
    from recsys.data.features.store import build_features, build_modality, cache_key
    from recsys.data.features.text import encode_texts, item_texts
    from recsys.data.features.values import apply_policy

_LAZY = {
    "build_features": "store",
    "build_modality": "store",
    "cache_key": "store",
    "encode_texts": "text",
    "item_texts": "text",
    "apply_policy": "values",
}

__all__ = [
    "KgConfig",
    "ModalityConfig",
    "NpyConfig",
    "TabularConfig",
    "TextConfig",
    "apply_policy",
    "build_features",
    "build_modality",
    "cache_key",
    "encode_texts",
    "item_texts",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"recsys.data.features.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
