"""Deterministic top-k: exact set and order under heavy ties, against a stable full sort."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.eval.topk import topk


def reference_topk(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Stable full sort of each row: (score desc, index asc), first k."""
    values, indices = torch.sort(scores, dim=1, descending=True, stable=True)
    return values[:, :k], indices[:, :k]


def python_topk(row: list[float], k: int) -> list[int]:
    return sorted(range(len(row)), key=lambda i: (-row[i], i))[:k]


def test_ties_straddling_the_cut() -> None:
    # Row 0: items 1, 3, 4, 6 tie at 5.0 and only 2 places are left after item 2 (7.0)
    #   -> top-3 = [2, 1, 3]
    # Row 1: every score equal -> the lowest indices, in order
    # Row 2: distinct scores -> plain order
    # Row 3: masked (-inf) items fill the list after the finite ones, by index
    inf = float("inf")
    scores = torch.tensor(
        [
            [0.0, 5.0, 7.0, 5.0, 5.0, 1.0, 5.0],
            [2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0],
            [0.1, 0.7, 0.3, 0.9, 0.2, 0.5, 0.4],
            [-inf, 3.0, -inf, -inf, 1.0, -inf, -inf],
        ]
    )
    values, indices = topk(scores, 3)
    assert indices.tolist() == [[2, 1, 3], [0, 1, 2], [3, 1, 5], [1, 4, 0]]
    assert values[0].tolist() == [7.0, 5.0, 5.0]
    assert values[3].tolist() == [3.0, 1.0, -inf]


def test_k_equal_and_above_n() -> None:
    scores = torch.tensor([[1.0, 3.0, 3.0, 0.0]])
    assert topk(scores, 4)[1].tolist() == [[1, 2, 0, 3]]
    assert topk(scores, 10)[1].tolist() == [[1, 2, 0, 3]]
    values, indices = topk(scores, 0)
    assert values.shape == (1, 0) and indices.shape == (1, 0)


def test_most_popular_like_rows() -> None:
    # Popularity-like scores: few distinct values, many ties, per-row masks.
    gen = torch.Generator().manual_seed(0)
    pop = torch.randint(0, 6, (500,), generator=gen).to(torch.float32)
    scores = pop.expand(64, -1).clone()
    mask = torch.rand(64, 500, generator=gen) < 0.3
    scores[mask] = -torch.inf
    for k in (1, 5, 20, 100, 499):
        values, indices = topk(scores, k)
        ref_values, ref_indices = reference_topk(scores, k)
        assert torch.equal(indices, ref_indices)
        assert torch.equal(values, ref_values)


@st.composite
def score_rows(draw: st.DrawFn) -> tuple[list[list[float]], int]:
    n = draw(st.integers(1, 12))
    values = st.sampled_from([-float("inf"), -1.0, 0.0, 0.5, 1.0, 2.0])
    rows = draw(st.lists(st.lists(values, min_size=n, max_size=n), min_size=1, max_size=5))
    k = draw(st.integers(1, n + 2))
    return rows, k


@settings(derandomize=True, max_examples=300, deadline=None)
@given(score_rows())
def test_matches_python_sorted(data: tuple[list[list[float]], int]) -> None:
    rows, k = data
    scores = torch.tensor(rows, dtype=torch.float32)
    values, indices = topk(scores, k)
    for r, row in enumerate(rows):
        expected = python_topk(row, k)
        assert indices[r].tolist() == expected
        assert values[r].tolist() == [row[i] for i in expected]


def test_large_random_with_ties_matches_stable_sort() -> None:
    gen = torch.Generator().manual_seed(1)
    scores = torch.randint(0, 50, (300, 2000), generator=gen).to(torch.float32) / 7
    for k in (20, 64):
        assert torch.equal(topk(scores, k)[1], reference_topk(scores, k)[1])
    # float64 input is supported too.
    assert torch.equal(topk(scores.double(), 20)[1], reference_topk(scores, 20)[1])
