"""Item-item kNN graphs from item modality features (FREEDOM / CM3's frozen item graph).

For each modality the cosine similarity of the raw feature rows is computed, every item keeps
its ``k`` most similar items (itself included: it is the top-1 neighbour) and the 0/1
adjacency is normalised as MMRec does; the modality graphs are then mixed with fixed weights
(CM3: ``0.1 · A_image + 0.9 · A_text``).

The similarity matrix is never materialised: rows are processed in chunks, each chunk's
``chunk × n`` similarity block is reduced to its top-k at once, so the extra memory is about
``max_bytes`` whatever ``n`` (a dense ``n × n`` float32 matrix is 40 GB for 100,000 items).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from recsys.errors import ConfigError
from recsys.types import ItemFeatures


def _default_device(x: Tensor) -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else x.device


def knn_indices(
    x: Tensor,
    k: int,
    *,
    exclude: Tensor | None = None,
    chunk_rows: int | None = None,
    max_bytes: int = 256 * 2**20,
    device: torch.device | None = None,
) -> Tensor:
    """The ``k`` most cosine-similar rows of every row of ``x``, self included.

    Rows are L2-normalised first (an all-zero row stays zero, so its cosine with everyone is
    0). Self is forced to be the first neighbour (the diagonal is set to ``+inf`` before the
    top-k), which matches MMRec / FREEDOM / CM3 (where self wins with cosine 1) and also pins it
    for zero rows and exact duplicates, where MMRec's choice depends on tie order. The other
    neighbours follow by decreasing similarity; ties are broken by ``torch.topk``.

    The work runs in row chunks: ``chunk × n`` similarities, then ``topk``, so the peak extra
    memory is about ``4 · chunk · n`` bytes with ``chunk = max(1, max_bytes // (4 n))`` unless
    ``chunk_rows`` is given, plus one normalised float32 copy of ``x`` (``4 · n · d`` bytes) and
    the ``n × k`` result (see ``docs/benchmarks/knn_memory.md``).

    Args:
        x: ``(n, d)`` item features (any float dtype; computed in float32).
        k: neighbours per row (>= 1). Clamped to the number of eligible rows (at least 1).
        exclude: ``(n,)`` bool, True for rows that may not be anyone's neighbour (items missing
            this modality). Their own row is ``k`` copies of themselves, so a graph built from
            the result links them to themselves only.
        chunk_rows: rows per chunk (overrides ``max_bytes``).
        max_bytes: budget of one chunk's similarity block, in bytes.
        device: where to compute; default CUDA when available, else ``x``'s device.

    Returns:
        ``(n, k')`` int64 on the CPU, ``k' = max(1, min(k, n_eligible))``; column 0 is the row
        itself.

    Raises:
        ConfigError: ``k < 1``.
        ValueError: ``x`` is not 2-D, ``exclude`` has the wrong shape, or ``chunk_rows < 1``.
    """
    if k < 1:
        raise ConfigError(f"item kNN graph: k must be >= 1, got {k}")
    if x.dim() != 2:
        raise ValueError(f"knn_indices: x must be (n, d), got shape {tuple(x.shape)}")
    if chunk_rows is not None and chunk_rows < 1:
        raise ValueError(f"knn_indices: chunk_rows must be >= 1, got {chunk_rows}")
    n = int(x.shape[0])
    dev = device if device is not None else _default_device(x)
    if exclude is None:
        excl = torch.zeros(n, dtype=torch.bool)
    else:
        if tuple(exclude.shape) != (n,):
            raise ValueError(
                f"knn_indices: exclude must be ({n},) bool, got shape {tuple(exclude.shape)}"
            )
        excl = exclude.to("cpu", torch.bool)
    n_eligible = n - int(excl.sum())
    k_eff = max(1, min(k, n_eligible))
    if n == 0:
        return torch.empty(0, k_eff, dtype=torch.int64)
    chunk = chunk_rows if chunk_rows is not None else max(1, max_bytes // (4 * n))
    chunk = min(chunk, n)

    xn = F.normalize(x.to(dev, torch.float32), dim=1)
    excl_dev = excl.to(dev)
    has_excluded = n_eligible < n
    out = torch.empty(n, k_eff, dtype=torch.int64, device=dev)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        sim = xn[start:stop] @ xn.T
        if has_excluded:
            sim.masked_fill_(excl_dev.unsqueeze(0), float("-inf"))
        # Self first, whatever the ties (zero rows, duplicates).
        sim.diagonal(offset=start).fill_(float("inf"))
        out[start:stop] = torch.topk(sim, k_eff, dim=1, sorted=True).indices
        del sim
    result = out.cpu()
    if has_excluded:
        rows = torch.nonzero(excl).squeeze(1)
        result[rows] = rows.unsqueeze(1).expand(-1, k_eff)
    return result


def _csr(crow: Tensor, col: Tensor, values: Tensor, n: int) -> Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, values, size=(n, n), check_invariants=False)


def knn_adjacency(x: Tensor, k: int, *, exclude: Tensor | None = None, **chunking: Any) -> Tensor:
    """The normalised kNN adjacency of one modality, as MMRec builds it.

    ``A[i, j] = 1`` for ``j`` among the ``k`` neighbours of ``i`` (:func:`knn_indices`, self
    included; an excluded item has only itself), then ``Â = D^-1/2 A D^-1/2`` with ``D`` the
    **row sums** (out-degrees) of ``A``: ``Â[i, j] = 1 / sqrt(deg_i · deg_j)``.

    ``A`` is **not symmetric** (``j`` in the kNN of ``i`` does not imply the converse) and only
    the row degree is used, as in MMRec's ``compute_normalized_laplacian``, so ``Â`` is not the
    symmetric normalisation of a symmetric graph. Every eligible row has exactly ``k'``
    neighbours, all eligible, so its values are all ``1/k'``; an excluded item's row holds a
    single 1 on the diagonal (and no row points to it).

    Args:
        x: ``(n, d)`` item features.
        k: neighbours per row (see :func:`knn_indices` for the clamping).
        exclude: ``(n,)`` bool, items that get a self-loop only.
        **chunking: ``chunk_rows``, ``max_bytes``, ``device`` of :func:`knn_indices`.

    Returns:
        ``(n, n)`` float32 sparse CSR on the CPU, columns sorted within each row.
    """
    idx = knn_indices(x, k, exclude=exclude, **chunking)
    n, k_eff = idx.shape
    keep = torch.ones(n, k_eff, dtype=torch.bool)
    if exclude is not None:
        keep[exclude.to("cpu", torch.bool), 1:] = False  # their rows repeat self k' times
    idx = torch.sort(idx, dim=1).values
    counts = keep.sum(dim=1)
    col = idx[keep]
    row = torch.repeat_interleave(torch.arange(n), counts)
    inv_sqrt = counts.to(torch.float32).rsqrt()
    values = inv_sqrt[row] * inv_sqrt[col]
    crow = torch.zeros(n + 1, dtype=torch.int64)
    torch.cumsum(counts, 0, out=crow[1:])
    return _csr(crow, col, values, n)


def combine_adjacency(adjs: Sequence[Tensor], weights: Sequence[float]) -> Tensor:
    """Weighted sum ``Σ_m w_m · A_m`` of sparse adjacencies, as a CSR tensor.

    The weights must be >= 0 with a positive sum; they are **normalised to sum to 1** first,
    so ``(0.1, 0.9)`` and ``(1, 9)`` give the same graph (CM3: ``0.1 · A_image + 0.9 ·
    A_text``). Adjacencies with weight 0 are left out (no explicit zeros are stored).

    Args:
        adjs: ``(n, n)`` sparse tensors (CSR or COO), all the same shape.
        weights: one weight per adjacency.

    Returns:
        ``(n, n)`` float32 sparse CSR on the CPU, coalesced (each (i, j) once, columns sorted).

    Raises:
        ConfigError: no adjacency, a length mismatch, a negative weight or a zero sum.
        ValueError: the adjacencies differ in shape.
    """
    if not adjs:
        raise ConfigError("combine_adjacency: no adjacency to combine")
    if len(weights) != len(adjs):
        raise ConfigError(
            f"item graph weights: expected {len(adjs)} weights (one per modality), "
            f"got {len(weights)}: {list(weights)}"
        )
    w = [float(v) for v in weights]
    if any(not math.isfinite(v) or v < 0 for v in w) or sum(w) <= 0:
        raise ConfigError(f"item graph weights must be >= 0 with a positive sum, got {w}")
    shape = tuple(adjs[0].shape)
    if any(tuple(a.shape) != shape for a in adjs):
        raise ValueError(f"combine_adjacency: shapes differ: {[tuple(a.shape) for a in adjs]}")
    total = sum(w)
    parts = [
        (a.to("cpu").to_sparse_coo().coalesce(), v / total) for a, v in zip(adjs, w, strict=True)
    ]
    parts = [(a, v) for a, v in parts if v > 0]
    indices = torch.cat([a.indices() for a, _ in parts], dim=1)
    values = torch.cat([a.values().to(torch.float32) * v for a, v in parts])
    summed = torch.sparse_coo_tensor(indices, values, shape, check_invariants=False).coalesce()
    n = shape[0]
    counts = torch.bincount(summed.indices()[0], minlength=n)
    crow = torch.zeros(n + 1, dtype=torch.int64)
    torch.cumsum(counts, 0, out=crow[1:])
    return _csr(crow, summed.indices()[1].contiguous(), summed.values().contiguous(), n)


def modality_graph(
    features: Sequence[ItemFeatures],
    k: int,
    weights: Sequence[float] | None = None,
    **chunking: Any,
) -> Tensor:
    """The mixed item-item graph of several modalities.

    Per modality ``f``: ``knn_adjacency(f.values, k, exclude=f.missing)`` when ``f.policy ==
    "learned"`` (a missing item's stored zeros say nothing about it, so it gets a self-loop
    only and is nobody's neighbour), else on the stored values as they are (``mean`` / ``zero``
    policies); then :func:`combine_adjacency` with ``weights`` (default: equal).

    Args:
        features: the modalities, all with the same number of items.
        k: neighbours per item.
        weights: one per modality (normalised to sum 1), e.g. ``(0.1, 0.9)`` for CM3's
            image/text.
        **chunking: ``chunk_rows``, ``max_bytes``, ``device`` of :func:`knn_indices`.

    Returns:
        ``(n_items, n_items)`` float32 sparse CSR on the CPU.

    Raises:
        ConfigError: no modality, a weight count mismatch or bad weights.
        ValueError: modalities with different item counts.
    """
    if not features:
        raise ConfigError("the item-item graph needs at least one item modality (none given)")
    sizes = {f.name: int(f.values.shape[0]) for f in features}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"modality_graph: modalities differ in item count: {sizes}")
    w = list(weights) if weights is not None else [1.0] * len(features)
    if len(w) != len(features):
        raise ConfigError(
            f"item graph weights: expected {len(features)} weights, one per modality "
            f"{[f.name for f in features]}, got {len(w)}: {w}"
        )
    adjs = [
        knn_adjacency(f.values, k, exclude=f.missing if f.policy == "learned" else None, **chunking)
        for f in features
    ]
    return combine_adjacency(adjs, w)
