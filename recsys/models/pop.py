"""Most-popular: every user gets the items ranked by their train interaction count."""

from __future__ import annotations

from torch import Tensor

from recsys.config import StrictModel
from recsys.models.base import Model, Scorer
from recsys.spec import DataSpec


class PopConfig(StrictModel):
    """Most-popular has no parameters."""


class Pop(Model):
    """Scores every item by its train popularity, the same for every user.

    Fitted in closed form at construction (``trainable = False``). The popularity vector is a
    buffer, so ``.to(device)`` moves it and ``state_dict`` saves it.
    """

    Config = PopConfig
    trainable = False
    popularity: Tensor

    def __init__(self, cfg: PopConfig, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        self.register_buffer("popularity", spec.item_popularity().clone())

    def scorer(self) -> Scorer:
        pop = self.popularity

        def score(users: Tensor) -> Tensor:
            return pop.unsqueeze(0).expand(users.numel(), -1).clone()

        return score

    def embeddings(self) -> tuple[Tensor, Tensor] | None:
        return None


__all__ = ["Pop", "PopConfig"]
