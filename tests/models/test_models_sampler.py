"""Uniform negative sampling: coverage, exclusion of positives, determinism, uniformity."""

from __future__ import annotations

import pytest
import torch

from recsys.errors import DataError
from recsys.samplers import SAMPLERS
from recsys.samplers.uniform import (
    UniformConfig,
    UniformSampler,
    _exact_negatives,
    sample_negatives,
)
from tests.contract.toy_data import make_spec, ml100k_spec


def all_batches(spec, sampler, batch_size, seed=0):  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(seed)
    return list(sampler.epoch(spec, batch_size, g, None))


def is_positive(spec, users, items):  # type: ignore[no-untyped-def]
    keys = spec.train_keys()
    q = users * spec.n_items + items
    idx = torch.searchsorted(keys, q).clamp(max=len(keys) - 1)
    return keys[idx] == q


def test_ml100k_epoch_covers_train_once_and_never_samples_positives() -> None:
    spec = ml100k_spec()
    if spec is None:
        pytest.skip("recbole's bundled ml-100k is not installed")
    sampler = SAMPLERS["uniform"](UniformConfig(n_negatives=3))
    batches = all_batches(spec, sampler, 2048)
    n = len(spec.train)
    assert len(batches) == -(-n // 2048)
    assert all(len(b) == 2048 for b in batches[:-1])
    users = torch.cat([b.users for b in batches])
    pos = torch.cat([b.pos_items for b in batches])
    neg = torch.cat([b.neg_items for b in batches])
    assert neg.shape == (n, 3)
    got = torch.sort(users * spec.n_items + pos).values
    assert torch.equal(got, spec.train_keys())
    assert not is_positive(spec, users.repeat_interleave(3), neg.reshape(-1)).any()
    assert neg.min() >= 0 and neg.max() < spec.n_items


def test_dense_user_with_one_free_item() -> None:
    n_items = 50
    train = [(0, i) for i in range(n_items) if i != 17] + [(1, 3), (1, 4)]
    spec = make_spec(train, 2, n_items)
    batches = all_batches(spec, UniformSampler(UniformConfig(n_negatives=4)), 16)
    for b in batches:
        assert not is_positive(spec, b.users.repeat_interleave(4), b.neg_items.reshape(-1)).any()
        dense_rows = b.neg_items[b.users == 0]
        assert (dense_rows == 17).all()


def test_exact_fallback_is_uniform_over_non_positives() -> None:
    n_items = 12
    positives = {0: [0, 1, 2, 5, 6, 7, 8, 9, 10, 11], 1: [1, 4], 2: []}
    train = [(u, i) for u, items in positives.items() for i in items]
    spec = make_spec(train, 3, n_items)
    g = torch.Generator().manual_seed(1)
    users = torch.tensor([0, 1, 2]).repeat(6000)
    items = _exact_negatives(spec, users, g)
    for u, pos in positives.items():
        drawn = items[users == u]
        allowed = sorted(set(range(n_items)) - set(pos))
        counts = torch.bincount(drawn, minlength=n_items)
        assert int(counts[pos].sum()) == 0
        share = counts[allowed].float() / drawn.numel()
        assert torch.allclose(share, torch.full_like(share, 1 / len(allowed)), atol=0.03)


def test_user_with_every_item_raises() -> None:
    spec = make_spec([(0, 0), (0, 1), (0, 2), (1, 0)], 2, 3)
    with pytest.raises(DataError, match="every item"):
        sample_negatives(spec, torch.tensor([1, 0]), torch.Generator().manual_seed(0))


def test_same_generator_state_same_epoch() -> None:
    spec = make_spec([(u, (u * 7 + k) % 20) for u in range(10) for k in range(5)], 10, 20)
    a = all_batches(spec, UniformSampler(), 8, seed=5)
    b = all_batches(spec, UniformSampler(), 8, seed=5)
    c = all_batches(spec, UniformSampler(), 8, seed=6)
    assert all(torch.equal(x.neg_items, y.neg_items) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x.users, y.users) for x, y in zip(a, c, strict=True))
