"""Top-K ranking metrics as pure functions of a hit matrix.

Every metric is computed per user from ONE ranked list of length ``K = max(ks)``:

* ``hits``: ``(B, K)`` bool, ``hits[u, r-1]`` is True when the item at rank ``r`` is relevant
  (in the user's ground truth);
* ``n_rel``: ``(B,)`` number of relevant items ``|test_u|`` of each user.

Definitions, for a cut-off ``k <= K`` and ``rel_r = hits[u, r-1]``:

* Recall@k = ``Σ_{r≤k} rel_r / |test_u|``.
* Precision@k = ``Σ_{r≤k} rel_r / k`` (a list shorter than ``k`` still divides by ``k``).
* HitRate@k = 1 if any ``rel_r`` for ``r ≤ k`` else 0.
* MRR@k = ``1 / r*`` with ``r*`` the rank of the first hit within ``k`` (0 if none).
* MAP@k = ``(1 / min(|test_u|, k)) Σ_{r≤k} P@r · rel_r`` (MMRec's normalisation).
* NDCG@k, binary relevance: ``DCG@k = Σ_{r≤k} rel_r / log2(r + 1)``, divided by the ideal DCG
  of a list holding all relevant items first:

  - ``idcg="truncated"`` (default; LightGCN-PyTorch, MMRec, RecBole):
    ``IDCG = Σ_{r ≤ min(|test_u|, k)} 1 / log2(r + 1)``;
  - ``idcg="full"`` (PLD code): ``IDCG = Σ_{r ≤ |test_u|} 1 / log2(r + 1)``, over ALL relevant
    items even beyond ``k``, while DCG is still truncated at ``k`` (so NDCG@k < 1 for a perfect
    list when ``|test_u| > k``).

Users with ``|test_u| = 0`` score 0 on every metric (no division by zero). All values are
float64; every operation is row-wise, so a user's value does not depend on the other rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

IdcgMode = Literal["truncated", "full"]

METRIC_NAMES: tuple[str, ...] = ("recall", "ndcg", "precision", "hit", "mrr", "map")


def _check(hits: Tensor, n_rel: Tensor, k: int) -> None:
    if hits.dim() != 2 or n_rel.dim() != 1 or hits.shape[0] != n_rel.shape[0]:
        raise ValueError(
            f"hits must be (B, K) and n_rel (B,), got {tuple(hits.shape)} and {tuple(n_rel.shape)}"
        )
    if not 1 <= k <= hits.shape[1]:
        raise ValueError(f"cut-off k={k} outside 1..{hits.shape[1]} (the ranked list length)")


def _hits_at(hits: Tensor, k: int) -> Tensor:
    """``(B,)`` float64 number of hits in the first ``k`` ranks."""
    return hits[:, :k].to(torch.float64).sum(dim=1)


def _discounts(n: int, device: torch.device) -> Tensor:
    """``(n,)`` float64 ``1 / log2(r + 1)`` for ``r = 1..n``."""
    ranks = torch.arange(1, n + 1, dtype=torch.float64, device=device)
    return 1.0 / torch.log2(ranks + 1.0)


def recall_at_k(hits: Tensor, n_rel: Tensor, k: int) -> Tensor:
    """Recall@k = hits in the top ``k`` / ``|test_u|``.

    Takes ``hits (B, K >= k)`` and ``n_rel (B,)``; returns ``(B,)`` float64.
    """
    _check(hits, n_rel, k)
    return _hits_at(hits, k) / n_rel.to(torch.float64).clamp(min=1.0)


def precision_at_k(hits: Tensor, n_rel: Tensor, k: int) -> Tensor:
    """Precision@k = hits in the top ``k`` / ``k``.

    Takes ``hits (B, K >= k)`` and ``n_rel (B,)``; returns ``(B,)`` float64.
    """
    _check(hits, n_rel, k)
    return _hits_at(hits, k) / float(k)


def hit_at_k(hits: Tensor, n_rel: Tensor, k: int) -> Tensor:
    """HitRate@k = 1 if any of the top ``k`` is relevant, else 0.

    Takes ``hits (B, K >= k)`` and ``n_rel (B,)``; returns ``(B,)`` float64.
    """
    _check(hits, n_rel, k)
    return hits[:, :k].any(dim=1).to(torch.float64)


def mrr_at_k(hits: Tensor, n_rel: Tensor, k: int) -> Tensor:
    """MRR@k = 1 / rank of the first hit within the top ``k`` (0 if none).

    Takes ``hits (B, K >= k)`` and ``n_rel (B,)``; returns ``(B,)`` float64.
    """
    _check(hits, n_rel, k)
    head = hits[:, :k]
    first = torch.argmax(head.to(torch.int8), dim=1).to(torch.float64) + 1.0
    return torch.where(head.any(dim=1), 1.0 / first, torch.zeros_like(first))


def map_at_k(hits: Tensor, n_rel: Tensor, k: int) -> Tensor:
    """MAP@k = ``(1 / min(|test_u|, k)) Σ_{r≤k} P@r · rel_r``.

    Takes ``hits (B, K >= k)`` and ``n_rel (B,)``; returns ``(B,)`` float64.
    """
    _check(hits, n_rel, k)
    rel = hits[:, :k].to(torch.float64)
    ranks = torch.arange(1, k + 1, dtype=torch.float64, device=hits.device)
    precision_at_r = torch.cumsum(rel, dim=1) / ranks
    denom = n_rel.to(torch.float64).clamp(min=1.0, max=float(k))
    return (precision_at_r * rel).sum(dim=1) / denom


def ndcg_at_k(hits: Tensor, n_rel: Tensor, k: int, idcg: IdcgMode = "truncated") -> Tensor:
    """NDCG@k with binary relevance.

    ``DCG@k = Σ_{r≤k} rel_r / log2(r + 1)``; the ideal DCG runs over ``min(|test_u|, k)``
    positions (``idcg="truncated"``) or over all ``|test_u|`` positions (``idcg="full"``).

    Args:
        hits: ``(B, K)`` bool hit matrix, ``K >= k``.
        n_rel: ``(B,)`` number of relevant items per user.
        k: cut-off.
        idcg: ``"truncated"`` or ``"full"``.

    Returns:
        ``(B,)`` float64.
    """
    _check(hits, n_rel, k)
    if idcg not in ("truncated", "full"):
        raise ValueError(f"idcg must be 'truncated' or 'full', got {idcg!r}")
    n_rel = n_rel.to(torch.int64)
    disc = _discounts(k, hits.device)
    dcg = (hits[:, :k].to(torch.float64) * disc).sum(dim=1)
    ideal_len = n_rel.clamp(max=k) if idcg == "truncated" else n_rel
    longest = max(int(ideal_len.max()) if ideal_len.numel() else 0, 1)
    # ideal[n] = Σ_{r≤n} 1/log2(r+1), with ideal[0] = 0 (users without relevant items).
    ideal_table = torch.cat(
        [
            torch.zeros(1, dtype=torch.float64, device=hits.device),
            torch.cumsum(_discounts(longest, hits.device), dim=0),
        ]
    )
    ideal = ideal_table[ideal_len.clamp(min=0)]
    return torch.where(ideal > 0, dcg / ideal.clamp(min=1e-300), torch.zeros_like(dcg))


def compute_metrics(
    hits: Tensor,
    n_rel: Tensor,
    ks: Sequence[int],
    metrics: Sequence[str] = METRIC_NAMES,
    idcg: IdcgMode = "truncated",
) -> dict[str, Tensor]:
    """Every requested metric at every cut-off, per user, from one hit matrix.

    Args:
        hits: ``(B, K)`` bool hit matrix with ``K >= max(ks)``.
        n_rel: ``(B,)`` number of relevant items per user.
        ks: cut-offs.
        metrics: names among ``recall, ndcg, precision, hit, mrr, map``.
        idcg: NDCG's ideal-DCG convention (see :func:`ndcg_at_k`).

    Returns:
        ``{"ndcg@20": (B,) float64, ...}`` in the order metrics × ks.
    """
    out: dict[str, Tensor] = {}
    for name in metrics:
        for k in ks:
            if name == "recall":
                value = recall_at_k(hits, n_rel, k)
            elif name == "ndcg":
                value = ndcg_at_k(hits, n_rel, k, idcg)
            elif name == "precision":
                value = precision_at_k(hits, n_rel, k)
            elif name == "hit":
                value = hit_at_k(hits, n_rel, k)
            elif name == "mrr":
                value = mrr_at_k(hits, n_rel, k)
            elif name == "map":
                value = map_at_k(hits, n_rel, k)
            else:
                raise ValueError(f"unknown metric {name!r}; valid: {', '.join(METRIC_NAMES)}")
            out[f"{name}@{k}"] = value
    return out
