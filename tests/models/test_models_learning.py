"""MF and LightGCN learn a two-block ("checkerboard") preference structure."""

from __future__ import annotations

import pytest
import torch

from recsys.losses import LOSSES
from recsys.models import build_model
from recsys.models.lightgcn import LightGCN, LightGCNConfig
from recsys.samplers import SAMPLERS
from recsys.train.config import TrainConfig
from recsys.train.loop import fit
from tests.contract.toy_data import block_spec, held_out_auc


@pytest.mark.parametrize("name", ["mf", "lightgcn"])
def test_learns_block_structure(name: str) -> None:
    spec = block_spec(n_users=40, n_items=30, keep=0.5, seed=0)
    model = build_model(name, None, spec, seed=0)
    with torch.no_grad():
        before = held_out_auc(model.scorer()(torch.arange(spec.n_users)), spec)
    cfg = TrainConfig(epochs=15, batch_size=64, lr=0.02)
    res = fit(model, [LOSSES["bpr"]()], SAMPLERS["uniform"](), spec, cfg, seed=0)
    with torch.no_grad():
        after = held_out_auc(model.scorer()(torch.arange(spec.n_users)), spec)
    assert after > 0.8, (before, after)
    assert res.history[-1]["loss"] < res.history[0]["loss"]


def test_lightgcn_propagation_matches_dense_reference() -> None:
    spec = block_spec(n_users=8, n_items=6, seed=2)
    torch.manual_seed(0)
    model = LightGCN(LightGCNConfig(dim=5, layers=3), spec)
    users, items = model.propagate_all()
    a = spec.graph.adj.to_dense()
    deg = torch.zeros(14)
    dense_a = torch.zeros(14, 14)
    dense_a[spec.train.users, spec.train.items + 8] = 1.0
    dense_a = torch.maximum(dense_a, dense_a.T)
    deg = dense_a.sum(1)
    inv = torch.where(deg > 0, deg.pow(-0.5), torch.zeros_like(deg))
    ref_a = inv[:, None] * dense_a * inv[None, :]
    torch.testing.assert_close(a, ref_a)
    e0 = torch.cat([model.user_emb, model.item_emb]).detach()
    layers = [e0]
    for _ in range(3):
        layers.append(ref_a @ layers[-1])
    ref = torch.stack(layers).mean(0)
    torch.testing.assert_close(torch.cat([users, items]).detach(), ref, rtol=1e-5, atol=1e-6)
    scores = model.scorer()(torch.tensor([1, 4]))
    torch.testing.assert_close(scores, ref[[1, 4]] @ ref[8:].T, rtol=1e-5, atol=1e-6)
