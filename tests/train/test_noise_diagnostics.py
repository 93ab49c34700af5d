"""Noise diagnostics: (grouped) AUROC by ranks, and the per-user loss diagnostic."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from recsys.config import StrictModel
from recsys.errors import ConfigError, RecsysError
from recsys.losses import LOSSES
from recsys.models import build_model
from recsys.models.base import Model, Scorer
from recsys.samplers import SAMPLERS
from recsys.spec import DataSpec
from recsys.train.config import TrainConfig
from recsys.train.loop import fit
from recsys.train.noise_diagnostics import NoiseDiagnostic, auroc, grouped_auroc
from recsys.types import Interactions
from tests.contract.toy_data import block_spec, make_spec


def pairwise_auroc(scores: list[float], labels: list[bool]) -> float:
    """P(s_pos > s_neg) + 0.5 P(s_pos = s_neg) over all (positive, negative) pairs."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not pos or not neg:
        return math.nan
    wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-12)


# --- auroc -------------------------------------------------------------------------------------


@settings(derandomize=True, max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(-3, 3), st.booleans()), min_size=0, max_size=40),
    st.sampled_from([torch.float32, torch.float64, torch.int64]),
)
def test_auroc_matches_pairwise_count(pairs: list[tuple[int, bool]], dtype: torch.dtype) -> None:
    scores = [float(s) / 2 for s, _ in pairs] if dtype.is_floating_point else [s for s, _ in pairs]
    labels = [y for _, y in pairs]
    got = auroc(torch.tensor(scores, dtype=dtype), torch.tensor(labels, dtype=torch.bool))
    assert same(got, pairwise_auroc(scores, labels))


def test_auroc_known_cases() -> None:
    labels = torch.tensor([False, False, True, True])
    assert auroc(torch.tensor([0.1, 0.2, 0.8, 0.9]), labels) == 1.0
    assert auroc(torch.tensor([0.8, 0.9, 0.1, 0.2]), labels) == 0.0
    assert auroc(torch.full((4,), 3.0), labels) == 0.5
    # One positive above one negative, tied with the other: (1 + 0.5) / 2 per positive.
    assert auroc(torch.tensor([0.0, 1.0, 1.0]), torch.tensor([False, False, True])) == 0.75
    # Infinities tie with each other.
    inf = math.inf
    assert auroc(torch.tensor([inf, inf, -inf]), torch.tensor([True, False, False])) == 0.75
    assert math.isnan(auroc(torch.tensor([1.0, 2.0]), torch.tensor([True, True])))
    assert math.isnan(auroc(torch.tensor([1.0, 2.0]), torch.tensor([False, False])))
    assert math.isnan(auroc(torch.tensor([]), torch.tensor([], dtype=torch.bool)))


def test_auroc_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="NaN"):
        auroc(torch.tensor([0.0, math.nan]), torch.tensor([True, False]))
    with pytest.raises(ValueError, match="bool"):
        auroc(torch.tensor([0.0, 1.0]), torch.tensor([1, 0]))
    with pytest.raises(ValueError, match="same length"):
        auroc(torch.tensor([0.0, 1.0]), torch.tensor([True]))


# --- grouped_auroc -----------------------------------------------------------------------------


@settings(derandomize=True, max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 3), st.booleans()), min_size=0, max_size=60
    ),
    st.integers(0, 3),
)
def test_grouped_auroc_matches_per_group_loop(
    rows: list[tuple[int, int, bool]], extra_groups: int
) -> None:
    groups = [g for g, _, _ in rows]
    scores = [float(s) for _, s, _ in rows]
    labels = [y for _, _, y in rows]
    n_groups = (max(groups) + 1 if groups else 0) + extra_groups  # some groups stay empty
    res = grouped_auroc(
        torch.tensor(groups, dtype=torch.int64),
        torch.tensor(scores),
        torch.tensor(labels, dtype=torch.bool),
        n_groups=n_groups,
    )
    ref, without, all_noise = [], 0, 0
    for g in range(n_groups):
        ys = [y for gg, y in zip(groups, labels, strict=True) if gg == g]
        ss = [s for gg, s in zip(groups, scores, strict=True) if gg == g]
        ref.append(pairwise_auroc(ss, ys))
        without += bool(ys) and not any(ys)
        all_noise += bool(ys) and all(ys)
    assert res.per_group.shape == (n_groups,) and res.per_group.dtype == torch.float64
    assert all(same(a, b) for a, b in zip(res.per_group.tolist(), ref, strict=True))
    scored = [a for a in ref if not math.isnan(a)]
    assert res.n_scored == len(scored)
    assert same(res.mean, sum(scored) / len(scored) if scored else math.nan)
    assert (res.n_without_noise, res.n_all_noise) == (without, all_noise)


def test_grouped_auroc_is_order_free_and_uses_default_group_count() -> None:
    gen = torch.Generator().manual_seed(0)
    n = 5000
    groups = torch.randint(0, 50, (n,), generator=gen)
    scores = torch.randint(0, 20, (n,), generator=gen).float()
    labels = torch.rand(n, generator=gen) < 0.3
    res = grouped_auroc(groups, scores, labels)
    perm = torch.randperm(n, generator=gen)
    shuffled = grouped_auroc(groups[perm], scores[perm], labels[perm])
    assert res.per_group.shape == (int(groups.max()) + 1,)
    assert torch.equal(res.per_group, shuffled.per_group) and res.mean == shuffled.mean
    # Shifting each group's scores by its own constant changes no within-group rank.
    shifted = grouped_auroc(groups, scores + 100.0 * groups, labels)
    assert torch.allclose(res.per_group, shifted.per_group, equal_nan=True)
    # Single group: equals the plain AUROC.
    assert grouped_auroc(torch.zeros(n, dtype=torch.int64), scores, labels).mean == pytest.approx(
        auroc(scores, labels), abs=1e-12
    )


def test_grouped_auroc_rejects_out_of_range_groups() -> None:
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        grouped_auroc(
            torch.tensor([0, 2]), torch.tensor([0.0, 1.0]), torch.tensor([1, 0]) > 0, n_groups=2
        )
    with pytest.raises(ValueError, match="integers"):
        grouped_auroc(torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([True]))


# --- NoiseDiagnostic ---------------------------------------------------------------------------


class _NoConfig(StrictModel):
    pass


class FixedScores(Model):
    """Scores read from a fixed ``(n_users, n_items)`` matrix; records the block sizes."""

    Config = _NoConfig

    def __init__(self, spec: DataSpec, scores: Tensor) -> None:
        super().__init__(_NoConfig(), spec)
        self.table = torch.nn.Parameter(scores.clone(), requires_grad=False)
        self.blocks: list[int] = []

    def scorer(self) -> Scorer:
        def score(users: Tensor) -> Tensor:
            self.blocks.append(int(users.numel()))
            return self.table[users]

        return score


# Each user of 0..2 has every item but one in train, so their negative is forced.
#   user 0: items 0,1,2 (negative 3); user 1: items 1,2,3 (negative 0);
#   user 2: items 0,2,3 (negative 1); user 3: items 0,1 (negatives 2 or 3, equal scores);
#   user 4: no train item.
TRAIN = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (1, 3), (2, 0), (2, 2), (2, 3), (3, 0), (3, 1)]
NOISE = [False, False, True, True, False, False, False, False, False, True, True]
SCORES = torch.tensor(
    [
        [2.0, 1.0, 0.0, 0.5],
        [0.0, 3.0, 1.0, 2.0],
        [1.0, 0.0, 2.0, 3.0],
        [1.0, 2.0, -1.0, -1.0],
        [0.0, 0.0, 0.0, 0.0],
    ],
    dtype=torch.float64,
)
# loss = softplus(s(u, j_u) - s(u, i)), row by row.
DIFFS = [0.5 - 2, 0.5 - 1, 0.5 - 0, 0 - 3, 0 - 1, 0 - 2, 0 - 1, 0 - 2, 0 - 3, -1 - 1, -1 - 2]


def hand_spec(noise: list[bool] | None = NOISE) -> DataSpec:
    spec = make_spec(TRAIN, n_users=5, n_items=4)
    if noise is not None:
        spec.train_noise = torch.tensor(noise)
    return spec


def test_hand_checked_values() -> None:
    spec = hand_spec()
    model = FixedScores(spec, SCORES)
    diag = NoiseDiagnostic(spec, seed=3)
    assert diag.negatives(1)[:3].tolist() == [3, 0, 1]
    losses = diag.train_losses(model, 1)
    expected = F.softplus(torch.tensor(DIFFS, dtype=torch.float64))
    assert torch.allclose(losses, expected, atol=1e-12)
    out = diag(model, 1)
    assert set(out) == {
        "noise/auroc_global",
        "noise/auroc_user",
        "noise/users_scored",
        "noise/users_without_noise",
        "noise/loss_clean",
        "noise/loss_noisy",
    }
    # User 0: the noisy item 2 has the highest loss (1.0); user 1: the noisy item 1 the lowest
    # (0.0); user 2 has no noise, user 3 only noise, user 4 nothing.
    assert out["noise/auroc_user"] == 0.5
    assert out["noise/users_scored"] == 2.0 and out["noise/users_without_noise"] == 1.0
    # Globally (loss grows with the diff): noisy diffs 0.5, -3, -2, -3 against clean diffs
    # -1.5, -0.5, -1, -2, -1, -2, -3: 0.5 beats all 7; each -3 ties one; -2 beats one, ties two.
    assert out["noise/auroc_global"] == pytest.approx(pairwise_auroc(DIFFS, NOISE))
    assert out["noise/auroc_global"] == pytest.approx((7 + 0.5 + (1 + 1) + 0.5) / 28)
    noisy = [d for d, y in zip(DIFFS, NOISE, strict=True) if y]
    clean = [d for d, y in zip(DIFFS, NOISE, strict=True) if not y]
    assert out["noise/loss_noisy"] == pytest.approx(float(F.softplus(torch.tensor(noisy)).mean()))
    assert out["noise/loss_clean"] == pytest.approx(float(F.softplus(torch.tensor(clean)).mean()))


def test_block_size_does_not_change_the_result() -> None:
    spec = block_spec(n_users=37, n_items=25, seed=2)
    gen = torch.Generator().manual_seed(5)
    spec.train_noise = torch.rand(len(spec.train), generator=gen) < 0.2
    model = FixedScores(spec, torch.randn(spec.n_users, spec.n_items, generator=gen))
    ref = NoiseDiagnostic(spec, seed=1, block_users=1024)(model, 4)
    assert model.blocks == [37]
    for block in (1, 2, 7, 36, 37):
        model.blocks.clear()
        assert NoiseDiagnostic(spec, seed=1, block_users=block)(model, 4) == ref
        assert max(model.blocks) == block and sum(model.blocks) == 37


def test_losses_use_one_shared_non_train_negative_per_user() -> None:
    spec = block_spec(n_users=20, n_items=16, seed=3)
    spec.train_noise = torch.zeros(len(spec.train), dtype=torch.bool)
    scores = torch.randn(20, 16, generator=torch.Generator().manual_seed(1))
    diag = NoiseDiagnostic(spec, seed=0, block_users=3)
    neg = diag.negatives(2)
    train = torch.zeros(20, 16, dtype=torch.bool)
    train[spec.train.users, spec.train.items] = True
    assert not train[torch.arange(20), neg].any()
    u, i = spec.train.users, spec.train.items
    expected = F.softplus(scores[u, neg[u]].double() - scores[u, i].double())
    assert torch.equal(diag.train_losses(FixedScores(spec, scores), 2), expected)


def test_reproducible_per_seed_and_epoch_and_different_across_epochs() -> None:
    spec = block_spec(n_users=30, n_items=20, seed=4)
    gen = torch.Generator().manual_seed(2)
    spec.train_noise = torch.rand(len(spec.train), generator=gen) < 0.3
    model = FixedScores(spec, torch.randn(30, 20, generator=gen))
    a = NoiseDiagnostic(spec, seed=9)
    torch.manual_seed(0)  # the global RNG plays no part
    first = a(model, 1)
    torch.rand(100)
    assert NoiseDiagnostic(spec, seed=9)(model, 1) == first
    assert torch.equal(a.negatives(1), NoiseDiagnostic(spec, seed=9).negatives(1))
    assert not torch.equal(a.negatives(1), a.negatives(2))
    assert not torch.equal(a.negatives(1), NoiseDiagnostic(spec, seed=10).negatives(1))
    assert a(model, 2) != first


def test_errors() -> None:
    with pytest.raises(RecsysError, match="train_noise is None"):
        NoiseDiagnostic(hand_spec(None), seed=0)
    with pytest.raises(RecsysError, match="bool of shape"):
        NoiseDiagnostic(hand_spec([True, False]), seed=0)
    with pytest.raises(ConfigError, match="block_users"):
        NoiseDiagnostic(hand_spec(), seed=0, block_users=0)


def test_runs_inside_the_training_loop() -> None:
    spec = block_spec(n_users=24, n_items=16, seed=5)
    # Noise: a few extra train rows on the other group's items.
    users = torch.arange(0, 24, 3)
    items = torch.where(users < 12, 12, 2)
    train = Interactions(torch.cat([spec.train.users, users]), torch.cat([spec.train.items, items]))
    spec = make_spec(train, 24, 16, spec.valid)
    spec.train_noise = torch.arange(len(train)) >= len(train) - users.numel()
    model = build_model("mf", None, spec, seed=0)
    cfg = TrainConfig(epochs=2, batch_size=64)
    res = fit(
        model,
        [LOSSES["bpr"]()],
        SAMPLERS["uniform"](),
        spec,
        cfg,
        seed=0,
        diagnostics=[NoiseDiagnostic(spec, seed=0, block_users=5)],
    )
    has_train = torch.bincount(train.users, minlength=24) > 0
    has_noise = torch.bincount(users, minlength=24) > 0
    has_clean = torch.bincount(train.users[~spec.train_noise], minlength=24) > 0
    for row in res.history:
        assert row["noise/users_scored"] == int((has_noise & has_clean).sum())
        assert row["noise/users_without_noise"] == int((has_train & ~has_noise).sum())
        assert 0.0 <= row["noise/auroc_user"] <= 1.0
