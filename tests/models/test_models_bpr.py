"""BPR loss values on hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from recsys.losses import LOSSES
from recsys.losses.bpr import BPR, BPRConfig
from recsys.types import Batch, ModelOutput


def batch(b: int, n: int) -> Batch:
    return Batch(
        torch.zeros(b, dtype=torch.long),
        torch.zeros(b, dtype=torch.long),
        torch.zeros(b, n, dtype=torch.long),
    )


def test_equal_scores_give_log2() -> None:
    out = ModelOutput(torch.full((4,), 0.7), torch.full((4, 3), 0.7))
    terms = BPR(BPRConfig(reg_weight=0.0))(batch(4, 3), out)
    assert set(terms) == {"bpr"}
    assert float(terms["bpr"]) == pytest.approx(math.log(2))


def test_bpr_value_and_lightgcn_reg_scaling() -> None:
    pos = torch.tensor([2.0, 0.0])
    neg = torch.tensor([[0.0, 1.0], [0.0, -1.0]])
    user = torch.tensor([[1.0, 2.0], [0.0, 1.0]])  # ||.||² = 6
    item = torch.tensor([[3.0, 0.0], [1.0, 1.0]])  # 11
    negs = torch.ones(2, 2, 2)  # 8
    out = ModelOutput(pos, neg, reg={"user": user, "pos": item, "neg": negs})
    terms = LOSSES["bpr"](BPRConfig(reg_weight=0.5))(batch(2, 2), out)
    sp = [math.log1p(math.exp(v)) for v in (-2.0, -1.0, 0.0, -1.0)]
    assert float(terms["bpr"]) == pytest.approx(sum(sp) / 4)
    # reg_weight * (6 + 11 + 8) / 2 / B with B = 2 (negatives are not counted in B).
    assert float(terms["reg"]) == pytest.approx(0.5 * 25 / 2 / 2)


def test_bpr_gradient_pushes_positive_up() -> None:
    pos = torch.zeros(3, requires_grad=True)
    neg = torch.zeros(3, 1, requires_grad=True)
    BPR()(batch(3, 1), ModelOutput(pos, neg))["bpr"].backward()
    assert pos.grad is not None and neg.grad is not None
    assert (pos.grad < 0).all() and (neg.grad > 0).all()
    torch.testing.assert_close(pos.grad, torch.full((3,), -0.5 / 3))
