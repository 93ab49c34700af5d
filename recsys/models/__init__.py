"""Models, looked up by name in :data:`MODELS`."""

from __future__ import annotations

import torch
from pydantic import BaseModel

from recsys.models.base import Model
from recsys.models.cm3 import CM3
from recsys.models.ease import EASE
from recsys.models.freedom import FREEDOM
from recsys.models.implicit_mf import ImplicitALS, ImplicitBPR, ImplicitLMF
from recsys.models.itemknn import ItemKNN
from recsys.models.lightgcn import LightGCN
from recsys.models.mf import MF
from recsys.models.multitask import DTRN, PLE, MMoE, SharedBottom, SingleTask
from recsys.models.pop import Pop
from recsys.models.vbpr import VBPR
from recsys.registry import Registry
from recsys.seeding import derive_seed
from recsys.spec import DataSpec

MODELS: Registry[type[Model]] = Registry(
    "model",
    {
        "pop": Pop,
        "implicit-als": ImplicitALS,
        "implicit-bpr": ImplicitBPR,
        "implicit-lmf": ImplicitLMF,
        "mf": MF,
        "lightgcn": LightGCN,
        "vbpr": VBPR,
        "freedom": FREEDOM,
        "cm3": CM3,
        "ease": EASE,
        "itemknn": ItemKNN,
        "shared-bottom": SharedBottom,
        "mmoe": MMoE,
        "ple": PLE,
        "dtrn": DTRN,
        "single-task": SingleTask,
    },
)


def build_model(
    name_or_cls: str | type[Model], cfg: BaseModel | None, spec: DataSpec, seed: int
) -> Model:
    """Construct a model with its initialisation seeded from ``(seed, "model-init")``.

    Args:
        name_or_cls: a :data:`MODELS` name or a model class.
        cfg: the model's validated ``Config`` (None: its defaults).
        spec: the dataset.
        seed: the run seed; the global torch RNG is seeded from it before construction, so the
            same seed gives the same initial weights.
    """
    cls = MODELS[name_or_cls] if isinstance(name_or_cls, str) else name_or_cls
    config = cls.Config() if cfg is None else cfg
    torch.manual_seed(derive_seed(seed, "model-init"))
    return cls(config, spec)  # type: ignore[arg-type]


__all__ = ["MODELS", "Model", "build_model"]
