"""Seed intervals, paired tests and Holm against hand-worked values, formulas and scipy."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from recsys.report.significance import (
    EXACT_MAX_N,
    PairedResult,
    holm_table,
    mean_ci,
    paired_tests,
)


def brute_force_perm_p(d: list[float]) -> float:
    """Exact sign-flip p-value by listing every sign vector in Python."""
    n = len(d)
    observed = abs(sum(d) / n)
    extreme = 0
    for signs in itertools.product((1, -1), repeat=n):
        if abs(sum(s * v for s, v in zip(signs, d, strict=True)) / n) >= observed - 1e-12:
            extreme += 1
    return extreme / 2**n


# --- mean_ci -------------------------------------------------------------------------------


def test_mean_ci_by_formula_and_scipy() -> None:
    values = [0.31, 0.29, 0.35, 0.30, 0.33]
    mean, low, high = mean_ci(values, level=0.95)
    # By hand: mean 0.316, deviations (-0.006, -0.026, 0.034, -0.016, 0.014), squares sum
    # 0.00232, sd = sqrt(0.00232 / 4), t_{0.975, 4} = 2.7764451051977987.
    assert mean == pytest.approx(0.316, abs=1e-15)
    half = 2.7764451051977987 * np.sqrt(0.00232 / 4) / np.sqrt(5)
    assert (low, high) == pytest.approx((0.316 - half, 0.316 + half), abs=1e-12)
    ref = stats.t.interval(0.95, 4, loc=np.mean(values), scale=stats.sem(values))
    assert (low, high) == pytest.approx(ref, abs=1e-12, rel=1e-12)
    for level in (0.5, 0.9, 0.99):
        _, lo, hi = mean_ci(values, level)
        ref = stats.t.interval(level, 4, loc=np.mean(values), scale=stats.sem(values))
        assert (lo, hi) == pytest.approx(ref, abs=1e-12, rel=1e-12)


def test_mean_ci_degenerate_cases() -> None:
    mean, low, high = mean_ci([0.4])
    assert mean == 0.4 and np.isnan(low) and np.isnan(high)
    assert mean_ci([0.2, 0.2, 0.2]) == pytest.approx((0.2, 0.2, 0.2))
    with pytest.raises(ValueError, match="non-empty"):
        mean_ci([])
    with pytest.raises(ValueError, match="NaN"):
        mean_ci([0.1, float("nan")])
    with pytest.raises(ValueError, match="level"):
        mean_ci([0.1, 0.2], level=1.0)


# --- paired tests against formulas --------------------------------------------------------


def test_paired_t_and_effect_by_formula() -> None:
    rng = np.random.default_rng(3)
    x = rng.random(40)
    y = x - 0.05 + 0.1 * rng.standard_normal(40)
    res = paired_tests(x, y)
    d = x - y
    sd = np.sqrt(np.sum((d - d.mean()) ** 2) / 39)
    t = d.mean() / (sd / np.sqrt(40))
    assert res.n == 40
    assert res.delta == pytest.approx(d.mean(), abs=1e-15)
    assert res.d_z == pytest.approx(d.mean() / sd, rel=1e-12)
    assert res.p_t == pytest.approx(2 * stats.t.sf(abs(t), 39), rel=1e-12)
    assert res.p_t == pytest.approx(stats.ttest_rel(x, y).pvalue, rel=1e-12, abs=1e-15)


def test_wilcoxon_zsplit_normal_approximation_by_hand() -> None:
    # Metric-like differences with many zeros and ties (n > 13 with ties: scipy's asymptotic
    # normal approximation without continuity correction).
    d = np.array([0.0] * 6 + [0.5, 0.5, -0.5, 1.0, -0.25, 0.25, 0.25, 1.0, -1.0, 0.75, 0.5])
    x = d + 0.2
    y = np.full_like(d, 0.2)
    res = paired_tests(x, y)
    dd = x - y
    n = dd.size
    ranks = stats.rankdata(np.abs(dd))  # average ranks; zeros ranked too (zsplit)
    r_plus = ranks[dd > 0].sum() + ranks[dd == 0].sum() / 2
    _, tie_sizes = np.unique(np.abs(dd), return_counts=True)
    var = n * (n + 1) * (2 * n + 1) / 24 - np.sum(tie_sizes**3 - tie_sizes) / 48
    z = (r_plus - n * (n + 1) / 4) / np.sqrt(var)
    assert res.p_wilcoxon == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-12)
    ref = stats.wilcoxon(dd, zero_method="zsplit").pvalue
    assert res.p_wilcoxon == pytest.approx(ref, rel=1e-12)
    # The zeros are kept: "wilcox" (dropping them) is a different test on 11 users.
    assert res.p_wilcoxon != pytest.approx(stats.wilcoxon(dd, zero_method="wilcox").pvalue)


def test_small_exact_case_by_hand() -> None:
    # d = [1, 2, 3, 4, 5], mean 3. Of the 32 sign vectors only all-plus (mean 3) and
    # all-minus (mean -3) reach |mean| >= 3 (flipping any one value lowers |sum| below 15):
    # p_perm = 2/32. Wilcoxon (no ties, exact): W+ = 15 is the maximum, reached by one of the
    # 32 sign patterns in each tail: p = 2/32 as well.
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    res = paired_tests(x, np.zeros(5))
    assert res.p_perm == pytest.approx(2 / 32, abs=1e-15)
    assert res.p_wilcoxon == pytest.approx(2 / 32, abs=1e-12)
    assert res.delta == 3.0
    assert res.d_z == pytest.approx(3.0 / np.sqrt(2.5), rel=1e-12)


def test_exact_permutation_matches_python_enumeration() -> None:
    # Mixed signs, a tie in |d| and a zero. sum(d) = 0.5; a sign vector is as extreme when
    # |Σ s·d| >= 0.5. The magnitudes 0.3, 0.1, 0.2, 0.1 total 0.7 and |Σ s·d| = 0.7 - 2·(the
    # magnitudes on the minority side), so that side may hold nothing (2 vectors: all on one
    # side) or exactly one of the two 0.1 (2 choices × 2 sides = 4 vectors): 6 of 16. The zero's
    # sign is free (×2): 12 of 32.
    d = [0.3, -0.1, 0.2, 0.0, 0.1]
    expected = brute_force_perm_p(d)
    assert expected == pytest.approx(12 / 32)
    res = paired_tests(np.array(d), np.zeros(5))
    assert res.p_perm == pytest.approx(expected, abs=1e-15)


def test_permutation_exact_at_16_monte_carlo_at_17() -> None:
    rng = np.random.default_rng(11)
    d17 = np.round(rng.normal(0.05, 0.5, size=17), 3)
    d16 = d17[:16]
    assert EXACT_MAX_N == 16

    def exact_numpy(d: np.ndarray) -> float:
        n = d.size
        codes = np.arange(2**n)[:, None]
        signs = 1.0 - 2.0 * ((codes >> np.arange(n)) & 1)
        return float(np.mean(np.abs(signs @ d) / n >= abs(d.sum()) / n - 1e-12))

    res16 = paired_tests(d16, np.zeros(16))
    assert res16.p_perm == pytest.approx(exact_numpy(d16), abs=1e-15)
    exact17 = exact_numpy(d17)
    assert 0.05 < exact17 < 0.95  # a p-value where Monte Carlo error is visible
    res17 = paired_tests(d17, np.zeros(17), n_perm=20000, seed=5)
    assert res17.p_perm == pytest.approx(exact17, abs=0.01)
    assert res17.p_perm != exact17  # really Monte Carlo: (1 + count) / 20001
    assert paired_tests(d17, np.zeros(17), n_perm=20000, seed=5).p_perm == res17.p_perm
    assert paired_tests(d17, np.zeros(17), n_perm=20000, seed=6).p_perm != res17.p_perm


def test_monte_carlo_large_n_and_floor() -> None:
    # A clear effect on 3000 users: no sign vector reaches it, p = 1 / (1 + n_perm).
    rng = np.random.default_rng(0)
    x = rng.random(3000)
    res = paired_tests(x + 0.2, x, n_perm=2000)
    assert res.p_perm == pytest.approx(1 / 2001)
    # No effect at all: every sign vector is as extreme, p = 1.
    assert paired_tests(x, x.copy(), n_perm=500).p_perm == 1.0


def test_edge_cases() -> None:
    zeros = paired_tests(np.array([0.1, 0.2, 0.3]), np.array([0.1, 0.2, 0.3]))
    assert zeros == PairedResult(3, 0.0, 0.0, 1.0, 1.0, 1.0)
    one = paired_tests(np.array([0.5]), np.array([0.2]))
    assert (one.n, one.d_z, one.p_t, one.p_wilcoxon, one.p_perm) == (1, 0.0, 1.0, 1.0, 1.0)
    assert one.delta == pytest.approx(0.3)
    empty = paired_tests(np.array([]), np.array([]))
    assert empty.n == 0 and np.isnan(empty.delta) and empty.p_t == 1.0
    # A constant non-zero difference (0.5 exactly): sd = 0 so d_z = 0, while t is infinite.
    constant = paired_tests(np.array([1.5, 2.5, 3.5]), np.array([1.0, 2.0, 3.0]))
    assert constant.d_z == 0.0 and constant.p_t == 0.0 and constant.delta == 0.5
    with pytest.raises(ValueError, match="equal length"):
        paired_tests(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        paired_tests(np.array([0.1, np.nan]), np.zeros(2))


# --- Holm ----------------------------------------------------------------------------------


def test_holm_hand_worked() -> None:
    # p = [0.01, 0.04, 0.03, 0.005], m = 4. Sorted ascending: 0.005, 0.01, 0.03, 0.04.
    # Multiply by m - j + 1 = 4, 3, 2, 1: 0.020, 0.030, 0.060, 0.040.
    # Running maximum (step-down monotonicity): 0.020, 0.030, 0.060, 0.060; cap at 1: same.
    # Back to input order: 0.01 -> 0.03, 0.04 -> 0.06, 0.03 -> 0.06, 0.005 -> 0.02.
    assert holm_table([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_table((0.5, 0.6)) == pytest.approx([1.0, 1.0])
    assert holm_table([]) == []


# --- properties ----------------------------------------------------------------------------

metric_values = st.sampled_from([0.0, 0.0, 0.0, 0.1, 0.25, 1 / 3, 0.5, 1.0])


@settings(max_examples=40, deadline=None)
@given(
    pairs=st.lists(st.tuples(metric_values, metric_values), min_size=0, max_size=30),
    seed=st.integers(0, 3),
)
def test_pvalues_in_range_and_swap_symmetric(pairs: list[tuple[float, float]], seed: int) -> None:
    x = np.array([p[0] for p in pairs], dtype=np.float64)
    y = np.array([p[1] for p in pairs], dtype=np.float64)
    ab = paired_tests(x, y, n_perm=300, seed=seed)
    ba = paired_tests(y, x, n_perm=300, seed=seed)
    for res in (ab, ba):
        for p in (res.p_t, res.p_wilcoxon, res.p_perm):
            assert 0.0 <= p <= 1.0
    assert ab.n == ba.n == len(pairs)
    if ab.n:
        assert ba.delta == -ab.delta
        assert ba.d_z == -ab.d_z
    assert ba.p_t == pytest.approx(ab.p_t, rel=1e-9)
    assert ba.p_wilcoxon == pytest.approx(ab.p_wilcoxon, rel=1e-9)
    assert ba.p_perm == ab.p_perm


@settings(max_examples=25, deadline=None)
@given(values=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=8))
def test_ci_contains_mean_and_widens_with_level(values: list[float]) -> None:
    mean, lo90, hi90 = mean_ci(values, 0.90)
    _, lo99, hi99 = mean_ci(values, 0.99)
    assert lo99 <= lo90 <= mean <= hi90 <= hi99
