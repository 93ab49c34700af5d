"""Item-based kNN with shrunk cosine similarity (the classic neighbourhood baseline).

With ``x_i`` the binary train column of item ``i`` (its users; a pair seen twice counts once)::

    sim(i, j) = (x_i · x_j) / (‖x_i‖ ‖x_j‖ + shrink),

every target item ``j`` keeps its ``k`` most similar items ``N(j)`` (itself excluded; among equal
similarities the lower item index wins, :func:`recsys.eval.topk.topk`, so the neighbours do not
depend on the device or the chunking), and

    score(u, j) = Σ_{i ∈ I_u ∩ N(j)} sim(i, j),

i.e. ``scores = X S`` with ``S[i, j] = sim(i, j)`` for ``i ∈ N(j)`` and 0 elsewhere (the sparse
similarity of RecBole's and implicit's ItemKNN, which keep the top-k of each target item).

The similarity is computed ``chunk`` target items at a time (``XᵀX`` rows from a sparse product,
a ``chunk × n_items`` dense float32 block, then its exact top-k), so the extra memory is bounded
by the chunk: about ten times the dense block's ``4 · chunk · n_items`` bytes (the sparse
product's entries and the top-k's tie handling; measured on the CPU, 6,000 items: 1.35 GB for a
144 MB block). By default the dense block is 64 MiB. The model keeps ``(n_items, k)`` neighbour
indices and similarities.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor

from recsys.config import StrictModel
from recsys.eval.topk import topk
from recsys.models.base import Model, Scorer
from recsys.models.ease import (
    FitDevice,
    binary_csr,
    cooccurrence_rows,
    fit_device,
    gather_rows,
    sparse_csr,
)
from recsys.spec import DataSpec

KNN_BLOCK_BYTES = 64 * 2**20
"""Budget of one dense ``chunk × n_items`` similarity block when ``chunk`` is not given."""


def item_knn(
    spec: DataSpec, k: int, shrink: float, chunk: int | None, device: torch.device
) -> tuple[Tensor, Tensor]:
    """The top-``k`` shrunk-cosine neighbours of every item (see the module docstring).

    Args:
        spec: the dataset (its train split).
        k: neighbours per item; clamped to ``n_items - 1``.
        shrink: the shrinkage added to the norm product (>= 0).
        chunk: target items per similarity block (None: dense blocks of 64 MiB).
        device: where to compute.

    Returns:
        ``(indices (n_items, k'), values (n_items, k'))`` on the CPU, ``k' = min(k, n_items -
        1)``: row ``j`` holds ``N(j)`` in ascending index order and ``sim(i, j)`` for each
        (float32).
    """
    n, n_users = spec.n_items, spec.n_users
    k_eff = max(0, min(k, n - 1))
    user_ptr, user_items = binary_csr(spec.train.users, spec.train.items, n_users, n)
    item_ptr, item_users = binary_csr(spec.train.items, spec.train.users, n, n_users)
    ones = torch.ones(user_items.numel(), dtype=torch.float32, device=device)
    x = sparse_csr(user_ptr.to(device), user_items.to(device), ones, (n_users, n))
    items_csr = (item_ptr.to(device), item_users.to(device))
    norms = (item_ptr[1:] - item_ptr[:-1]).to(device, torch.float32).sqrt()
    step = chunk if chunk is not None else max(1, KNN_BLOCK_BYTES // (4 * max(n, 1)))
    indices = torch.empty(n, k_eff, dtype=torch.int64, device=device)
    values = torch.empty(n, k_eff, dtype=torch.float32, device=device)
    for start in range(0, n, step) if k_eff > 0 else ():
        stop = min(start + step, n)
        sim = cooccurrence_rows(items_csr, x, start, stop, n_users)
        denom = torch.outer(norms[start:stop], norms).add_(shrink)
        # A zero denominator has a zero numerator (an item without users): 0, not NaN.
        sim.div_(denom.clamp_(min=torch.finfo(torch.float32).tiny))
        sim.diagonal(offset=start).fill_(float("-inf"))
        top_values, top_indices = topk(sim, k_eff)
        idx, order = torch.sort(top_indices, dim=1)
        indices[start:stop] = idx
        values[start:stop] = top_values.gather(1, order)
        del sim, denom
    return indices.cpu(), values.cpu()


class ItemKNNConfig(StrictModel):
    """ItemKNN settings."""

    k: int = Field(default=100, ge=1)
    """Neighbours kept per target item (clamped to ``n_items - 1``)."""
    shrink: float = Field(default=10.0, ge=0)
    """Added to the cosine's norm product; damps similarities resting on few users."""
    chunk: int | None = Field(default=None, ge=1)
    """Target items per similarity block (None: dense blocks of 64 MiB, about 10x that at the
    peak); any value gives the same neighbours."""
    fit_device: FitDevice = "auto"
    """Where the similarities are computed (``auto``: CUDA when available)."""


class ItemKNN(Model):
    """ItemKNN: ``scores = X S`` with ``S`` the top-``k`` shrunk cosine of each target item.

    Fitted at construction (``trainable = False``). ``neighbours`` and ``similarities``
    (``n_items × k'``) are buffers saved by ``state_dict``; the user rows of ``X`` are
    non-persistent buffers rebuilt from the spec. The scorer multiplies ``Sᵀ`` (a sparse CSR
    matrix whose row ``j`` holds ``N(j)``) by the batch's dense ``Xᵀ`` columns.
    """

    Config = ItemKNNConfig
    trainable = False
    neighbours: Tensor
    similarities: Tensor
    x_indptr: Tensor
    x_items: Tensor

    def __init__(self, cfg: ItemKNNConfig, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        indices, values = item_knn(spec, cfg.k, cfg.shrink, cfg.chunk, fit_device(cfg.fit_device))
        self.register_buffer("neighbours", indices)
        self.register_buffer("similarities", values)
        indptr, items = binary_csr(spec.train.users, spec.train.items, spec.n_users, spec.n_items)
        self.register_buffer("x_indptr", indptr, persistent=False)
        self.register_buffer("x_items", items, persistent=False)

    def scorer(self) -> Scorer:
        n, k = self.neighbours.shape
        device = self.neighbours.device
        crow = torch.arange(n + 1, device=device) * k
        s_t = sparse_csr(crow, self.neighbours.reshape(-1), self.similarities.reshape(-1), (n, n))
        indptr, items = self.x_indptr, self.x_items

        def score(users: Tensor) -> Tensor:
            users = users.to(device)
            _, owner, col = gather_rows(indptr, items, users)
            x_t = torch.zeros(n, users.numel(), dtype=s_t.dtype, device=device)
            x_t[col, owner] = 1.0
            return (s_t @ x_t).T.contiguous()

        return score


__all__ = ["ItemKNN", "ItemKNNConfig", "item_knn"]
