"""Bipartite graph construction and the symmetric sparse propagation."""

from __future__ import annotations

import math

import pytest
import torch

from recsys.data.graph import build_graph, propagate
from recsys.types import Interactions


def pairs(*uv: tuple[int, int]) -> Interactions:
    t = torch.tensor(uv, dtype=torch.int64)
    return Interactions(t[:, 0].contiguous(), t[:, 1].contiguous())


def random_train(n_users: int, n_items: int, n: int, seed: int = 0) -> Interactions:
    g = torch.Generator().manual_seed(seed)
    return Interactions(
        torch.randint(n_users, (n,), generator=g), torch.randint(n_items, (n,), generator=g)
    )


def test_hand_example_edges_and_normalisation() -> None:
    # users u0, u1 (nodes 0, 1); items i0, i1 (nodes 2, 3); (0, 0) given twice.
    g = build_graph(pairs((0, 0), (0, 1), (1, 1), (0, 0)), n_users=2, n_items=2)
    assert g.edge_index.tolist() == [[0, 0, 1, 2, 3, 3], [2, 3, 3, 0, 0, 1]]
    assert g.degree.tolist() == [2.0, 1.0, 1.0, 2.0]
    r2 = 1 / math.sqrt(2)
    expected = torch.tensor(
        [
            [0.0, 0.0, r2, 0.5],
            [0.0, 0.0, 0.0, r2],
            [r2, 0.0, 0.0, 0.0],
            [0.5, r2, 0.0, 0.0],
        ]
    )
    assert g.adj.layout == torch.sparse_csr and g.adj.dtype == torch.float32
    torch.testing.assert_close(g.adj.to_dense(), expected, rtol=0, atol=1e-7)


def test_isolated_nodes_have_zero_rows() -> None:
    g = build_graph(pairs((0, 1)), n_users=3, n_items=3)
    dense = g.adj.to_dense()
    assert dense.shape == (6, 6)
    assert not dense.isnan().any()
    assert dense[1].abs().sum() == 0 and dense[3].abs().sum() == 0
    assert dense[0, 4] == pytest.approx(1.0)


def test_symmetric_and_bipartite() -> None:
    g = build_graph(random_train(30, 20, 200), 30, 20)
    dense = g.adj.to_dense()
    torch.testing.assert_close(dense, dense.T, rtol=0, atol=0)
    assert dense[:30, :30].abs().sum() == 0 and dense[30:, 30:].abs().sum() == 0
    assert g.n_edges == 2 * int((dense[:30] != 0).sum())


def test_matches_pyg_gcn_norm_without_self_loops() -> None:
    gcn_norm = pytest.importorskip("torch_geometric.nn.conv.gcn_conv").gcn_norm
    g = build_graph(random_train(25, 15, 120, seed=3), 25, 15)
    ei, w = gcn_norm(g.edge_index, None, g.n_nodes, add_self_loops=False)
    ref = torch.zeros(g.n_nodes, g.n_nodes)
    ref[ei[0], ei[1]] = w
    torch.testing.assert_close(g.adj.to_dense(), ref, rtol=1e-6, atol=1e-7)


def test_propagate_matches_dense_and_autograd() -> None:
    g = build_graph(random_train(12, 9, 40, seed=1), 12, 9)
    adj = g.adj.to(torch.float64)
    dense = adj.to_dense()
    x = torch.randn(g.n_nodes, 4, dtype=torch.float64, requires_grad=True)
    y = propagate(adj, propagate(adj, x))
    torch.testing.assert_close(y, dense @ (dense @ x))
    w = torch.randn_like(y)
    (grad,) = torch.autograd.grad((y * w).sum(), x)
    x2 = x.detach().clone().requires_grad_(True)
    ((dense @ (dense @ x2)) * w).sum().backward()
    torch.testing.assert_close(grad, x2.grad)
    assert torch.autograd.gradcheck(lambda t: propagate(adj, t), (x,))


def test_graph_to_device_keeps_values() -> None:
    g = build_graph(random_train(5, 5, 10), 5, 5)
    moved = g.to("cpu")
    assert moved.n_nodes == 10
    torch.testing.assert_close(moved.adj.to_dense(), g.adj.to_dense())
