"""EASE (Steck, WWW 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"), closed form.

With ``X`` the binary ``n_users × n_items`` train matrix (a pair seen twice counts once)::

    G = XᵀX + λI,    P = G⁻¹,    B_ij = −P_ij / P_jj  (i ≠ j),    B_jj = 0,
    scores = X B     (s_uj = Σ_{i ∈ I_u} B_ij).

``B`` is the ridge regression of every item column on all the others with a zero diagonal
(for two items, ``B_01 = (x_0·x_1) / (x_0·x_0 + λ)``); as ``λ → ∞``, ``λB`` tends to ``XᵀX``
with its diagonal zeroed (item-item co-occurrence).

Memory: ``B`` is a dense ``n_items × n_items`` matrix: ``4 n²`` bytes in float32 (40,000 items:
6.4 GB), ``8 n²`` in float64. The fit peaks at about three such matrices (``G``, its Cholesky
factor ``L``, and the working copy of ``L`` that each ``cholesky_solve`` makes; ``P`` overwrites
``G`` and ``B`` overwrites ``P``), plus the co-occurrence blocks (a 256 MiB dense block and its
sparse product, about 1 GB). Measured: 20,000 items, 5M pairs, float32 on CUDA: 5.4 GB peak
(3.4 n²), 0.9 s on an H200; 6,000 items on 2 CPU cores: 17 s. A configurable ``max_items``
(default 50,000: 10 GB per float32 matrix, ~30 GB at the peak) turns a fit that would run the
machine out of memory into a :class:`~recsys.errors.ConfigError`.

The helpers :func:`binary_csr`, :func:`gather_rows` and :func:`cooccurrence_rows` are shared
with :mod:`recsys.models.itemknn`.
"""

from __future__ import annotations

import warnings
from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from recsys.config import StrictModel
from recsys.errors import ConfigError
from recsys.models.base import Model, Scorer
from recsys.spec import DataSpec
from recsys.train.device import resolve_device

BLOCK_BYTES = 256 * 2**20
"""Budget of one dense block of a closed-form fit (co-occurrence rows, solve columns)."""

FitDevice = Literal["auto", "cpu", "cuda"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def binary_csr(rows: Tensor, cols: Tensor, n_rows: int, n_cols: int) -> tuple[Tensor, Tensor]:
    """The CSR pattern of the 0/1 matrix with ones at ``(rows, cols)`` (duplicates once).

    Returns:
        ``(indptr (n_rows + 1,), indices (nnz,))`` int64 on the CPU: the columns of row ``r``
        are ``indices[indptr[r]:indptr[r + 1]]``, ascending.
    """
    keys = torch.unique(rows.to("cpu", torch.int64) * n_cols + cols.to("cpu", torch.int64))
    row = torch.div(keys, n_cols, rounding_mode="floor")
    indices = keys - row * n_cols
    indptr = torch.zeros(n_rows + 1, dtype=torch.int64)
    torch.cumsum(torch.bincount(row, minlength=n_rows), 0, out=indptr[1:])
    return indptr, indices


def gather_rows(indptr: Tensor, indices: Tensor, rows: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The rows ``rows`` of a CSR pattern, vectorised.

    Returns:
        ``(crow (len(rows) + 1,), owner (m,), col (m,))``: the sub-matrix's row pointers, and for
        each of its ``m`` entries the position of its row in ``rows`` and its column.
    """
    start = indptr[rows]
    counts = indptr[rows + 1] - start
    crow = torch.zeros(rows.numel() + 1, dtype=torch.int64, device=indptr.device)
    torch.cumsum(counts, 0, out=crow[1:])
    total = int(crow[-1])
    owner = torch.repeat_interleave(counts, output_size=total)
    pos = torch.arange(total, device=indptr.device) - crow[:-1][owner] + start[owner]
    return crow, owner, indices[pos]


def sparse_csr(crow: Tensor, col: Tensor, values: Tensor, size: tuple[int, int]) -> Tensor:
    """A ``torch.sparse_csr_tensor`` (its beta warning silenced, invariants unchecked)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, values, size=size, check_invariants=False)


def rows_matrix(
    indptr: Tensor, indices: Tensor, rows: Tensor, n_cols: int, dtype: torch.dtype
) -> Tensor:
    """The rows ``rows`` of a 0/1 CSR pattern as a sparse CSR ``(len(rows), n_cols)`` tensor."""
    crow, _, col = gather_rows(indptr, indices, rows)
    ones = torch.ones(col.numel(), dtype=dtype, device=col.device)
    return sparse_csr(crow, col, ones, (rows.numel(), n_cols))


def cooccurrence_rows(
    items_csr: tuple[Tensor, Tensor], x: Tensor, start: int, stop: int, n_users: int
) -> Tensor:
    """Rows ``start:stop`` of ``XᵀX`` as a dense ``(stop - start, n_items)`` block.

    Args:
        items_csr: the CSR pattern of ``Xᵀ`` (items × users), on ``x``'s device.
        x: ``X`` as a sparse CSR ``(n_users, n_items)`` tensor of ones.
        start, stop: the item rows.
        n_users: number of users (columns of ``Xᵀ``).

    Entry ``(i, j)`` counts the users who have both items (exact in float32 up to 2²⁴).
    """
    rows = torch.arange(start, stop, device=x.device)
    xt = rows_matrix(*items_csr, rows, n_users, x.dtype)
    return (xt @ x).to_dense()


def fit_device(name: FitDevice) -> torch.device:
    """Where a closed-form fit runs: ``auto`` is CUDA when available, else the CPU."""
    return resolve_device(name)


def ease_weights(spec: DataSpec, reg: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """EASE's ``B`` (``n_items × n_items``, on ``device``); see the module docstring.

    ``G`` is built in blocks of item rows with sparse products, factorised by Cholesky
    (``G = LLᵀ``, positive definite since ``λ > 0``), and ``P = G⁻¹`` is solved in blocks of
    columns into ``G``'s memory; ``B`` then overwrites ``P``.

    Raises:
        ConfigError: ``G`` is not numerically positive definite in ``dtype``.
    """
    n, n_users = spec.n_items, spec.n_users
    user_ptr, user_items = binary_csr(spec.train.users, spec.train.items, n_users, n)
    item_ptr, item_users = binary_csr(spec.train.items, spec.train.users, n, n_users)
    ones = torch.ones(user_items.numel(), dtype=dtype, device=device)
    x = sparse_csr(user_ptr.to(device), user_items.to(device), ones, (n_users, n))
    items_csr = (item_ptr.to(device), item_users.to(device))
    block = max(1, BLOCK_BYTES // (dtype.itemsize * max(n, 1)))
    g = torch.empty(n, n, dtype=dtype, device=device)
    for start in range(0, n, block):
        stop = min(start + block, n)
        g[start:stop] = cooccurrence_rows(items_csr, x, start, stop, n_users)
    del x, items_csr
    g.diagonal().add_(reg)
    chol, info = torch.linalg.cholesky_ex(g)
    if int(info) != 0:
        raise ConfigError(
            f"model ease: XᵀX + reg·I is not positive definite in {dtype} (reg = {reg}, "
            f"{n} items); raise model.reg or set model.dtype = 'float64'"
        )
    p = g  # G is no longer needed: P = G⁻¹ is solved into its memory, column block by block.
    for start in range(0, n, block):
        stop = min(start + block, n)
        eye = torch.zeros(n, stop - start, dtype=dtype, device=device)
        eye.diagonal(offset=-start).fill_(1.0)
        p[:, start:stop] = torch.cholesky_solve(eye, chol)
    del chol
    diag = p.diagonal().clone()
    p.div_(diag.unsqueeze(0)).neg_()  # B_ij = −P_ij / P_jj
    p.fill_diagonal_(0.0)
    return p


class EASEConfig(StrictModel):
    """EASE settings."""

    reg: float = Field(default=500.0, gt=0)
    """The L2 weight ``λ`` added to the diagonal of ``XᵀX`` (the paper's ml-20m value: 500)."""
    dtype: Literal["float32", "float64"] = "float32"
    """Precision of the fit and of ``B``."""
    max_items: int = Field(default=50_000, ge=1)
    """Refuse datasets with more items (``B`` is ``n_items²`` floats, ~3x that while fitting)."""
    fit_device: FitDevice = "auto"
    """Where ``B`` is computed (``auto``: CUDA when available); it is then kept on the CPU
    until the model is moved."""


class EASE(Model):
    """EASE: scores ``X B`` with the closed-form item-item weights ``B`` (zero diagonal).

    Fitted at construction (``trainable = False``). ``weights`` (``B``) is a buffer saved by
    ``state_dict``; the user rows of ``X`` (``x_indptr``, ``x_items``, CSR) are non-persistent
    buffers rebuilt from the spec, which move with ``.to(device)``. The scorer gathers a batch's
    rows into a sparse CSR matrix and multiplies it by ``B`` (sparse @ dense).
    """

    Config = EASEConfig
    trainable = False
    weights: Tensor
    x_indptr: Tensor
    x_items: Tensor

    def __init__(self, cfg: EASEConfig, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        dtype = _DTYPES[cfg.dtype]
        if spec.n_items > cfg.max_items:
            gb = dtype.itemsize * spec.n_items**2 / 1e9
            raise ConfigError(
                f"model ease: {spec.n_items} items exceed model.max_items = {cfg.max_items}; "
                f"B is a dense {spec.n_items}×{spec.n_items} {cfg.dtype} matrix ({gb:.1f} GB, "
                "about 3x that while fitting): raise model.max_items if the memory is there, or "
                "filter rare items in the data config"
            )
        weights = ease_weights(spec, cfg.reg, dtype, fit_device(cfg.fit_device))
        self.register_buffer("weights", weights.cpu())
        indptr, items = binary_csr(spec.train.users, spec.train.items, spec.n_users, spec.n_items)
        self.register_buffer("x_indptr", indptr, persistent=False)
        self.register_buffer("x_items", items, persistent=False)

    def scorer(self) -> Scorer:
        weights, indptr, items, n_items = self.weights, self.x_indptr, self.x_items, self.n_items

        def score(users: Tensor) -> Tensor:
            x = rows_matrix(indptr, items, users.to(indptr.device), n_items, weights.dtype)
            return x @ weights

        return score


__all__ = [
    "EASE",
    "EASEConfig",
    "binary_csr",
    "cooccurrence_rows",
    "ease_weights",
    "gather_rows",
    "rows_matrix",
    "sparse_csr",
]
