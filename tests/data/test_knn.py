"""Item-item kNN graphs against brute-force references."""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F

from recsys.data.knn import combine_adjacency, knn_adjacency, knn_indices, modality_graph
from recsys.errors import ConfigError
from recsys.types import ItemFeatures

CPU = torch.device("cpu")


def brute_knn(x: torch.Tensor, k: int, exclude: torch.Tensor | None = None) -> list[set[int]]:
    """Neighbour sets from the dense float64 cosine matrix (self forced first)."""
    xn = F.normalize(x.double(), dim=1)
    sim = xn @ xn.T
    if exclude is not None:
        sim[:, exclude] = float("-inf")
    sim.fill_diagonal_(float("inf"))
    idx = torch.topk(sim, k, dim=1).indices
    out = [set(r.tolist()) for r in idx]
    if exclude is not None:
        for i in torch.nonzero(exclude).squeeze(1).tolist():
            out[i] = {i}
    return out


def dense_adjacency(sets: list[set[int]], n: int) -> torch.Tensor:
    """``D^-1/2 A D^-1/2`` with row degrees, built the slow way."""
    a = torch.zeros(n, n, dtype=torch.float64)
    for i, s in enumerate(sets):
        for j in s:
            a[i, j] = 1.0
    deg = a.sum(1)
    return a / deg.sqrt().unsqueeze(1) / deg.sqrt().unsqueeze(0)


@pytest.fixture
def feats() -> torch.Tensor:
    return torch.randn(50, 8, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("chunk", [1, 3, 7, 49, 50, 1000])
def test_knn_matches_brute_force_for_every_chunk_size(feats: torch.Tensor, chunk: int) -> None:
    idx = knn_indices(feats, 5, chunk_rows=chunk, device=CPU)
    assert idx.shape == (50, 5) and idx.dtype == torch.int64
    assert [set(r.tolist()) for r in idx] == brute_knn(feats, 5)
    assert torch.equal(idx[:, 0], torch.arange(50))  # self is top-1
    # Sorted by decreasing cosine.
    xn = F.normalize(feats, dim=1)
    sims = (xn.unsqueeze(1) * xn[idx]).sum(-1)
    assert bool((sims[:, :-1] >= sims[:, 1:] - 1e-6).all())


@pytest.mark.parametrize("max_bytes", [1, 4 * 50 * 4, 10**9])
def test_byte_budget_sets_chunks_without_changing_result(
    feats: torch.Tensor, max_bytes: int
) -> None:
    ref = knn_indices(feats, 5, chunk_rows=50, device=CPU)
    assert torch.equal(knn_indices(feats, 5, max_bytes=max_bytes, device=CPU), ref)


def test_self_first_with_zero_rows_and_duplicates() -> None:
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    idx = knn_indices(x, 2, chunk_rows=2, device=CPU)
    assert torch.equal(idx[:, 0], torch.arange(5))
    assert idx[0, 1] == 1 and idx[1, 1] == 0  # the duplicate is the second neighbour


def test_k_is_clamped_and_validated(feats: torch.Tensor) -> None:
    assert knn_indices(feats[:4], 10, device=CPU).shape == (4, 4)
    with pytest.raises(ConfigError, match="k must be >= 1"):
        knn_indices(feats, 0)
    with pytest.raises(ValueError, match="exclude"):
        knn_indices(feats, 3, exclude=torch.zeros(3, dtype=torch.bool))
    assert knn_indices(torch.zeros(0, 4), 3, device=CPU).shape == (0, 1)


def test_exclusion(feats: torch.Tensor) -> None:
    exclude = torch.zeros(50, dtype=torch.bool)
    exclude[[3, 10, 11, 40]] = True
    idx = knn_indices(feats, 6, exclude=exclude, chunk_rows=7, device=CPU)
    assert [set(r.tolist()) for r in idx] == brute_knn(feats, 6, exclude)
    assert torch.equal(idx[exclude], torch.tensor([[3] * 6, [10] * 6, [11] * 6, [40] * 6]))
    assert not bool(torch.isin(idx[~exclude], torch.tensor([3, 10, 11, 40])).any())
    # k clamps to the eligible rows; everything excluded leaves self-loops only.
    few = torch.tensor([True, False, True, False, True])
    assert knn_indices(feats[:5], 4, exclude=few, device=CPU).shape == (5, 2)
    everyone = torch.ones(5, dtype=torch.bool)
    assert torch.equal(
        knn_indices(feats[:5], 4, exclude=everyone, device=CPU), torch.arange(5).unsqueeze(1)
    )


def test_adjacency_values_and_structure(feats: torch.Tensor) -> None:
    exclude = torch.zeros(50, dtype=torch.bool)
    exclude[[0, 7]] = True
    adj = knn_adjacency(feats, 4, exclude=exclude, chunk_rows=9, device=CPU)
    assert adj.layout == torch.sparse_csr and adj.dtype == torch.float32
    assert adj.shape == (50, 50)
    counts = adj.crow_indices().diff()
    assert counts.tolist() == [1 if i in (0, 7) else 4 for i in range(50)]
    dense = adj.to_dense()
    full = ~exclude
    assert torch.allclose(dense[full][dense[full] > 0], torch.tensor(0.25))
    assert dense[0, 0] == 1.0 and dense[7, 7] == 1.0
    assert torch.allclose(dense.sum(1), torch.ones(50))
    ref = dense_adjacency(brute_knn(feats, 4, exclude), 50)
    assert torch.allclose(dense.double(), ref)
    # Columns sorted within rows (canonical CSR).
    for i in range(50):
        cols = adj.col_indices()[adj.crow_indices()[i] : adj.crow_indices()[i + 1]]
        assert torch.equal(cols, cols.sort().values)
    # Not symmetric in general.
    assert not torch.equal(dense, dense.T)


def test_combine_is_the_normalised_weighted_sum(feats: torch.Tensor) -> None:
    a = knn_adjacency(feats, 3, device=CPU)
    b = knn_adjacency(feats[:, :4], 5, device=CPU)
    got = combine_adjacency([a, b], [0.1, 0.9])
    assert got.layout == torch.sparse_csr
    expected = 0.1 * a.to_dense() + 0.9 * b.to_dense()
    assert torch.allclose(got.to_dense(), expected)
    assert torch.allclose(combine_adjacency([a, b], [1, 9]).to_dense(), expected)
    assert got.values().numel() == int((expected != 0).sum())  # coalesced
    assert got.crow_indices()[-1] == got.values().numel()
    # A zero weight drops its graph entirely.
    only_b = combine_adjacency([a, b], [0.0, 2.0])
    assert torch.equal(only_b.col_indices(), b.col_indices())
    assert torch.allclose(only_b.values(), b.values())
    # The CSR works in a product.
    x = torch.randn(50, 3)
    assert torch.allclose(got @ x, expected @ x, atol=1e-6)


@pytest.mark.parametrize(
    ("weights", "match"),
    [([1.0], "expected 2 weights"), ([-0.1, 1.1], ">= 0"), ([0.0, 0.0], "positive sum")],
)
def test_combine_rejects_bad_weights(feats: torch.Tensor, weights: list[float], match: str) -> None:
    a = knn_adjacency(feats, 3, device=CPU)
    with pytest.raises(ConfigError, match=match):
        combine_adjacency([a, a], weights)
    with pytest.raises(ConfigError, match="no adjacency"):
        combine_adjacency([], [])


def test_modality_graph_excludes_missing_only_for_learned_policy(feats: torch.Tensor) -> None:
    missing = torch.zeros(50, dtype=torch.bool)
    missing[[5, 6]] = True
    text_values = feats.clone()
    text_values[missing] = 0.0
    text = ItemFeatures("text", text_values, missing, policy="learned")
    image = ItemFeatures("image", feats[:, 2:], missing, policy="mean")
    graph = modality_graph([image, text], 4, [0.1, 0.9], chunk_rows=16, device=CPU)
    a_img = knn_adjacency(feats[:, 2:], 4, device=CPU)
    a_txt = knn_adjacency(text_values, 4, exclude=missing, device=CPU)
    assert torch.allclose(graph.to_dense(), 0.1 * a_img.to_dense() + 0.9 * a_txt.to_dense())
    assert graph.to_dense()[5].nonzero().numel() > 1  # image still links item 5 to others
    equal = modality_graph([image, text], 4, device=CPU)
    assert torch.allclose(equal.to_dense(), 0.5 * a_img.to_dense() + 0.5 * a_txt.to_dense())
    with pytest.raises(ConfigError, match="at least one item modality"):
        modality_graph([], 4)
    with pytest.raises(ConfigError, match="expected 2 weights"):
        modality_graph([image, text], 4, [1.0])


def test_ml100k_sized_graph_is_fast() -> None:
    x = torch.randn(1682, 384, generator=torch.Generator().manual_seed(1))
    start = time.perf_counter()
    adj = knn_adjacency(x, 10, max_bytes=2**20, device=CPU)  # chunks of 155 rows
    seconds = time.perf_counter() - start
    assert adj.values().numel() == 16820
    assert torch.allclose(adj.values(), torch.tensor(0.1))
    assert seconds < 5.0, seconds


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(feats: torch.Tensor) -> None:
    exclude = torch.zeros(50, dtype=torch.bool)
    exclude[[2, 9]] = True
    got = knn_indices(feats, 5, exclude=exclude, chunk_rows=7)  # default device: cuda
    assert got.device.type == "cpu"
    assert torch.equal(got, knn_indices(feats, 5, exclude=exclude, device=CPU))
