"""DirectAU's alignment/uniformity and CM3's calibrated uniformity."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from recsys.errors import ConfigError, RecsysError
from recsys.losses.align_uniform import (
    AlignUniform,
    AlignUniformConfig,
    CalibratedUniformity,
    CalibratedUniformityConfig,
    alignment,
    calibrated_uniformity,
    pair_similarity,
    pair_sq_distances,
    uniformity,
)
from recsys.types import Batch, ItemFeatures, ModelOutput


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def naive_uniformity(x: torch.Tensor, t: float, sim: list[float] | None = None) -> float:
    """The double loop over pairs a < b (calibrated when ``sim`` is given)."""
    rows = x.tolist()
    terms, p = [], 0
    for a in range(len(rows)):
        for b in range(a + 1, len(rows)):
            d2 = sum((xa - xb) ** 2 for xa, xb in zip(rows[a], rows[b], strict=True))
            shift = 0.0 if sim is None else -2.0 + 2.0 * sim[p]
            terms.append(math.exp(-t * (d2 + shift)))
            p += 1
    return math.log(sum(terms) / len(terms))


# --- pure functions ---------------------------------------------------------------------------


def test_pair_order_matches_pdist() -> None:
    x = rand(7, 5)
    assert torch.allclose(pair_sq_distances(x), torch.pdist(x).square())
    c = rand(7, 3, seed=1)
    cn = F.normalize(c, dim=1)
    # pdist of unit vectors gives 2 - 2 cos in the same order.
    assert torch.allclose(pair_similarity(c, -1.0, 1.0), 1 - torch.pdist(cn).square() / 2)


def test_alignment_hand_computed() -> None:
    u = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    i = torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.6, -0.8]])
    # ||.||²: 2, 0, 1.6² = 2.56 -> mean 4.56 / 3
    assert alignment(u, i).item() == pytest.approx(4.56 / 3)


def test_uniformity_hand_computed_and_naive() -> None:
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    # pairs (0,1): 4, (0,2): 0 (duplicate row), (1,2): 4
    expected = math.log((2 * math.exp(-8.0) + 1.0) / 3)
    assert uniformity(x).item() == pytest.approx(expected)
    y = F.normalize(rand(9, 4), dim=1)
    for t in (0.5, 2.0, 5.0):
        assert uniformity(y, t).item() == pytest.approx(naive_uniformity(y, t), rel=1e-10)


def test_uniformity_is_stable_at_large_t() -> None:
    x = F.normalize(rand(6, 3), dim=1)
    value = uniformity(x, t=500.0)
    assert torch.isfinite(value)
    naive = torch.log(torch.exp(-500.0 * pair_sq_distances(x)).mean())
    assert not torch.isfinite(naive) or naive.item() == pytest.approx(value.item())


def test_uniformity_invariant_to_rotation() -> None:
    x = F.normalize(rand(12, 6), dim=1)
    q, _ = torch.linalg.qr(rand(6, 6, seed=3))
    assert torch.allclose(q @ q.T, torch.eye(6, dtype=torch.float64), atol=1e-12)
    assert uniformity(x @ q).item() == pytest.approx(uniformity(x).item(), abs=1e-12)
    s = pair_similarity(rand(12, 4, seed=4), 0.0, 1.0)
    assert calibrated_uniformity(x @ q, s).item() == pytest.approx(
        calibrated_uniformity(x, s).item(), abs=1e-12
    )


def test_calibrated_matches_naive_and_plain_when_similarity_is_one() -> None:
    x = F.normalize(rand(8, 4), dim=1)
    p = 8 * 7 // 2
    ones = torch.ones(p, dtype=torch.float64)
    assert calibrated_uniformity(x, ones).item() == pytest.approx(uniformity(x).item(), abs=1e-12)
    s = torch.rand(p, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    assert calibrated_uniformity(x, s, 1.5).item() == pytest.approx(
        naive_uniformity(x, 1.5, s.tolist()), rel=1e-10
    )
    with pytest.raises(ValueError, match=r"\(28,\)"):
        calibrated_uniformity(x, ones[:-1])


@settings(max_examples=30, deadline=None)
@given(
    c=st.floats(0.0, 1.0),
    t=st.floats(0.1, 5.0),
    seed=st.integers(0, 1000),
)
def test_constant_similarity_shifts_by_exactly_2t_1_minus_c(c: float, t: float, seed: int) -> None:
    x = F.normalize(rand(6, 3, seed=seed), dim=1)
    s = torch.full((15,), c, dtype=torch.float64)
    diff = calibrated_uniformity(x, s, t) - uniformity(x, t)
    assert diff.item() == pytest.approx(2 * t * (1 - c), abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(
    lo=st.floats(-1.0, 1.0),
    width=st.floats(0.0, 2.0),
    t=st.floats(0.1, 5.0),
    seed=st.integers(0, 1000),
)
def test_calibrated_bounds(lo: float, width: float, t: float, seed: int) -> None:
    hi = min(1.0, lo + width)
    x = F.normalize(rand(7, 4, seed=seed), dim=1)
    s = pair_similarity(rand(7, 5, seed=seed + 1), lo, hi)
    assert bool((s >= lo).all() and (s <= hi).all())
    plain = uniformity(x, t).item()
    cal = calibrated_uniformity(x, s, t).item()
    assert plain + 2 * t * (1 - hi) - 1e-9 <= cal <= plain + 2 * t * (1 - lo) + 1e-9


def test_gradients_finite_on_identical_rows() -> None:
    for dtype in (torch.float32, torch.float64):
        x = torch.full((5, 4), 0.5, dtype=dtype, requires_grad=True)
        c = torch.full((5, 3), 2.0, dtype=dtype, requires_grad=True)
        loss = uniformity(x) + calibrated_uniformity(x, pair_similarity(c, 0.0, 1.0))
        loss.backward()
        assert x.grad is not None and c.grad is not None
        assert bool(torch.isfinite(x.grad).all()) and bool(torch.isfinite(c.grad).all())
        assert torch.isfinite(loss)
        assert uniformity(x.detach()).item() == pytest.approx(0.0, abs=1e-5)  # all distances 0


def test_clamp_zeroes_gradient_outside_the_range() -> None:
    def grad(min_sim: float, max_sim: float) -> torch.Tensor:
        c = torch.tensor([[1.0, 0.0], [0.6, 0.8]], requires_grad=True)  # cos = 0.6
        pair_similarity(c, min_sim, max_sim).sum().backward()
        assert c.grad is not None
        return c.grad

    assert torch.equal(grad(0.7, 1.0), torch.zeros(2, 2))
    assert torch.equal(grad(-1.0, 0.5), torch.zeros(2, 2))
    inside = grad(0.0, 1.0)
    assert inside.abs().sum() > 0  # gradients are not stopped inside the range
    with pytest.raises(ValueError, match="min_sim"):
        pair_similarity(torch.ones(2, 2), 0.5, 0.4)


def test_fewer_than_two_rows_give_zero() -> None:
    x = torch.ones(1, 3, requires_grad=True)
    assert uniformity(x).item() == 0.0
    assert calibrated_uniformity(x, torch.zeros(0)).item() == 0.0
    uniformity(x).backward()
    assert x.grad is not None


# --- loss classes -----------------------------------------------------------------------------

B, N, D, C = 6, 3, 4, 5


def make_batch() -> Batch:
    return Batch(
        users=torch.tensor([0, 1, 1, 2, 3, 0]),
        pos_items=torch.tensor([4, 2, 0, 1, 3, 2]),
        neg_items=torch.tensor([[1, 0, 3], [3, 1, 2], [4, 4, 0], [0, 2, 1], [2, 0, 4], [1, 3, 3]]),
    )


def make_out(content: bool = True) -> ModelOutput:
    extra = {"user": rand(B, D, seed=10), "pos": rand(B, D, seed=11), "neg": rand(B, N, D, seed=12)}
    if content:
        extra["pos_content"] = rand(B, C, seed=13)
        extra["neg_content"] = rand(B, N, C, seed=14)
    return ModelOutput(torch.zeros(B), torch.zeros(B, N), extra=extra)


def test_align_uniform_terms() -> None:
    out = make_out()
    u = F.normalize(out.extra["user"], dim=1)
    p = F.normalize(out.extra["pos"], dim=1)
    n0 = F.normalize(out.extra["neg"][:, 0], dim=1)
    terms = AlignUniform(AlignUniformConfig(gamma=0.7, t=1.5))(make_batch(), out)
    assert set(terms) == {"align", "uniform"}
    assert terms["align"].item() == pytest.approx(((u - p) ** 2).sum(1).mean().item())
    expected = 0.7 * (naive_uniformity(u, 1.5) + naive_uniformity(p, 1.5)) / 2
    assert terms["uniform"].item() == pytest.approx(expected, rel=1e-10)
    neg = AlignUniform(AlignUniformConfig(items="neg"))(make_batch(), out)
    expected = (naive_uniformity(u, 2.0) + naive_uniformity(n0, 2.0)) / 2
    assert neg["uniform"].item() == pytest.approx(expected, rel=1e-10)
    # Scale of the raw vectors does not matter (they are normalised).
    scaled = ModelOutput(
        out.pos_scores, out.neg_scores, extra={k: 3 * v for k, v in out.extra.items()}
    )
    assert AlignUniform()(make_batch(), scaled)["align"].item() == pytest.approx(
        AlignUniform()(make_batch(), out)["align"].item()
    )


def test_align_uniform_errors_and_config() -> None:
    out = make_out()
    del out.extra["neg"]
    AlignUniform()(make_batch(), out)  # "pos" does not need the negatives
    with pytest.raises(RecsysError, match=r"ModelOutput\.extra.*missing: neg"):
        AlignUniform(AlignUniformConfig(items="neg"))(make_batch(), out)
    with pytest.raises(RecsysError, match="'user', 'pos'"):
        AlignUniform()(make_batch(), ModelOutput(torch.zeros(B), torch.zeros(B, N)))
    with pytest.raises(ValidationError):
        AlignUniformConfig(gamma=-1.0)
    with pytest.raises(ValidationError):
        AlignUniformConfig(t=0.0)


def test_calibrated_loss_with_model_content() -> None:
    out = make_out()
    out.extra["neg_content"].requires_grad_(True)
    cfg = CalibratedUniformityConfig(gamma=0.9, max_sim=0.8)
    terms = CalibratedUniformity(cfg)(make_batch(), out)
    u = F.normalize(out.extra["user"], dim=1)
    p = F.normalize(out.extra["pos"], dim=1)
    n0 = F.normalize(out.extra["neg"][:, 0], dim=1)
    cn = F.normalize(out.extra["neg_content"][:, 0].detach(), dim=1)
    sims = [min(max(float(cn[a] @ cn[b]), 0.0), 0.8) for a in range(B) for b in range(a + 1, B)]
    expected = 0.9 * (naive_uniformity(u, 2.0) + naive_uniformity(n0, 2.0, sims)) / 2
    assert terms["uniform"].item() == pytest.approx(expected, rel=1e-10)
    assert terms["align"].item() == pytest.approx(alignment(u, p).item())
    terms["uniform"].backward()
    assert out.extra["neg_content"].grad is not None  # calibration gradient reaches content
    assert out.extra["neg_content"].grad[:, 0].abs().sum() > 0
    no_align = CalibratedUniformity(CalibratedUniformityConfig(align=False))(make_batch(), out)
    assert set(no_align) == {"uniform"}
    pos_cfg = CalibratedUniformityConfig(items="pos", min_sim=-1.0)
    pos_terms = CalibratedUniformity(pos_cfg)(make_batch(), out)
    cp = F.normalize(out.extra["pos_content"], dim=1)
    sims = [float(cp[a] @ cp[b]) for a in range(B) for b in range(a + 1, B)]
    expected = 0.5 * (naive_uniformity(u, 2.0) + naive_uniformity(p, 2.0, sims)) / 2
    assert pos_terms["uniform"].item() == pytest.approx(expected, rel=1e-10)


def test_calibrated_loss_errors_and_config() -> None:
    with pytest.raises(RecsysError, match=r"cm3.*content = 'features'"):
        CalibratedUniformity()(make_batch(), make_out(content=False))
    with pytest.raises(RecsysError, match="bind"):
        CalibratedUniformity(CalibratedUniformityConfig(content="features"))(
            make_batch(), make_out()
        )
    with pytest.raises(ValidationError, match="min_sim"):
        CalibratedUniformityConfig(min_sim=0.9, max_sim=0.8)
    with pytest.raises(ValidationError):
        CalibratedUniformityConfig(max_sim=1.5)
    with pytest.raises(ValidationError):
        CalibratedUniformityConfig(content="other")  # type: ignore[arg-type]


def test_bind_builds_mean_modality_cosine() -> None:
    n_items = 5
    text = rand(n_items, 3, seed=20).float()
    image = rand(n_items, 4, seed=21).float()
    spec = SimpleNamespace(
        features={
            "text": ItemFeatures("text", text, torch.zeros(n_items, dtype=torch.bool)),
            "image": ItemFeatures("image", image, torch.zeros(n_items, dtype=torch.bool)),
        }
    )
    loss = CalibratedUniformity(CalibratedUniformityConfig(content="features", min_sim=-1.0))
    loss.bind(spec)  # type: ignore[arg-type]
    assert loss.content is not None and loss.content.shape == (n_items, 7)
    cos_t = F.normalize(text, dim=1) @ F.normalize(text, dim=1).T
    cos_i = F.normalize(image, dim=1) @ F.normalize(image, dim=1).T
    mean_cos = (cos_t + cos_i) / 2
    assert torch.allclose(loss.content.norm(dim=1), torch.ones(n_items))
    assert torch.allclose(loss.content @ loss.content.T, mean_cos, atol=1e-6)

    # In the loss, s is looked up by the batch's first negatives.
    batch, out = make_batch(), make_out(content=False)
    terms = loss(batch, out)
    j = batch.neg_items[:, 0].tolist()
    sims = [float(mean_cos[j[a], j[b]]) for a in range(B) for b in range(a + 1, B)]
    u = F.normalize(out.extra["user"], dim=1)
    n0 = F.normalize(out.extra["neg"][:, 0], dim=1)
    expected = 0.5 * (naive_uniformity(u, 2.0) + naive_uniformity(n0, 2.0, sims)) / 2
    assert terms["uniform"].item() == pytest.approx(expected, rel=1e-5)


def test_bind_missing_rows_and_errors() -> None:
    values = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    missing = torch.tensor([False, False, True])
    spec = SimpleNamespace(
        features={
            "a": ItemFeatures("a", values, missing, policy="mean"),
            "b": ItemFeatures("b", values.flip(1), torch.zeros(3, dtype=torch.bool)),
        }
    )
    loss = CalibratedUniformity(CalibratedUniformityConfig(content="features"))
    loss.bind(spec)  # type: ignore[arg-type]
    assert loss.content is not None
    r = 1 / math.sqrt(2)
    assert torch.allclose(loss.content[2], torch.tensor([0.0, 0.0, 1.0, 0.0]) * r)
    with pytest.raises(ConfigError, match="needs item features in the data config"):
        loss.bind(SimpleNamespace(features={}))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="needs item features"):
        loss.bind(SimpleNamespace())  # type: ignore[arg-type]
    model_loss = CalibratedUniformity()
    model_loss.bind(SimpleNamespace())  # type: ignore[arg-type]  # content = "model": no-op
    assert model_loss.content is None
