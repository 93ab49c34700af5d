"""Ranking metrics: hand-computed cases, both IDCG conventions, and properties."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.eval.metrics import (
    METRIC_NAMES,
    compute_metrics,
    hit_at_k,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)

# Discounts 1/log2(r+1): r=1 -> 1, r=2 -> 1/log2(3) = 0.6309297535714575, r=3 -> 1/log2(4) = 0.5,
# r=4 -> 1/log2(5) = 0.43067655807339306, r=5 -> 1/log2(6) = 0.38685280723454163,
# r=6 -> 1/log2(7) = 0.3562071871080222, r=7 -> 1/log2(8) = 1/3.
D1, D2, D3, D4, D5, D6, D7 = (
    1.0,
    0.6309297535714575,
    0.5,
    0.43067655807339306,
    0.38685280723454163,
    0.3562071871080222,
    1.0 / 3.0,
)

# Four users, ranked lists of length K = 5.
#   A: hits at ranks 1 and 3, |test| = 3
#   B: hit at rank 4,         |test| = 1
#   C: no hit,                |test| = 0
#   D: hits at all 5 ranks,   |test| = 7 (more relevant items than K)
HITS = torch.tensor(
    [
        [1, 0, 1, 0, 0],
        [0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0],
        [1, 1, 1, 1, 1],
    ],
    dtype=torch.bool,
)
N_REL = torch.tensor([3, 1, 0, 7])


def close(actual: torch.Tensor, expected: list[float]) -> None:
    assert actual.dtype == torch.float64
    assert actual.tolist() == pytest.approx(expected, abs=1e-12)


def test_recall_hand_computed() -> None:
    # k=1: A 1/3, B 0, C 0 (no relevant item), D 1/7
    close(recall_at_k(HITS, N_REL, 1), [1 / 3, 0.0, 0.0, 1 / 7])
    # k=3: A 2/3, B 0, D 3/7
    close(recall_at_k(HITS, N_REL, 3), [2 / 3, 0.0, 0.0, 3 / 7])
    # k=5: A 2/3, B 1/1, D 5/7
    close(recall_at_k(HITS, N_REL, 5), [2 / 3, 1.0, 0.0, 5 / 7])


def test_precision_hand_computed() -> None:
    # k=3: A 2/3, B 0/3, D 3/3 ; k=5: A 2/5, B 1/5, D 5/5
    close(precision_at_k(HITS, N_REL, 3), [2 / 3, 0.0, 0.0, 1.0])
    close(precision_at_k(HITS, N_REL, 5), [0.4, 0.2, 0.0, 1.0])


def test_hit_hand_computed() -> None:
    # k=3: B's only hit is at rank 4 -> 0 ; k=5: B -> 1
    close(hit_at_k(HITS, N_REL, 3), [1.0, 0.0, 0.0, 1.0])
    close(hit_at_k(HITS, N_REL, 5), [1.0, 1.0, 0.0, 1.0])


def test_mrr_hand_computed() -> None:
    # first hits: A rank 1, B rank 4, C none, D rank 1
    close(mrr_at_k(HITS, N_REL, 3), [1.0, 0.0, 0.0, 1.0])
    close(mrr_at_k(HITS, N_REL, 5), [1.0, 0.25, 0.0, 1.0])


def test_map_hand_computed() -> None:
    # A, k=3: P@1·1 + P@3·1 = 1 + 2/3 = 5/3, divided by min(3, 3) = 3 -> 5/9
    # A, k=1: P@1 = 1, divided by min(3, 1) = 1 -> 1
    # B, k=5: P@4 = 1/4, divided by min(1, 5) = 1 -> 1/4
    # D, k=5: P@r = 1 for r=1..5 -> 5, divided by min(7, 5) = 5 -> 1
    # D, k=3: 3 / min(7, 3) = 1
    close(map_at_k(HITS, N_REL, 1), [1.0, 0.0, 0.0, 1.0])
    close(map_at_k(HITS, N_REL, 3), [5 / 9, 0.0, 0.0, 1.0])
    close(map_at_k(HITS, N_REL, 5), [5 / 9, 0.25, 0.0, 1.0])


def test_ndcg_truncated_hand_computed() -> None:
    # A, k=3: DCG = D1 + D3 = 1.5 ; IDCG over min(3,3) = 3 positions = D1 + D2 + D3
    idcg_a = D1 + D2 + D3  # 2.1309297535714575
    # A, k=1: DCG = 1, IDCG over min(3,1) = 1 position = 1 -> 1
    # B, k=5: DCG = D4 ; IDCG over min(1,5) = 1 position = 1 -> D4
    # D, k=5: DCG = D1..D5 ; IDCG over min(7,5) = 5 positions -> 1
    close(ndcg_at_k(HITS, N_REL, 1), [1.0, 0.0, 0.0, 1.0])
    close(ndcg_at_k(HITS, N_REL, 3), [1.5 / idcg_a, 0.0, 0.0, 1.0])
    close(ndcg_at_k(HITS, N_REL, 5), [1.5 / idcg_a, D4, 0.0, 1.0])
    assert 1.5 / idcg_a == pytest.approx(0.7039180890341347, abs=1e-12)


def test_ndcg_full_idcg_hand_computed() -> None:
    # "full": IDCG over ALL |test_u| positions, DCG still truncated at k (PLD).
    idcg_a = D1 + D2 + D3  # |test_A| = 3
    idcg_d = D1 + D2 + D3 + D4 + D5 + D6 + D7  # |test_D| = 7
    # A, k=1: DCG = 1 -> 1 / 2.1309... = 0.4692801...
    close(ndcg_at_k(HITS, N_REL, 1, idcg="full"), [1 / idcg_a, 0.0, 0.0, 1 / idcg_d])
    # D, k=5: perfect list, still < 1: (D1+..+D5) / (D1+..+D7)
    dcg_d5 = D1 + D2 + D3 + D4 + D5
    close(
        ndcg_at_k(HITS, N_REL, 5, idcg="full"),
        [1.5 / idcg_a, D4, 0.0, dcg_d5 / idcg_d],
    )
    # 2.9484591188793923 / 3.637999639320748 = 0.8104616303452685
    assert dcg_d5 / idcg_d == pytest.approx(0.8104616303452685, abs=1e-12)


def test_discount_constants() -> None:
    for r, d in enumerate([D1, D2, D3, D4, D5, D6, D7], start=1):
        assert d == pytest.approx(1 / math.log2(r + 1), abs=1e-15)


def test_compute_metrics_keys_and_values() -> None:
    out = compute_metrics(HITS, N_REL, ks=(3, 5), metrics=METRIC_NAMES)
    assert list(out) == [f"{m}@{k}" for m in METRIC_NAMES for k in (3, 5)]
    close(out["recall@5"], [2 / 3, 1.0, 0.0, 5 / 7])
    close(out["mrr@5"], [1.0, 0.25, 0.0, 1.0])
    full = compute_metrics(HITS, N_REL, ks=(5,), metrics=("ndcg",), idcg="full")
    assert full["ndcg@5"][3] < 1.0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="cut-off"):
        recall_at_k(HITS, N_REL, 6)
    with pytest.raises(ValueError, match="unknown metric"):
        compute_metrics(HITS, N_REL, ks=(1,), metrics=("auc",))
    with pytest.raises(ValueError, match="idcg"):
        ndcg_at_k(HITS, N_REL, 1, idcg="half")  # type: ignore[arg-type]


# ---------------------------------------------------------------- properties


@st.composite
def hit_matrices(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor]:
    """Consistent (hits, n_rel): a user never has more hits than relevant items."""
    k = draw(st.integers(1, 8))
    rows = draw(st.lists(st.lists(st.booleans(), min_size=k, max_size=k), min_size=1, max_size=6))
    hits = torch.tensor(rows, dtype=torch.bool)
    extra = draw(st.lists(st.integers(0, 10), min_size=len(rows), max_size=len(rows)))
    n_rel = hits.sum(dim=1) + torch.tensor(extra)
    return hits, n_rel


@settings(derandomize=True, max_examples=200, deadline=None)
@given(hit_matrices())
def test_values_in_unit_interval_and_recall_monotone(
    data: tuple[torch.Tensor, torch.Tensor],
) -> None:
    hits, n_rel = data
    k_max = hits.shape[1]
    for idcg in ("truncated", "full"):
        out = compute_metrics(hits, n_rel, ks=range(1, k_max + 1), idcg=idcg)  # type: ignore[arg-type]
        for value in out.values():
            assert bool(((value >= 0) & (value <= 1 + 1e-12)).all())
    recalls = torch.stack([recall_at_k(hits, n_rel, k) for k in range(1, k_max + 1)])
    assert bool((recalls[1:] >= recalls[:-1]).all())
    # Full IDCG is never smaller than truncated IDCG, so NDCG(full) <= NDCG(truncated).
    for k in range(1, k_max + 1):
        assert bool((ndcg_at_k(hits, n_rel, k, "full") <= ndcg_at_k(hits, n_rel, k) + 1e-12).all())


@settings(derandomize=True, max_examples=100, deadline=None)
@given(st.integers(1, 10), st.integers(1, 12))
def test_perfect_ranking(n_rel_value: int, k: int) -> None:
    # All relevant items ranked first.
    hits = (torch.arange(k) < n_rel_value).unsqueeze(0)
    n_rel = torch.tensor([n_rel_value])
    out = compute_metrics(hits, n_rel, ks=(k,))
    assert out[f"ndcg@{k}"].item() == pytest.approx(1.0, abs=1e-12)
    assert out[f"hit@{k}"].item() == 1.0
    assert out[f"mrr@{k}"].item() == 1.0
    assert out[f"map@{k}"].item() == pytest.approx(1.0, abs=1e-12)
    if n_rel_value <= k:
        assert out[f"recall@{k}"].item() == 1.0
    if n_rel_value >= k:
        assert out[f"precision@{k}"].item() == 1.0
    full = ndcg_at_k(hits, n_rel, k, "full").item()
    if n_rel_value <= k:
        assert full == pytest.approx(1.0, abs=1e-12)
    else:
        assert full < 1.0
