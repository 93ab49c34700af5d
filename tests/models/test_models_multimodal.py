"""VBPR, FREEDOM and CM3 against hand-computed references, plus learning on a toy structure."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from recsys.errors import ConfigError
from recsys.losses import LOSSES
from recsys.models import build_model
from recsys.models.cm3 import CM3, CM3Config
from recsys.models.freedom import FREEDOM, FREEDOMConfig
from recsys.models.fusion import fuse
from recsys.models.vbpr import VBPR, VBPRConfig
from recsys.samplers import SAMPLERS
from recsys.train.config import TrainConfig
from recsys.train.loop import fit
from recsys.types import Batch
from tests.contract.toy_data import block_spec, held_out_auc, with_features


@pytest.fixture()
def spec():  # type: ignore[no-untyped-def]
    return with_features(block_spec(n_users=12, n_items=10, seed=1))


def dense(adj: torch.Tensor) -> torch.Tensor:
    return adj.to_dense()


def test_vbpr_score_is_id_part_plus_projected_content(spec) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = VBPR(VBPRConfig(dim=3), spec)
    model.eval()
    a = spec.features["a"].values.clone()
    a[spec.features["a"].missing] = model.inputs.placeholders["0"].detach()
    f = torch.cat([a, spec.features["b"].values], dim=1)
    with torch.no_grad():
        items = torch.cat([model.item_emb, model.project(f)], dim=1)
        expected = model.user_emb @ items.T
        got = model.scorer()(torch.arange(spec.n_users))
    torch.testing.assert_close(got, expected)
    batch = Batch(torch.tensor([0, 5]), torch.tensor([1, 7]), torch.tensor([[2, 3], [0, 9]]))
    with torch.no_grad():
        out = model(batch)
    torch.testing.assert_close(out.pos_scores, expected[[0, 5], [1, 7]])
    torch.testing.assert_close(out.neg_scores, expected[[[0], [5]], [[2, 3], [0, 9]]])


def test_learned_placeholder_starts_at_mean_and_receives_gradient(spec) -> None:  # type: ignore[no-untyped-def]
    model = VBPR(VBPRConfig(dim=3), spec)
    feat = spec.features["a"]
    torch.testing.assert_close(
        model.inputs.placeholders["0"].detach(), feat.values[~feat.missing].mean(0)
    )
    batch = Batch(torch.tensor([0]), torch.tensor([0]), torch.tensor([[5]]))  # item 0 missing
    model(batch).pos_scores.sum().backward()
    assert model.inputs.placeholders["0"].grad.abs().sum() > 0


def test_unknown_modality_and_missing_features_are_config_errors(spec) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=r"unknown modality 'image'.*has: a, b"):
        VBPR(VBPRConfig(modalities=["a", "image"]), spec)
    bare = block_spec(n_users=12, n_items=10)
    with pytest.raises(ConfigError, match="needs item features"):
        build_model("cm3", None, bare, seed=0)
    with pytest.raises(ConfigError, match="modality_weights has 1 entries for 2"):
        FREEDOM(FREEDOMConfig(modality_weights=[1.0]), spec)


def test_freedom_matches_dense_reference_and_evaluates_on_full_graph(spec) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = FREEDOM(FREEDOMConfig(dim=4, ui_layers=2, knn_k=3, reg_weight=0.0), spec)
    model.eval()
    adj, mm = dense(spec.graph.adj), dense(spec.modality_graph(["a", "b"], 3))
    e0 = torch.cat([model.user_emb, model.item_emb]).detach()
    layers = [e0, adj @ e0, adj @ adj @ e0]
    mean = torch.stack(layers).mean(0)
    users, items = mean[: spec.n_users], mean[spec.n_users :] + mm @ model.item_emb.detach()
    torch.testing.assert_close(
        model.scorer()(torch.arange(spec.n_users)), users @ items.T, rtol=1e-5, atol=1e-6
    )
    before = model.scorer()(torch.arange(spec.n_users))
    model.start_epoch(1)  # pruning is for training only
    torch.testing.assert_close(model.scorer()(torch.arange(spec.n_users)), before)


def test_freedom_pruning_keeps_share_and_prefers_low_degree_edges() -> None:
    spec = with_features(block_spec(n_users=40, n_items=30, seed=0))
    model = FREEDOM(FREEDOMConfig(dropout=0.5), spec)
    n_edges = len(spec.train)
    degree = spec.graph.degree
    edges = model._edges
    weight = (degree[edges[0]] * degree[edges[1] + spec.n_users]).rsqrt()
    kept_weight = []
    torch.manual_seed(0)
    for epoch in range(20):
        model.start_epoch(epoch)
        pruned = model._pruned
        assert pruned is not None
        a = dense(pruned)
        torch.testing.assert_close(a, a.T)
        kept = a[: spec.n_users, spec.n_users :] > 0
        assert int(kept.sum()) == int(n_edges * 0.5)
        # Renormalised on the kept graph: D^-1/2 A D^-1/2 with the kept degrees.
        deg = (a > 0).sum(1).float()
        inv = torch.where(deg > 0, deg.rsqrt(), torch.zeros_like(deg))
        torch.testing.assert_close(a, inv[:, None] * (a > 0).float() * inv[None, :])
        kept_weight.append(weight[kept[edges[0], edges[1]]].mean())
    # Sampling is proportional to 1/sqrt(d_u d_i): kept edges have above-average weight.
    assert torch.stack(kept_weight).mean() > weight.mean()


def test_freedom_modality_bpr_is_an_aux_term(spec) -> None:  # type: ignore[no-untyped-def]
    model = FREEDOM(FREEDOMConfig(reg_weight=0.5), spec)
    batch = Batch(torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([[3], [4]]))
    out = model(batch)
    assert set(out.aux) == {"modality_bpr"}
    out.aux["modality_bpr"].backward()
    assert all(p.weight.grad is not None for p in model.project)
    assert FREEDOM(FREEDOMConfig(reg_weight=0.0), spec)(batch).aux == {}


def cm3_reference(model: CM3, spec, mix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[no-untyped-def]
    """CM3's representations computed densely, straight from the method's definition."""
    feats = [f.detach() for f in model.inputs.all_filled()]
    points = torch.stack(
        [F.normalize(lin(f), dim=-1) for lin, f in zip(model.fusion_maps, feats, strict=True)]
    )
    fused = fuse(model.cfg.fusion, points, mix)
    items = [enc(f) for enc, f in zip(model.encoders, feats, strict=True)] + [fused]
    x = torch.cat(
        [
            F.normalize(torch.cat([model.user_modal[c], items[c]]), dim=-1)
            for c in range(len(items))
        ],
        dim=1,
    )
    adj = dense(spec.graph.adj)
    e, acc = x, x
    for _ in range(model.cfg.ui_layers):
        e = adj @ e
        acc = acc + e
    users, item_rep = acc[: spec.n_users], acc[spec.n_users :]
    a = torch.softmax(model.user_attention, dim=1)
    users = (users.view(spec.n_users, len(items), -1) * a).flatten(1)
    mm = dense(spec.modality_graph(list(spec.features), model.cfg.knn_k))
    return users, item_rep + mm @ item_rep


@pytest.mark.parametrize("fusion", ["dirichlet", "bezier"])
def test_cm3_matches_reference_with_expected_mix(spec, fusion: str) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = CM3(CM3Config(dim=4, ui_layers=2, knn_k=3, fusion=fusion), spec)  # type: ignore[arg-type]
    model.eval()
    with torch.no_grad():
        users, items = cm3_reference(model, spec, model._mix())
        got = model.scorer()(torch.arange(spec.n_users))
    assert users.shape == (spec.n_users, 3 * 4)  # M + 1 = 3 channels
    torch.testing.assert_close(got, users @ items.T, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got, model.scorer()(torch.arange(spec.n_users)))


def test_cm3_eval_mix_last_reuses_the_last_training_draw(spec) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = CM3(CM3Config(dim=4, knn_k=3, eval_mix="last", alpha=0.3), spec)
    batch = Batch(torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([[3], [4]]))
    model.train()
    out = model(batch)
    drawn = model.last_mix.clone()
    assert not torch.allclose(drawn, torch.full_like(drawn, 0.5))
    model.eval()
    with torch.no_grad():
        users, items = cm3_reference(model, spec, drawn)
        torch.testing.assert_close(
            model.scorer()(torch.arange(spec.n_users)), users @ items.T, rtol=1e-4, atol=1e-5
        )
    # The drawn mix is state: it survives a state_dict round trip.
    other = CM3(CM3Config(dim=4, knn_k=3, eval_mix="last", alpha=0.3), spec)
    other.load_state_dict(model.state_dict())
    torch.testing.assert_close(other.last_mix, drawn)
    assert out.extra["neg_content"].shape == (2, 1, 4)
    torch.testing.assert_close(out.extra["neg_content"].norm(dim=-1), torch.ones(2, 1))


def test_cm3_draws_a_fresh_mix_every_training_forward(spec) -> None:  # type: ignore[no-untyped-def]
    model = CM3(CM3Config(dim=4, knn_k=3), spec)
    batch = Batch(torch.tensor([0]), torch.tensor([1]), torch.tensor([[3]]))
    model.train()
    model(batch)
    first = model.last_mix.clone()
    model(batch)
    assert not torch.equal(first, model.last_mix)
    assert first.shape == (spec.n_items, 2)


LEARNERS = [
    ("vbpr", [{"name": "bpr", "reg_weight": 1e-4}]),
    ("freedom", [{"name": "bpr", "reg_weight": 0.0}]),
    ("cm3", [{"name": "calibrated_uniformity"}]),
    ("lightgcn", [{"name": "align_uniform"}]),
]


@pytest.mark.parametrize(("name", "losses"), LEARNERS)
def test_multimodal_models_learn_block_structure(name: str, losses: list[dict]) -> None:  # type: ignore[type-arg]
    spec = with_features(block_spec(n_users=40, n_items=30, keep=0.5, seed=0))
    model = build_model(name, None, spec, seed=0)
    loss_objs = []
    for raw in losses:
        cls = LOSSES[raw["name"]]
        loss_objs.append(cls(cls.Config(**{k: v for k, v in raw.items() if k != "name"})))
    cfg = TrainConfig(epochs=20, batch_size=64, lr=0.01)
    fit(model, loss_objs, SAMPLERS["uniform"](), spec, cfg, seed=0)
    with torch.no_grad():
        model.eval()
        after = held_out_auc(model.scorer()(torch.arange(spec.n_users)), spec)
    assert after > 0.8, after


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["vbpr", "freedom", "cm3"])
def test_multimodal_models_give_the_same_scores_on_cuda(name: str, spec) -> None:  # type: ignore[no-untyped-def]
    """Features, kNN graphs and (pruned) user-item graphs follow the model to the GPU."""
    model = build_model(name, None, spec, seed=0)
    model.eval()
    with torch.no_grad():
        cpu = model.scorer()(torch.arange(spec.n_users))
    model = model.to("cuda")
    with torch.no_grad():
        gpu = model.scorer()(torch.arange(spec.n_users, device="cuda")).cpu()
    torch.testing.assert_close(gpu, cpu, rtol=1e-4, atol=1e-4)
    model.train()
    model.start_epoch(1)
    batch = Batch(
        torch.tensor([0, 1], device="cuda"),
        torch.tensor([1, 2], device="cuda"),
        torch.tensor([[3], [4]], device="cuda"),
    )
    out = model(batch)
    torch.stack([out.pos_scores.sum(), *out.aux.values()]).sum().backward()
