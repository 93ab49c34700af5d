"""Evaluation configuration: metrics, cut-offs and the protocol conventions."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from recsys.config import StrictModel

Metric = Literal["recall", "ndcg", "precision", "hit", "mrr", "map"]


class EvalConfig(StrictModel):
    """Full-ranking evaluation.

    The defaults are the standard protocol. The reference codes' conventions are selectable so
    published numbers can be reproduced under their own protocol:

    * ``idcg = "full"``: ideal DCG over all ``|test_u|`` positions (PLD code), not
      ``min(|test_u|, K)``.
    * ``average = "all_users"``: sums divided by the number of users in the dataset (PLD code).
    * ``test_mask = "train"``: at test time mask train items only (MMRec), not train + valid.
    """

    ks: tuple[Annotated[int, Field(ge=1)], ...] = Field(default=(10, 20), min_length=1)
    metrics: tuple[Metric, ...] = ("recall", "ndcg", "precision", "hit", "mrr", "map")
    batch_users: int = Field(default=2048, ge=1)
    """Users whose top-k lists are buffered on the scoring device per host copy. Scores are
    always computed in fixed 256-user blocks, so neither memory nor results depend on it."""
    idcg: Literal["truncated", "full"] = "truncated"
    average: Literal["evaluated", "all_users"] = "evaluated"
    test_mask: Literal["train_valid", "train"] = "train_valid"
    export_topk: int = Field(default=20, ge=0)
    """Length of the top-K lists written for the test split (0: none)."""
