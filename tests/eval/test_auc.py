"""AUC, GAUC, log loss and DeLong: hand-computed cases, brute-force references from the
definitions (ψ(x, y) = 1, 1/2, 0 over all pairs), sklearn, and input errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.errors import RecsysError
from recsys.eval.auc import (
    DeLong,
    auc,
    delong_test,
    group_auc,
    log_loss,
    log_loss_from_logits,
)

try:  # scikit-learn is an extra reference, not a dependency: its checks skip without it.
    import sklearn.metrics as skm
except ImportError:  # pragma: no cover
    skm = None

needs_sklearn = pytest.mark.skipif(skm is None, reason="scikit-learn not installed")

# --------------------------------------------------------------------------------------------
# Brute-force references (O(m n), straight from the definitions)
# --------------------------------------------------------------------------------------------


def _psi(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(m, n)`` matrix ψ(X_i, Y_j) = 1 if X_i > Y_j, 1/2 if equal, 0 otherwise."""
    d = x[:, None] - y[None, :]
    return (d > 0).astype(np.float64) + 0.5 * (d == 0)


def _auc_pairs(scores: np.ndarray, labels: np.ndarray) -> float:
    x, y = scores[labels == 1], scores[labels == 0]
    if x.size == 0 or y.size == 0:
        return math.nan
    return float(_psi(x, y).mean())


def _delong_pairs(a: np.ndarray, b: np.ndarray, labels: np.ndarray) -> tuple[float, ...]:
    """(auc_a, auc_b, diff, se, z, p) from DeLong's definitions, with the full 2x2 covariance."""
    pos = labels == 1
    m, n = int(pos.sum()), int((~pos).sum())
    v10, v01, aucs = [], [], []
    for s in (a, b):
        psi = _psi(s[pos], s[~pos])
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
        aucs.append(psi.mean())
    s_mat = np.cov(np.vstack(v10)) / m + np.cov(np.vstack(v01)) / n
    contrast = np.array([1.0, -1.0])
    var = float(contrast @ s_mat @ contrast)
    se = math.sqrt(max(var, 0.0))
    diff = aucs[0] - aucs[1]
    z = diff / se
    p = 2.0 * (1.0 - 0.5 * (1.0 + math.erf(abs(z) / math.sqrt(2.0))))
    return aucs[0], aucs[1], diff, se, z, p


def _data(data: st.DataObject, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores from a few values, so ties are frequent (within and across classes)."""
    scores = np.array(data.draw(st.lists(st.integers(0, 4), min_size=size, max_size=size)), float)
    labels = np.array(data.draw(st.lists(st.integers(0, 1), min_size=size, max_size=size)))
    return scores / 2.0, labels


# --------------------------------------------------------------------------------------------
# auc
# --------------------------------------------------------------------------------------------


def test_auc_hand_computed_with_ties() -> None:
    # positives 0.9, 0.5; negatives 0.5, 0.1. Pairs: (0.9>0.5)=1, (0.9>0.1)=1,
    # (0.5=0.5)=1/2, (0.5>0.1)=1 -> 3.5 / 4.
    scores = np.array([0.9, 0.5, 0.5, 0.1])
    labels = np.array([1, 1, 0, 0])
    assert auc(scores, labels) == pytest.approx(0.875, abs=1e-15)
    assert auc(-scores, labels) == pytest.approx(0.125, abs=1e-15)
    assert auc(np.zeros(4), labels) == 0.5


def test_auc_nan_when_class_absent() -> None:
    assert math.isnan(auc([0.1, 0.2], [1, 1]))
    assert math.isnan(auc([0.1, 0.2], [0, 0]))
    assert math.isnan(auc([], []))


def test_auc_accepts_torch_and_bool_labels() -> None:
    scores = torch.tensor([0.3, 0.8, 0.8, 0.1], dtype=torch.float32, requires_grad=True)
    labels = torch.tensor([False, True, False, True])
    expected = _auc_pairs(scores.detach().numpy().astype(float), labels.numpy().astype(int))
    assert auc(scores, labels) == pytest.approx(expected, abs=1e-12)


@needs_sklearn
@settings(max_examples=80, deadline=None)
@given(st.data())
def test_auc_matches_sklearn_and_pairs(data: st.DataObject) -> None:
    size = data.draw(st.integers(2, 60))
    scores, labels = _data(data, size)
    if labels.min() == labels.max():
        assert math.isnan(auc(scores, labels))
        return
    got = auc(scores, labels)
    assert got == pytest.approx(skm.roc_auc_score(labels, scores), abs=1e-9)
    assert got == pytest.approx(_auc_pairs(scores, labels), abs=1e-9)


@needs_sklearn
def test_auc_large_random_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 50, size=5000).astype(float)  # heavy ties
    labels = rng.integers(0, 2, size=5000)
    assert auc(scores, labels) == pytest.approx(skm.roc_auc_score(labels, scores), abs=1e-9)


# --------------------------------------------------------------------------------------------
# group_auc
# --------------------------------------------------------------------------------------------


def test_group_auc_hand_computed() -> None:
    # Group 7: pos 0.9, 0.5 vs neg 0.5, 0.1 -> 3.5/4 = 0.875, 4 samples.
    # Group 3: pos 0.2 vs neg 0.4, 0.2 -> (0 + 1/2)/2 = 0.25, 3 samples.
    # Group 5: only positives -> excluded.
    scores = [0.5, 0.9, 0.2, 0.1, 0.4, 0.5, 0.2, 0.3]
    labels = [0, 1, 1, 0, 0, 1, 0, 1]
    groups = [7, 7, 3, 7, 3, 7, 3, 5]
    res = group_auc(scores, labels, groups)
    np.testing.assert_array_equal(res.groups, [3, 7])
    np.testing.assert_allclose(res.aucs, [0.25, 0.875], atol=1e-15)
    np.testing.assert_array_equal(res.weights, [3.0, 4.0])
    assert res.value == pytest.approx((3 * 0.25 + 4 * 0.875) / 7, abs=1e-15)
    assert (res.n_groups_total, res.n_groups_used) == (3, 2)
    with pytest.raises(ValueError):
        res.aucs[0] = 1.0  # read-only


def test_group_auc_string_ids_and_no_usable_group() -> None:
    res = group_auc([0.1, 0.9, 0.4], [0, 1, 1], ["b", "b", "a"])
    np.testing.assert_array_equal(res.groups, ["b"])
    assert res.value == 1.0
    assert (res.n_groups_total, res.n_groups_used) == (2, 1)

    none = group_auc([0.1, 0.2], [1, 0], ["u1", "u2"])
    assert math.isnan(none.value)
    assert none.groups.size == 0 and none.n_groups_total == 2 and none.n_groups_used == 0

    empty = group_auc([], [], [])
    assert math.isnan(empty.value) and empty.n_groups_total == 0


def _gauc_loop(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> tuple:
    ids, aucs, weights = [], [], []
    for g in np.unique(groups):
        sel = groups == g
        if labels[sel].min() == labels[sel].max():
            continue
        ids.append(g)
        if skm is not None:
            aucs.append(skm.roc_auc_score(labels[sel], scores[sel]))
        else:  # pragma: no cover
            aucs.append(_auc_pairs(scores[sel], labels[sel]))
        weights.append(sel.sum())
    value = float(np.dot(weights, aucs) / np.sum(weights)) if ids else math.nan
    return np.array(ids), np.array(aucs), np.array(weights, float), value


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_group_auc_matches_per_group_sklearn_loop(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, 80))
    scores, labels = _data(data, size)
    groups = np.array(data.draw(st.lists(st.integers(0, 6), min_size=size, max_size=size)))
    res = group_auc(scores, labels, groups)
    ids, aucs, weights, value = _gauc_loop(scores, labels, groups)
    np.testing.assert_array_equal(res.groups, ids)
    np.testing.assert_allclose(res.aucs, aucs, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(res.weights, weights)
    assert res.n_groups_total == np.unique(groups).size
    assert res.n_groups_used == ids.size
    if ids.size:
        assert res.value == pytest.approx(value, abs=1e-9)
        # Each group's AUC also equals the pairwise definition.
        for g, a in zip(res.groups, res.aucs, strict=True):
            sel = groups == g
            assert a == pytest.approx(_auc_pairs(scores[sel], labels[sel]), abs=1e-9)
    else:
        assert math.isnan(res.value)
    # Permuting the samples changes nothing.
    perm = np.random.default_rng(size).permutation(size)
    again = group_auc(scores[perm], labels[perm], groups[perm])
    np.testing.assert_allclose(again.aucs, res.aucs, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------------
# log loss
# --------------------------------------------------------------------------------------------


@needs_sklearn
def test_log_loss_direct_formula_and_sklearn() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(0.01, 0.99, size=200)
    y = rng.integers(0, 2, size=200)
    direct = float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))
    assert log_loss(p, y) == pytest.approx(direct, rel=1e-12)
    assert log_loss(p, y) == pytest.approx(skm.log_loss(y, p, labels=[0, 1]), rel=1e-12)
    # Hand-computed: -(log 0.8 + log(1 - 0.4)) / 2.
    assert log_loss([0.8, 0.4], [1, 0]) == pytest.approx(
        -(math.log(0.8) + math.log(0.6)) / 2, rel=1e-14
    )


def test_log_loss_clips() -> None:
    assert log_loss([0.0], [1], eps=1e-4) == pytest.approx(-math.log(1e-4), rel=1e-12)
    assert log_loss([1.0], [0], eps=1e-4) == pytest.approx(-math.log(1e-4), rel=1e-9)
    assert log_loss([1.0, 0.0], [1, 0]) == pytest.approx(-math.log(1 - 1e-7), rel=1e-9)


def test_log_loss_from_logits() -> None:
    rng = np.random.default_rng(2)
    z = rng.normal(0, 3, size=300)
    y = rng.integers(0, 2, size=300)
    p = 1.0 / (1.0 + np.exp(-z))
    direct = float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))
    assert log_loss_from_logits(z, y) == pytest.approx(direct, rel=1e-10)
    assert log_loss_from_logits(torch.from_numpy(z), torch.from_numpy(y)) == pytest.approx(
        direct, rel=1e-10
    )
    # Extreme logits: stable, no clipping.
    assert log_loss_from_logits([1000.0], [0]) == pytest.approx(1000.0, rel=1e-15)
    assert log_loss_from_logits([-1000.0], [1]) == pytest.approx(1000.0, rel=1e-15)
    assert log_loss_from_logits([1000.0, -1000.0], [1, 0]) == 0.0
    assert log_loss_from_logits([math.inf, -math.inf], [1, 0]) == 0.0
    assert log_loss_from_logits([50.0], [1]) == pytest.approx(math.exp(-50.0), rel=1e-12)


# --------------------------------------------------------------------------------------------
# DeLong
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(12))
def test_delong_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    size = int(rng.integers(8, 60))
    labels = rng.integers(0, 2, size=size)
    labels[:2], labels[2:4] = 1, 0
    a = rng.integers(0, 6, size=size) + 2.0 * labels  # informative, tied
    b = rng.integers(0, 4, size=size) + labels * rng.integers(0, 2, size=size)
    got = delong_test(a, b, labels)
    ref = _delong_pairs(a.astype(float), b.astype(float), labels)
    assert isinstance(got, DeLong)
    for name, value, expected in zip(
        ("auc_a", "auc_b", "diff", "se", "z", "p_value"),
        (got.auc_a, got.auc_b, got.diff, got.se, got.z, got.p_value),
        ref,
        strict=True,
    ):
        assert value == pytest.approx(expected, rel=1e-9, abs=1e-12), name
    if skm is not None:
        assert got.auc_a == pytest.approx(skm.roc_auc_score(labels, a), abs=1e-12)


def test_delong_swap_is_antisymmetric() -> None:
    rng = np.random.default_rng(5)
    labels = np.r_[np.ones(20, int), np.zeros(25, int)]
    a = rng.normal(size=45) + labels
    b = rng.normal(size=45) + 0.3 * labels
    ab, ba = delong_test(a, b, labels), delong_test(b, a, labels)
    assert ab.diff == -ba.diff and ab.z == pytest.approx(-ba.z, rel=1e-12)
    assert ab.p_value == pytest.approx(ba.p_value, rel=1e-12)
    assert 0.0 < ab.p_value < 1.0


def test_delong_identical_scores() -> None:
    scores = np.array([0.3, 0.3, 0.9, 0.1, 0.5, 0.5])
    labels = np.array([1, 0, 1, 0, 0, 1])
    res = delong_test(scores, scores.copy(), labels)
    assert (res.diff, res.se, res.z, res.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert res.auc_a == res.auc_b == auc(scores, labels)


def test_delong_zero_se_nonzero_diff() -> None:
    labels = np.array([1, 1, 0, 0, 0])
    perfect = np.array([5.0, 4.0, 1.0, 2.0, 3.0])
    constant = np.zeros(5)
    res = delong_test(perfect, constant, labels)
    assert (res.auc_a, res.auc_b, res.diff, res.se) == (1.0, 0.5, 0.5, 0.0)
    assert res.z == math.inf and res.p_value == 0.0


# --------------------------------------------------------------------------------------------
# Input errors
# --------------------------------------------------------------------------------------------


def test_errors_name_argument_and_count() -> None:
    with pytest.raises(RecsysError, match=r"scores has 3, labels has 2"):
        auc([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(RecsysError, match=r"labels must be 0/1, found 2 other"):
        auc([0.1, 0.2, 0.3], [0, 2, -1])
    with pytest.raises(RecsysError, match=r"scores contains 2 NaN value\(s\) out of 3"):
        auc([math.nan, 0.2, math.nan], [0, 1, 1])
    with pytest.raises(RecsysError, match=r"labels contains 1 NaN"):
        group_auc([0.1, 0.2], [0.0, math.nan], [1, 1])
    with pytest.raises(RecsysError, match=r"groups has 1"):
        group_auc([0.1, 0.2], [0, 1], [1])
    with pytest.raises(RecsysError, match=r"groups contains 1 NaN"):
        group_auc([0.1, 0.2], [0, 1], [1.0, math.nan])
    with pytest.raises(RecsysError, match=r"scores_b contains 1 NaN"):
        delong_test([0.1, 0.2, 0.3, 0.4], [0.1, math.nan, 0.3, 0.4], [0, 1, 0, 1])
    with pytest.raises(RecsysError, match=r"scores_b has 3"):
        delong_test([0.1, 0.2, 0.3, 0.4], [0.1, 0.3, 0.4], [0, 1, 0, 1])
    with pytest.raises(RecsysError, match=r"at least 2 positives and 2 negatives, got 1 and 3"):
        delong_test([0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4], [0, 1, 0, 0])
    with pytest.raises(RecsysError, match=r"probs must lie in \[0, 1\], found 1"):
        log_loss([0.5, 1.5], [0, 1])
    with pytest.raises(RecsysError, match=r"logits contains 1 NaN"):
        log_loss_from_logits([math.nan], [1])
    with pytest.raises(RecsysError, match=r"eps"):
        log_loss([0.5], [1], eps=0.0)
    with pytest.raises(RecsysError, match=r"at least one sample"):
        log_loss([], [])
    with pytest.raises(RecsysError, match=r"must be 1-D"):
        auc(np.zeros((3, 1)), [0, 1, 1])
