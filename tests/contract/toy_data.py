"""Hand-built DataSpecs for model, sampler and training-loop tests (no files, no polars)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from recsys.spec import DataSpec
from recsys.types import Interactions, ItemFeatures


def make_spec(
    train: list[tuple[int, int]] | Interactions,
    n_users: int,
    n_items: int,
    valid: list[tuple[int, int]] | Interactions | None = None,
    name: str = "toy",
) -> DataSpec:
    """A DataSpec from explicit pairs (``test`` mirrors ``valid``)."""
    tr = _pairs(train)
    va = _pairs(valid if valid is not None else [])
    has_train = torch.bincount(tr.users, minlength=n_users) > 0
    has_valid = torch.bincount(va.users, minlength=n_users) > 0
    eval_users = torch.nonzero(has_train & has_valid).squeeze(1)
    return DataSpec(
        name=name,
        data_hash="0" * 16,
        n_users=n_users,
        n_items=n_items,
        train=tr,
        valid=va,
        test=va,
        user_ids=np.array([f"u{i}" for i in range(n_users)]),
        item_ids=np.array([f"i{i}" for i in range(n_items)]),
        eval_users_valid=eval_users,
        eval_users_test=eval_users,
    )


def _pairs(pairs: list[tuple[int, int]] | Interactions) -> Interactions:
    if isinstance(pairs, Interactions):
        return pairs
    arr = torch.tensor(pairs, dtype=torch.int64).reshape(-1, 2)
    return Interactions(arr[:, 0].contiguous(), arr[:, 1].contiguous())


def block_spec(n_users: int = 40, n_items: int = 30, keep: float = 0.5, seed: int = 0) -> DataSpec:
    """Two user groups, each liking one half of the items ("checkerboard").

    Each user has a random ``keep`` share of their group's items in train and the rest in
    valid; nobody touches the other group's items.
    """
    gen = torch.Generator().manual_seed(seed)
    users = torch.arange(n_users).repeat_interleave(n_items)
    items = torch.arange(n_items).repeat(n_users)
    same_group = (users < n_users // 2) == (items < n_items // 2)
    coin = torch.rand(users.shape, generator=gen) < keep
    tr, va = same_group & coin, same_group & ~coin
    return make_spec(
        Interactions(users[tr], items[tr]), n_users, n_items, Interactions(users[va], items[va])
    )


def with_features(spec: DataSpec, seed: int = 0) -> DataSpec:
    """``spec`` with two synthetic item modalities that follow its item groups.

    ``a`` (6-d, items 0 and 1 missing, policy ``learned``) and ``b`` (4-d, complete): each
    item's features are its group's centre plus noise, so content-based models can learn.
    """
    gen = torch.Generator().manual_seed(seed)
    group = (torch.arange(spec.n_items) < spec.n_items // 2).float().unsqueeze(1)
    feats = {}
    for name, dim in (("a", 6), ("b", 4)):
        centre = torch.randn(2, dim, generator=gen)
        values = group * centre[0] + (1 - group) * centre[1]
        values = values + 0.3 * torch.randn(spec.n_items, dim, generator=gen)
        missing = torch.zeros(spec.n_items, dtype=torch.bool)
        if name == "a":
            missing[:2] = True
            values[missing] = 0.0
        feats[name] = ItemFeatures(name, values, missing, "learned", "synthetic")
    spec.features = feats
    return spec


def held_out_auc(scores: torch.Tensor, spec: DataSpec) -> float:
    """Mean over users of P(valid item scores above an item of the other group).

    Args:
        scores: ``(n_users, n_items)``.
    """
    n_users, n_items = scores.shape
    other = (torch.arange(n_users)[:, None] < n_users // 2) != (
        torch.arange(n_items)[None, :] < n_items // 2
    )
    pos = torch.zeros(n_users, n_items, dtype=torch.bool)
    pos[spec.valid.users, spec.valid.items] = True
    aucs = []
    for u in spec.eval_users_valid.tolist():
        p, n = scores[u][pos[u]], scores[u][other[u]]
        aucs.append((p[:, None] > n[None, :]).float().mean())
    return float(torch.stack(aucs).mean())


def ml100k_path() -> Path | None:
    """RecBole's bundled ml-100k ``.inter`` file, or None when recbole is not installed."""
    found = importlib.util.find_spec("recbole")
    if found is None or not found.submodule_search_locations:
        return None
    base = Path(next(iter(found.submodule_search_locations)))
    path = base / "dataset_example" / "ml-100k" / "ml-100k.inter"
    return path if path.is_file() else None


def ml100k_spec(train_share: float = 0.8, seed: int = 0) -> DataSpec | None:
    """ml-100k with a random per-row split (train / valid), or None when unavailable."""
    path = ml100k_path()
    if path is None:
        return None
    raw = np.loadtxt(path, skiprows=1, usecols=(0, 1), dtype=np.int64)
    _, u = np.unique(raw[:, 0], return_inverse=True)
    _, i = np.unique(raw[:, 1], return_inverse=True)
    mask = np.random.default_rng(seed).random(len(u)) < train_share
    tu, ti = torch.from_numpy(u[mask]), torch.from_numpy(i[mask])
    vu, vi = torch.from_numpy(u[~mask]), torch.from_numpy(i[~mask])
    return make_spec(
        Interactions(tu, ti), int(u.max()) + 1, int(i.max()) + 1, Interactions(vu, vi), "ml-100k"
    )
