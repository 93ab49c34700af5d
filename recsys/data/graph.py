"""The bipartite user-item graph of the train split and its normalised adjacency.

Node numbering follows torch-geometric's bipartite convention: users are nodes ``0..U-1`` and
items are nodes ``U..U+I-1`` (item ``i`` is node ``U + i``). Edges go both ways and are
coalesced (sorted by (row, col), duplicates removed), so ``edge_index`` has ``2 * nnz`` columns
for ``nnz`` distinct train pairs.

The normalised adjacency is LightGCN's ``D^-1/2 A D^-1/2`` without self-loops (PyG's
``gcn_norm(..., add_self_loops=False)``), stored once as a CSR tensor: on ml-100k a CSR
``A @ X`` is ~5x faster than COO on CPU. :func:`propagate` multiplies by it with a backward of
``A @ grad`` (valid because ``A`` is symmetric), which avoids autograd through the sparse
product (measured ~4x faster for forward + backward).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from recsys.types import Interactions


@dataclass(frozen=True)
class BipartiteGraph:
    """The train graph.

    Attributes:
        n_users, n_items: node counts of each side (``n_nodes = n_users + n_items``).
        edge_index: ``(2, 2 * nnz)`` int64, both directions, coalesced (row-major sorted).
        adj: ``(n_nodes, n_nodes)`` float32 sparse CSR ``D^-1/2 A D^-1/2`` (symmetric, no
            self-loops; isolated nodes have all-zero rows).
        degree: ``(n_nodes,)`` float32 number of distinct neighbours of each node.
    """

    n_users: int
    n_items: int
    edge_index: Tensor
    adj: Tensor
    degree: Tensor

    @property
    def n_nodes(self) -> int:
        return self.n_users + self.n_items

    @property
    def n_edges(self) -> int:
        """Number of directed edges (twice the distinct train pairs)."""
        return int(self.edge_index.shape[1])

    def to(self, device: torch.device | str) -> BipartiteGraph:
        """A copy with every tensor on ``device``."""
        return BipartiteGraph(
            self.n_users,
            self.n_items,
            self.edge_index.to(device),
            self.adj.to(device),
            self.degree.to(device),
        )


def build_graph(train: Interactions, n_users: int, n_items: int) -> BipartiteGraph:
    """Build the bipartite graph and its symmetric normalised adjacency (vectorised).

    Args:
        train: train pairs; duplicates are allowed and counted once.
        n_users, n_items: sizes of the index spaces.

    Returns:
        The :class:`BipartiteGraph` on the CPU.
    """
    n = n_users + n_items
    users = train.users.to("cpu", torch.int64)
    items = train.items.to("cpu", torch.int64) + n_users
    # Sorting the flattened (row, col) keys coalesces both directions at once.
    keys = torch.cat([users * n + items, items * n + users])
    keys = torch.unique(keys, sorted=True)
    row = torch.div(keys, n, rounding_mode="floor")
    col = keys - row * n
    counts = torch.bincount(row, minlength=n)
    degree = counts.to(torch.float32)
    inv_sqrt = degree.pow(-0.5)
    inv_sqrt[degree == 0] = 0.0
    values = inv_sqrt[row] * inv_sqrt[col]
    crow = torch.zeros(n + 1, dtype=torch.int64)
    torch.cumsum(counts, 0, out=crow[1:])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        adj = torch.sparse_csr_tensor(crow, col, values, size=(n, n), check_invariants=False)
    return BipartiteGraph(n_users, n_items, torch.stack([row, col]), adj, degree)


class _SymmetricSpMM(torch.autograd.Function):
    """``adj @ x`` with backward ``adj @ grad`` (``adj`` must be symmetric)."""

    @staticmethod
    def forward(ctx: Any, adj: Tensor, x: Tensor) -> Tensor:
        ctx.adj = adj
        return adj @ x

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor]:
        return None, ctx.adj @ grad


def propagate(adj: Tensor, x: Tensor) -> Tensor:
    """One propagation step ``adj @ x`` for a symmetric sparse ``adj``.

    Args:
        adj: ``(n, n)`` symmetric sparse (CSR) matrix; it receives no gradient.
        x: ``(n, d)`` dense node features, same dtype and device as ``adj``.

    Returns:
        ``(n, d)`` propagated features; the gradient w.r.t. ``x`` is ``adj @ grad``.
    """
    out: Tensor = _SymmetricSpMM.apply(adj, x)
    return out


def layer_sum(adj: Tensor, x: Tensor, layers: int) -> Tensor:
    """``Σ_{l=0..L} adj^l x`` with :func:`propagate` (LightGCN-style readouts divide it by
    ``L + 1``; CM3 keeps the sum)."""
    acc = x
    for _ in range(layers):
        x = propagate(adj, x)
        acc = acc + x
    return acc
