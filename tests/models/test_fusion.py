"""Spherical fusion: slerp, De Casteljau Bézier, Dirichlet-weighted Karcher mean, sampling."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, stats

from recsys.errors import ConfigError
from recsys.models.fusion import (
    MEAN_ITERS,
    bezier,
    expected_mix,
    fuse,
    sample_mix,
    slerp,
    spherical_mean,
    tangent_residual,
)

F64 = torch.float64


def unit(*shape: int, seed: int, dtype: torch.dtype = F64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g, dtype=dtype), dim=-1)


def angle(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Row-wise angle, accurate at every angle: 2·atan2(‖x − y‖, ‖x + y‖)."""
    return 2 * torch.atan2((x - y).norm(dim=-1), (x + y).norm(dim=-1))


def rotate_towards(a: torch.Tensor, b: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """The point at angle ``phi`` from ``a`` on the great circle towards ``b`` (reference)."""
    u = F.normalize(b - (a * b).sum(-1, keepdim=True) * a, dim=-1)
    return torch.cos(phi)[:, None] * a + torch.sin(phi)[:, None] * u


# --------------------------------------------------------------------------- unit norm


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    m=st.integers(1, 5),
    n=st.integers(1, 6),
    d=st.integers(2, 9),
    kind=st.sampled_from(["bezier", "dirichlet"]),
    alpha=st.floats(0.05, 20.0),
    dtype=st.sampled_from([torch.float32, F64]),
)
def test_every_fused_vector_has_unit_norm(
    seed: int, m: int, n: int, d: int, kind: str, alpha: float, dtype: torch.dtype
) -> None:
    points = unit(m, n, d, seed=seed, dtype=dtype)
    gen = torch.Generator().manual_seed(seed)
    mix = sample_mix(kind, n, m, alpha, device="cpu", generator=gen, dtype=dtype)  # type: ignore[arg-type]
    for mx in (mix, expected_mix(kind, n, m, device="cpu", dtype=dtype)):  # type: ignore[arg-type]
        out = fuse(kind, points, mx)  # type: ignore[arg-type]
        assert out.shape == (n, d) and out.dtype == dtype
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        torch.testing.assert_close(out.norm(dim=-1), torch.ones(n, dtype=dtype), atol=tol, rtol=0)


def test_single_modality_returns_the_point() -> None:
    x = unit(1, 7, 4, seed=1)
    lam = torch.rand(7, dtype=F64)
    assert torch.equal(bezier(x, lam), x[0])
    assert torch.equal(spherical_mean(x, torch.ones(7, 1, dtype=F64)), x[0])
    for kind in ("bezier", "dirichlet"):
        mix = sample_mix(kind, 7, 1, 0.5, device="cpu", dtype=F64)  # type: ignore[arg-type]
        assert torch.equal(fuse(kind, x, mix), x[0])  # type: ignore[arg-type]
    assert torch.equal(sample_mix("dirichlet", 7, 1, 0.5, device="cpu"), torch.ones(7, 1))


# --------------------------------------------------------------------------- M = 2


def test_two_modalities_all_fusions_are_the_same_slerp() -> None:
    n = 500
    a, b = unit(2, n, 16, seed=2)
    lam = torch.rand(n, generator=torch.Generator().manual_seed(3), dtype=F64)
    s = slerp(a, b, lam)
    pts = torch.stack([a, b])
    w = torch.stack([1 - lam, lam], dim=1)
    torch.testing.assert_close(bezier(pts, lam), s, atol=1e-5, rtol=0)
    torch.testing.assert_close(spherical_mean(pts, w), s, atol=1e-5, rtol=0)
    torch.testing.assert_close(spherical_mean(pts, w, iters=1), s, atol=1e-10, rtol=0)
    torch.testing.assert_close(fuse("dirichlet", pts, w), s, atol=1e-12, rtol=0)
    torch.testing.assert_close(fuse("bezier", pts, lam), s, atol=1e-12, rtol=0)
    # float32 agrees with float64 too.
    s32 = slerp(a.float(), b.float(), lam.float())
    m32 = spherical_mean(pts.float(), w.float())
    torch.testing.assert_close(s32.double(), s, atol=1e-5, rtol=0)
    torch.testing.assert_close(m32.double(), s, atol=1e-5, rtol=0)


def test_slerp_matches_the_closed_form_of_cm3() -> None:
    """mix = sin(λθ)/sinθ · t̂ + sin((1−λ)θ)/sinθ · v̂ = slerp(v̂, t̂; λ)."""
    n = 300
    v, t = unit(2, n, 64, seed=4)
    lam = torch.distributions.Beta(0.5, 0.5).sample((n,)).double()
    theta = torch.arccos((t * v).sum(-1))
    closed = (torch.sin(lam * theta) / torch.sin(theta))[:, None] * t + (
        torch.sin((1 - lam) * theta) / torch.sin(theta)
    )[:, None] * v
    torch.testing.assert_close(slerp(v, t, lam), closed, atol=1e-12, rtol=0)


def test_slerp_endpoints_and_geodesic_property() -> None:
    n = 400
    a, b = unit(2, n, 5, seed=5)
    zeros, ones = torch.zeros(n, dtype=F64), torch.ones(n, dtype=F64)
    torch.testing.assert_close(slerp(a, b, zeros), a, atol=1e-12, rtol=0)
    torch.testing.assert_close(slerp(a, b, ones), b, atol=1e-12, rtol=0)
    lam = torch.rand(n, generator=torch.Generator().manual_seed(6), dtype=F64)
    s = slerp(a, b, lam)
    theta = angle(a, b)
    torch.testing.assert_close(angle(a, s), lam * theta, atol=1e-10, rtol=0)
    torch.testing.assert_close(angle(s, b), (1 - lam) * theta, atol=1e-10, rtol=0)
    torch.testing.assert_close(s, rotate_towards(a, b, lam * theta), atol=1e-10, rtol=0)


def test_slerp_small_angle_branch_is_accurate_and_continuous() -> None:
    n = 200
    a = unit(n, 6, seed=7)
    tangent = F.normalize(unit(n, 6, seed=8) - (unit(n, 6, seed=8) * a).sum(-1, keepdim=True) * a)
    lam = torch.rand(n, generator=torch.Generator().manual_seed(9), dtype=F64)
    for theta in (1e-9, 1e-6, 1e-4, 9.99e-4, 1.001e-3, 1e-2):
        b = math.cos(theta) * a + math.sin(theta) * tangent
        s = slerp(a, b, lam)
        torch.testing.assert_close(s, rotate_towards(a, b, lam * theta), atol=1e-9, rtol=0)


# --------------------------------------------------------------------------- numerics


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_coincident_and_antipodal_inputs_are_finite_with_finite_gradients(
    dtype: torch.dtype,
) -> None:
    n, d = 6, 5
    a = unit(n, d, seed=10, dtype=dtype)
    noise = unit(n, d, seed=11, dtype=dtype)
    cases = {
        "coincident": a.clone(),
        "nearly coincident": F.normalize(a + 1e-6 * noise),
        "antipodal": -a,
        "nearly antipodal": F.normalize(-a + 1e-5 * noise),
    }
    lam = torch.tensor([0.0, 0.2, 0.5, 0.5, 0.8, 1.0], dtype=dtype)
    w = torch.stack([1 - lam, lam], 1)
    for name, b in cases.items():
        a_ = a.clone().requires_grad_(True)
        b_ = b.clone().requires_grad_(True)
        third = unit(n, d, seed=12, dtype=dtype)
        outs = {
            "slerp": slerp(a_, b_, lam),
            "bezier3": bezier(torch.stack([a_, b_, third]), lam),
            "mean2": spherical_mean(torch.stack([a_, b_]), w),
            "mean3": spherical_mean(
                torch.stack([a_, b_, third]), torch.full((n, 3), 1 / 3, dtype=dtype)
            ),
        }
        for fn, out in outs.items():
            assert torch.isfinite(out).all(), (name, fn)
            (g_a, g_b) = torch.autograd.grad((out * noise).sum(), [a_, b_])
            assert torch.isfinite(g_a).all() and torch.isfinite(g_b).all(), (name, fn)
            # Exactly antipodal pairs have no unique geodesic: slerp at λ = ½ gives 0 there.
            if name != "antipodal" or fn.startswith("mean"):
                norms = out.norm(dim=-1).detach()
                torch.testing.assert_close(norms, torch.ones_like(norms), atol=1e-5, rtol=0)
    # Coincident inputs fuse to the point itself; so does a mean of copies.
    torch.testing.assert_close(slerp(a, a, lam), a, atol=1e-6, rtol=0)
    thirds = torch.full((n, 3), 1 / 3, dtype=dtype)
    torch.testing.assert_close(spherical_mean(torch.stack([a, a, a]), thirds), a)


def test_nearly_antipodal_slerp_stays_on_the_great_circle() -> None:
    """Within slerp's clip band its point is on the a–b great circle, exact at λ = ½."""
    n = 50
    a = unit(n, 4, seed=13)
    r = unit(n, 4, seed=14)
    u = F.normalize(r - (r * a).sum(-1, keepdim=True) * a)
    for gap in (1e-2, 1e-5):
        b = math.cos(math.pi - gap) * a + math.sin(math.pi - gap) * u
        lam = torch.rand(n, generator=torch.Generator().manual_seed(15), dtype=F64)
        s = slerp(a, b, lam)
        # In span(a, u): no component orthogonal to both.
        off_plane = s - (s * a).sum(-1, keepdim=True) * a - (s * u).sum(-1, keepdim=True) * u
        assert off_plane.norm(dim=-1).max() < 1e-8
        half = slerp(a, b, torch.full((n,), 0.5, dtype=F64))
        mid = math.cos((math.pi - gap) / 2) * a + math.sin((math.pi - gap) / 2) * u
        torch.testing.assert_close(half, mid, atol=1e-9, rtol=0)
        if gap > 1e-3:  # outside the clip band: the full geodesic property
            torch.testing.assert_close(angle(a, s), lam * (math.pi - gap), atol=1e-9, rtol=0)
        # The mean's log map uses atan2, so it stays exact inside the band as well.
        mean = spherical_mean(torch.stack([a, b]), torch.stack([1 - lam, lam], 1))
        exact = rotate_towards(a, b, lam * (math.pi - gap))
        torch.testing.assert_close(mean, exact, atol=1e-9, rtol=0)


def test_gradients_match_finite_differences() -> None:
    a, b, c = unit(3, 3, 4, seed=16)
    lam = torch.tensor([0.1, 0.5, 0.9], dtype=F64)
    w = sample_mix("dirichlet", 3, 3, 1.0, device="cpu", dtype=F64)
    inputs = tuple(x.clone().requires_grad_(True) for x in (a, b, c))
    assert torch.autograd.gradcheck(lambda x, y: slerp(x, y, lam), inputs[:2])
    assert torch.autograd.gradcheck(lambda *p: bezier(torch.stack(p), lam), inputs)
    assert torch.autograd.gradcheck(lambda *p: spherical_mean(torch.stack(p), w), inputs)
    # Small-angle branch: gradients of the normalised lerp.
    near = F.normalize(a + 1e-5 * b).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, y: slerp(x, y, lam), (inputs[0], near))


# --------------------------------------------------------------------------- Bézier, M = 3


def test_three_point_bezier_is_de_casteljau_by_hand() -> None:
    e = torch.eye(3, dtype=F64)
    pts = e[:, None, :]  # (3, 1, 3): the control points e1, e2, e3
    # λ = ½: level 1 = (e1+e2)/√2, (e2+e3)/√2 (60° apart); their midpoint is (1, 2, 1)/√6.
    half = bezier(pts, torch.tensor([0.5], dtype=F64))[0]
    torch.testing.assert_close(half, torch.tensor([1.0, 2.0, 1.0], dtype=F64) / math.sqrt(6))
    # λ = 1/3 by scalar arithmetic.
    lam = 1 / 3
    p12 = [math.cos(lam * math.pi / 2), math.sin(lam * math.pi / 2), 0.0]
    p23 = [0.0, math.cos(lam * math.pi / 2), math.sin(lam * math.pi / 2)]
    th = math.acos(sum(x * y for x, y in zip(p12, p23, strict=True)))
    ca, cb = math.sin((1 - lam) * th) / math.sin(th), math.sin(lam * th) / math.sin(th)
    expected = torch.tensor([ca * x + cb * y for x, y in zip(p12, p23, strict=True)], dtype=F64)
    got = bezier(pts, torch.tensor([lam], dtype=F64))[0]
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)


def test_three_point_bezier_is_not_slerp_then_average() -> None:
    e = torch.eye(3, dtype=F64)[:, None, :]
    lam = torch.tensor([0.5], dtype=F64)
    got = bezier(e, lam)
    first_two = slerp(e[0], e[1], lam)
    averaged = F.normalize(first_two + e[2])  # slerp the first two, average the rest
    chained = slerp(first_two, e[2], lam)  # slerp each new modality into the running result
    assert angle(got, averaged).item() > 0.4  # 25.7° apart
    assert angle(got, chained).item() > 0.4


# --------------------------------------------------------------------------- permutations


def fused_samples(kind: str, points: torch.Tensor, n: int, seed: int) -> np.ndarray:
    gen = torch.Generator().manual_seed(seed)
    m = points.shape[0]
    mix = sample_mix(kind, n, m, 0.5, device="cpu", generator=gen, dtype=F64)  # type: ignore[arg-type]
    return fuse(kind, points[:, None, :].expand(-1, n, -1), mix).numpy()  # type: ignore[arg-type]


def distribution_shift(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Largest mean-vector gap in standard errors, and the smallest KS p over directions."""
    se = np.sqrt((x.var(0) + y.var(0)) / len(x)) + 1e-12
    z = float(np.max(np.abs(x.mean(0) - y.mean(0)) / se))
    dirs = np.random.default_rng(0).normal(size=(4, x.shape[1]))
    p = min(float(stats.ks_2samp(x @ v, y @ v).pvalue) for v in dirs)
    return z, p


def test_dirichlet_fusion_distribution_is_permutation_invariant_bezier_is_not() -> None:
    pts = torch.tensor(
        [[1.0, 0.1, 0.0, 0.2], [0.1, 1.0, 0.3, 0.0], [0.0, 0.2, 1.0, 0.5]], dtype=F64
    )
    pts = F.normalize(pts)
    n = 3000
    base = fused_samples("dirichlet", pts, n, seed=100)
    for k, perm in enumerate(itertools.islice(itertools.permutations(range(3)), 1, None)):
        z, p = distribution_shift(base, fused_samples("dirichlet", pts[list(perm)], n, 200 + k))
        assert z < 5 and p > 1e-4, (perm, z, p)
    # Bézier: reversing the control points leaves the law unchanged (Beta(α, α) is symmetric)...
    bz = fused_samples("bezier", pts, n, seed=300)
    z, p = distribution_shift(bz, fused_samples("bezier", pts[[2, 1, 0]], n, seed=301))
    assert z < 5 and p > 1e-4, (z, p)
    # ...but moving the middle control point to an end changes it.
    z, p = distribution_shift(bz, fused_samples("bezier", pts[[1, 0, 2]], n, seed=302))
    assert z > 8 and p < 1e-10, (z, p)


# --------------------------------------------------------------------------- spherical mean


@pytest.mark.parametrize("alpha", [0.1, 1.0, 10.0])
def test_spherical_mean_converges_to_the_fixed_point(alpha: float) -> None:
    n, m, d = 400, 5, 64
    pts = unit(m, n, d, seed=20)
    gen = torch.Generator().manual_seed(21)
    w = sample_mix("dirichlet", n, m, alpha, device="cpu", generator=gen, dtype=F64)
    q = spherical_mean(pts, w)
    assert tangent_residual(pts, w, q).norm(dim=-1).max() < 1e-6
    converged = spherical_mean(pts, w, iters=80)
    assert tangent_residual(pts, w, converged).norm(dim=-1).max() < 1e-12
    assert angle(q, converged).max() < 1e-6
    # float32 reaches the same point to its rounding level.
    q32 = spherical_mean(pts.float(), w.float())
    assert angle(q32.double(), converged).max() < 1e-5
    # Fewer iterations are measurably worse: the default count matters.
    if alpha == 10.0:
        assert angle(spherical_mean(pts, w, iters=MEAN_ITERS // 2), converged).max() > 1e-5


def test_spherical_mean_is_the_minimiser_by_brute_force() -> None:
    pts = F.normalize(torch.tensor([[1.0, 0.2, 0.1], [0.3, 1.0, 0.0], [0.2, 0.4, 1.0]], dtype=F64))
    w = torch.tensor([[0.5, 0.3, 0.2]], dtype=F64)
    q = spherical_mean(pts[:, None, :], w)[0].numpy()
    x, wn = pts.numpy(), w[0].numpy()

    def cost(y: np.ndarray) -> float:
        y = y / np.linalg.norm(y)
        return float(np.sum(wn * np.arccos(np.clip(x @ y, -1, 1)) ** 2))

    best = optimize.minimize(cost, x.mean(0), method="Nelder-Mead", options={"xatol": 1e-10})
    ref = best.x / np.linalg.norm(best.x)
    assert np.arccos(min(1.0, float(q @ ref))) < 1e-5
    assert cost(q) <= best.fun + 1e-12


def test_spherical_mean_invariant_to_permuting_points_with_weights() -> None:
    n, m = 200, 4
    pts = unit(m, n, 16, seed=22)
    w = sample_mix("dirichlet", n, m, 0.7, device="cpu", dtype=F64)
    q = spherical_mean(pts, w)
    for perm in ([3, 1, 0, 2], [1, 2, 3, 0]):
        torch.testing.assert_close(spherical_mean(pts[perm], w[:, perm]), q, atol=1e-9, rtol=0)
    # ...while permuting the points alone does move it.
    assert angle(spherical_mean(pts[[3, 1, 0, 2]], w), q).max() > 0.1


# --------------------------------------------------------------------------- sampling


def test_sample_mix_shapes_ranges_and_laws() -> None:
    n, m = 20000, 3
    for alpha in (0.1, 0.9):
        lam = sample_mix("bezier", n, m, alpha, device="cpu", dtype=F64)
        assert lam.shape == (n,) and lam.dtype == F64
        assert (lam >= 0).all() and (lam <= 1).all() and torch.isfinite(lam).all()
        assert stats.kstest(lam.numpy(), stats.beta(alpha, alpha).cdf).pvalue > 1e-4
        w = sample_mix("dirichlet", n, m, alpha, device="cpu")
        assert w.shape == (n, m) and w.dtype == torch.float32 and (w >= 0).all()
        torch.testing.assert_close(w.sum(1), torch.ones(n), atol=1e-5, rtol=0)
        # A Dirichlet(α, α, α) coordinate is Beta(α, 2α).
        w1 = w[:, 1].double().numpy()
        assert stats.kstest(w1, stats.beta(alpha, 2 * alpha).cdf).pvalue > 1e-4
        # A wrong law fails the same test.
        assert stats.kstest(w1, stats.beta(alpha, alpha).cdf).pvalue < 1e-10


@pytest.mark.parametrize("kind", ["bezier", "dirichlet"])
def test_expected_mix_is_the_mean_of_sample_mix(kind: str) -> None:
    n, m, alpha = 40000, 4, 0.5
    draws = sample_mix(kind, n, m, alpha, device="cpu", dtype=F64)  # type: ignore[arg-type]
    expected = expected_mix(kind, 1, m, device="cpu", dtype=F64)[0]  # type: ignore[arg-type]
    se = draws.std(0) / math.sqrt(n)
    assert ((draws.mean(0) - expected).abs() < 5 * se).all()
    shape = (n,) if kind == "bezier" else (n, m)
    assert expected_mix(kind, n, m, device="cpu").shape == shape  # type: ignore[arg-type]


def test_sample_mix_generator_and_global_rng_are_reproducible() -> None:
    a = sample_mix(
        "dirichlet", 50, 3, 0.5, device="cpu", generator=torch.Generator().manual_seed(1)
    )
    b = sample_mix(
        "dirichlet", 50, 3, 0.5, device="cpu", generator=torch.Generator().manual_seed(1)
    )
    c = sample_mix(
        "dirichlet", 50, 3, 0.5, device="cpu", generator=torch.Generator().manual_seed(2)
    )
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(5)
    x = sample_mix("bezier", 50, 2, 0.5, device="cpu")
    torch.manual_seed(5)
    assert torch.equal(x, sample_mix("bezier", 50, 2, 0.5, device="cpu"))


def test_bad_configuration_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="kind"):
        sample_mix("slerp", 3, 2, 0.5, device="cpu")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="alpha"):
        sample_mix("bezier", 3, 2, 0.0, device="cpu")
    with pytest.raises(ConfigError, match="kind"):
        fuse("mean", unit(2, 3, 4, seed=0), torch.rand(3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="weights"):
        spherical_mean(unit(3, 4, 2, seed=0), torch.rand(4, 2))
