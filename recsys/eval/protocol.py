"""Exact full-ranking evaluation: every item is a candidate, seen items are masked.

For each user in ``spec.eval_users_<split>`` (users with at least one train item and one item
in the split) the scorer scores ALL items; the user's train items (and, at test time with
``test_mask="train_valid"``, valid items) are set to ``-inf``; the top ``K = max(ks)`` items are
taken by :func:`recsys.eval.topk.topk` (score descending, ties by lower item index, exact even
when ties straddle the cut); the ground truth is the user's items in that split, and the metrics
of :mod:`recsys.eval.metrics` are computed per user.

Conventions of the reference codes (read from their evaluation functions) and the
:class:`~recsys.eval.config.EvalConfig` that reproduces each:

* **LightGCN-PyTorch** (gusye1234, ``Procedure.Test`` + ``utils.NDCGatK_r``): evaluated users are
  the users of the test dict; train items are set to ``-1024`` (no validation split exists);
  ``torch.topk`` (arbitrary ties); NDCG's IDCG is over ``min(|test_u|, K)`` positions
  (``test_matrix[i, :min(K, |test_u|)] = 1``); recall, precision and NDCG are summed over users
  and divided by the number of test users. Reproduced by the defaults: ``idcg="truncated"``,
  ``average="evaluated"`` (and ``test_mask`` is moot without a validation split).
* **MMRec** (enoche, ``common/trainer.evaluate`` + ``utils/topk_evaluator`` +
  ``utils/metrics``): users of the evaluated split (cold-start users dropped); at validation AND
  test only train items are masked (``-1e10``; both loaders get ``additional_dataset=train``);
  ``torch.topk``; NDCG's IDCG over ``min(|test_u|, K)``; MAP divides by ``min(|test_u|, K)``;
  every metric is a mean over evaluated users. Reproduced by ``test_mask="train"``,
  ``idcg="truncated"``, ``average="evaluated"``.
* **PLD** (Kaike-Zhang, ``utls/trainer.CFTrainer._eval_model``): loops over ALL users
  ``0..n_users-1``; validation masks train items, test masks train + valid items (``-inf``);
  ``torch.topk``; NDCG's IDCG sums ``1/log2(i+2)`` over all ``|test_u|`` items (not truncated at
  K) while DCG is truncated at K; recall and NDCG sums are divided by ``n_users`` (users without
  split items contribute 0; in PLD's own split every user has some). Reproduced by
  ``idcg="full"``, ``average="all_users"``, ``test_mask="train_valid"``.

None of them breaks ties deterministically; we do (score desc, item index asc), so numbers can
differ from theirs only where a model's scores tie at the cut (e.g. most-popular).

Batch-size independence: GEMM kernels may return last-bit-different scores for the same row when
the number of rows differs (measured on CPU: 1 or 7 rows differ from 2048 rows, 100+ do not).
So the scorer is ALWAYS called on blocks of exactly :data:`SCORE_BLOCK` users, the last block
padded by repeating its last user and the padding dropped. Scoring, masking and top-k run per
block (peak memory ``SCORE_BLOCK × n_items`` scores, whatever ``cfg.batch_users``);
``cfg.batch_users`` only sets how many users' top-k lists and hits stay on the score device before
one transfer to the host (fewer synchronisations on GPU). Results are identical for every
``cfg.batch_users``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from recsys.errors import ConfigError, DataError, RecsysError
from recsys.eval.config import EvalConfig
from recsys.eval.metrics import compute_metrics
from recsys.eval.topk import topk
from recsys.models.base import Model, eval_mode, model_device
from recsys.spec import DataSpec
from recsys.types import Interactions

logger = logging.getLogger(__name__)

SCORE_BLOCK = 256
"""Users per scorer call; fixed so that GEMM shapes never depend on the batch size."""

SPLITS = ("valid", "test")


@dataclass
class EvalResult:
    """Outcome of one full-ranking evaluation.

    Attributes:
        split: ``"valid"`` or ``"test"``.
        summary: ``"ndcg@20"`` -> mean over evaluated users (or per-user sum / ``n_users`` when
            ``average="all_users"``).
        users: ``(n_eval,)`` evaluated ``user_idx``, sorted.
        per_user: ``"ndcg@20"`` -> ``(n_eval,)`` float64 values aligned with ``users``.
        topk: ``(n_eval, export_k)`` recommended ``item_idx`` (rank order) for the test split when
            ``cfg.export_topk > 0``, else None. Entries are ``-1`` where fewer unmasked items
            than ``export_k`` exist.
        n_users_evaluated: ``len(users)``.
        protocol: how the numbers were obtained (masking, idcg, average, ks, candidates, ...).
    """

    split: str
    summary: dict[str, float]
    users: np.ndarray
    per_user: dict[str, np.ndarray]
    topk: np.ndarray | None
    n_users_evaluated: int
    protocol: dict[str, Any] = field(default_factory=dict)


def _sorted_keys(inter: Interactions, n_items: int, unique: bool) -> Tensor:
    """Sorted ``user * n_items + item`` int64 keys (deduplicated when ``unique``)."""
    keys = inter.users.to(torch.int64) * n_items + inter.items.to(torch.int64)
    if unique:
        return torch.unique(keys, sorted=True)
    return torch.sort(keys).values


def _rows_and_items(keys: Tensor, users: Tensor, n_items: int) -> tuple[Tensor, Tensor]:
    """Every ``(row, item)`` pair of ``keys`` belonging to ``users``, vectorised.

    Args:
        keys: sorted ``(M,)`` int64 keys ``user * n_items + item``.
        users: ``(B,)`` int64 user indices (row ``r`` of the block is ``users[r]``).
        n_items: catalogue size.

    Returns:
        ``(rows (P,), items (P,))`` int64 on ``keys``' device.
    """
    lo = torch.searchsorted(keys, users * n_items)
    hi = torch.searchsorted(keys, (users + 1) * n_items)
    counts = hi - lo
    total = int(counts.sum())
    rows = torch.repeat_interleave(torch.arange(len(users), device=keys.device), counts)
    if total == 0:
        return rows, rows
    offsets = torch.cumsum(counts, 0) - counts
    positions = torch.arange(total, device=keys.device) - offsets[rows] + lo[rows]
    items = keys[positions] - users[rows] * n_items
    return rows, items


def _count_per_user(keys: Tensor, users: Tensor, n_items: int) -> Tensor:
    """``(B,)`` number of keys of each user."""
    lo = torch.searchsorted(keys, users * n_items)
    hi = torch.searchsorted(keys, (users + 1) * n_items)
    return hi - lo


def _is_member(keys: Tensor, queries: Tensor) -> Tensor:
    """Bool tensor shaped like ``queries``: is each query in the sorted ``keys``."""
    if keys.numel() == 0:
        return torch.zeros_like(queries, dtype=torch.bool)
    pos = torch.searchsorted(keys, queries).clamp(max=keys.numel() - 1)
    return keys[pos] == queries


def _check_config(cfg: EvalConfig, split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"eval split must be one of {SPLITS}, got {split!r}")
    if not cfg.ks or any(k < 1 for k in cfg.ks):
        raise ConfigError(f"eval.ks must be a non-empty list of positive ints, got {cfg.ks}")
    if not cfg.metrics:
        raise ConfigError("eval.metrics must name at least one metric")
    if cfg.batch_users < 1:
        raise ConfigError(f"eval.batch_users must be >= 1, got {cfg.batch_users}")
    if cfg.export_topk < 0:
        raise ConfigError(f"eval.export_topk must be >= 0, got {cfg.export_topk}")


def describe_protocol(spec: DataSpec, split: str, cfg: EvalConfig, n_eval: int) -> dict[str, Any]:
    """The protocol record stored with every result (for reports)."""
    masked = "train+valid" if split == "test" and cfg.test_mask == "train_valid" else "train"
    return {
        "split": split,
        "candidates": "all items",
        "n_items": spec.n_items,
        "masking": masked,
        "users_evaluated": n_eval,
        "users_rule": f"users with >= 1 train item and >= 1 {split} item",
        "ks": list(cfg.ks),
        "metrics": list(cfg.metrics),
        "idcg": cfg.idcg,
        "average": cfg.average,
        "denominator": spec.n_users if cfg.average == "all_users" else n_eval,
        "ties": "score descending, then lower item index",
        "test_mask": cfg.test_mask,
        "score_block": SCORE_BLOCK,
    }


@torch.no_grad()
def evaluate(
    scorer: Callable[[Tensor], Tensor],
    spec: DataSpec,
    split: str,
    cfg: EvalConfig,
    device: torch.device | str = "cpu",
) -> EvalResult:
    """Full-ranking evaluation of ``scorer`` on one split.

    Args:
        scorer: maps ``(B,)`` int64 user indices (on ``device``) to ``(B, n_items)`` scores; it
            is always called with exactly :data:`SCORE_BLOCK` users.
        spec: the prepared dataset.
        split: ``"valid"`` or ``"test"``.
        cfg: metrics, cut-offs and conventions.
        device: where user indices are sent. Masking, top-k and hit lookup run on the device of
            the returned scores (GPU when the scorer returns CUDA tensors).

    Returns:
        An :class:`EvalResult` with per-user metrics for the evaluated users.

    Raises:
        ConfigError: bad split or config values.
        DataError: no user to evaluate on the split.
        RecsysError: the scorer returned a wrong shape or NaN scores.
    """
    _check_config(cfg, split)
    users_all = (spec.eval_users_valid if split == "valid" else spec.eval_users_test).to(
        device="cpu", dtype=torch.int64
    )
    n_eval = int(users_all.numel())
    if n_eval == 0:
        raise DataError(
            f"dataset {spec.name!r}: no user has both train and {split} items; "
            f"nothing to evaluate on the {split} split"
        )
    n_items = spec.n_items
    k_metrics = max(cfg.ks)
    export_k = cfg.export_topk if split == "test" else 0
    k_rank = min(max(k_metrics, export_k), n_items)

    truth = spec.valid if split == "valid" else spec.test
    truth_keys = _sorted_keys(truth, n_items, unique=True)
    mask_parts = [spec.train_keys()]
    if split == "test" and cfg.test_mask == "train_valid" and len(spec.valid) > 0:
        mask_parts.append(_sorted_keys(spec.valid, n_items, unique=False))
    mask_keys = mask_parts[0] if len(mask_parts) == 1 else torch.sort(torch.cat(mask_parts)).values
    n_rel = _count_per_user(truth_keys, users_all, n_items)

    # Results of a chunk stay on the score device and move to the host once per chunk.
    chunk = max(SCORE_BLOCK, -(-cfg.batch_users // SCORE_BLOCK) * SCORE_BLOCK)
    items_parts: list[Tensor] = []
    finite_parts: list[Tensor] = []
    hits_parts: list[Tensor] = []
    score_device: torch.device | None = None
    for c_start in range(0, n_eval, chunk):
        c_users = users_all[c_start : c_start + chunk]
        c_items, c_finite, c_hits, c_nan = [], [], [], []
        for b_start in range(0, len(c_users), SCORE_BLOCK):
            block = c_users[b_start : b_start + SCORE_BLOCK]
            n_real = len(block)
            if n_real < SCORE_BLOCK:
                block = torch.cat([block, block[-1:].expand(SCORE_BLOCK - n_real)])
            scores = _own_scores(scorer(block.to(device)), n_items)
            if score_device is None:
                score_device = scores.device
                truth_keys = truth_keys.to(score_device)
                mask_keys = mask_keys.to(score_device)
            scores = scores[:n_real]
            users_dev = block[:n_real].to(score_device)
            rows, items = _rows_and_items(mask_keys, users_dev, n_items)
            scores[rows, items] = -torch.inf
            values, indices = topk(scores, k_rank)
            finite = values > -torch.inf
            keys = users_dev.unsqueeze(1) * n_items + indices[:, :k_metrics]
            c_hits.append(_is_member(truth_keys, keys) & finite[:, :k_metrics])
            c_items.append(indices)
            c_finite.append(finite)
            c_nan.append(torch.isnan(values[:, :1]).any())
        if bool(torch.stack(c_nan).any()):
            raise RecsysError(f"scorer returned NaN scores on the {split} split (diverged model?)")
        items_parts.append(torch.cat(c_items).cpu())
        finite_parts.append(torch.cat(c_finite).cpu())
        hits_parts.append(torch.cat(c_hits).cpu())

    topk_items = torch.cat(items_parts)
    topk_valid = torch.cat(finite_parts)
    hits = torch.cat(hits_parts)
    if hits.shape[1] < k_metrics:
        # Fewer items than the largest cut-off: the missing ranks are misses.
        pad = torch.zeros((n_eval, k_metrics - hits.shape[1]), dtype=torch.bool)
        hits = torch.cat([hits, pad], dim=1)
    per_user_t = compute_metrics(hits, n_rel, cfg.ks, cfg.metrics, cfg.idcg)
    per_user = {name: value.numpy() for name, value in per_user_t.items()}
    denom = spec.n_users if cfg.average == "all_users" else n_eval
    summary = {name: float(np.sum(value) / denom) for name, value in per_user.items()}

    exported: np.ndarray | None = None
    if export_k > 0:
        width = min(export_k, k_rank)
        exported = torch.where(
            topk_valid[:, :width], topk_items[:, :width], torch.full_like(topk_items[:, :width], -1)
        ).numpy()

    logger.debug(
        "%s: %d users, %s",
        split,
        n_eval,
        ", ".join(f"{name}={value:.4f}" for name, value in summary.items()),
    )
    return EvalResult(
        split=split,
        summary=summary,
        users=users_all.numpy().copy(),
        per_user=per_user,
        topk=exported,
        n_users_evaluated=n_eval,
        protocol=describe_protocol(spec, split, cfg, n_eval),
    )


def _own_scores(raw: Tensor, n_items: int) -> Tensor:
    """Check the scorer's output and return a tensor that may be masked in place.

    A view (e.g. an expanded popularity vector) or a non-contiguous result is copied, so the
    scorer's own buffers are never modified; a fresh matrix (the usual ``U[u] @ I.T``) is used
    as is.
    """
    if raw.dim() != 2 or raw.shape != (SCORE_BLOCK, n_items):
        raise RecsysError(
            f"scorer returned shape {tuple(raw.shape)}, expected ({SCORE_BLOCK}, {n_items})"
        )
    raw = raw.detach()
    if not raw.is_floating_point():
        return raw.to(torch.float32)
    if raw._base is not None or not raw.is_contiguous():
        return raw.clone(memory_format=torch.contiguous_format)
    return raw


def evaluate_model(model: Model, spec: DataSpec, split: str, cfg: EvalConfig) -> EvalResult:
    """Evaluate a model: eval mode, no gradients, its scorer on its parameters' device.

    The model's train/eval mode is restored afterwards.

    Args:
        model: a built (and trained) model.
        spec: the prepared dataset.
        split: ``"valid"`` or ``"test"``.
        cfg: evaluation config.

    Returns:
        The :class:`EvalResult`.
    """
    with torch.no_grad(), eval_mode(model):
        scorer = model.scorer_for(split)
        return evaluate(scorer, spec, split, cfg, device=model_device(model))
