"""PLD and user-based samplers: pools, choice law, exclusion, warm-up, noise on planted data."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from recsys.losses import LOSSES
from recsys.models import build_model
from recsys.samplers import SAMPLERS
from recsys.samplers.per_user import draw_pool, draw_users
from recsys.samplers.pld import PLDConfig, PLDSampler
from recsys.spec import DataSpec
from recsys.train.config import TrainConfig
from recsys.train.loop import fit
from recsys.types import Interactions
from tests.contract.toy_data import make_spec


class TableProbe:
    """A probe whose scores come from a fixed ``(n_users, n_items)`` table."""

    def __init__(self, table: torch.Tensor) -> None:
        self.table = table
        self.calls = 0

    def scores(self, users: torch.Tensor) -> torch.Tensor:
        return self.table[users]

    def pair_scores(
        self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        return self.table[users, pos], self.table[users[:, None], neg]


def one_user_spec(n_pos: int, n_items: int) -> DataSpec:
    return make_spec([(0, i) for i in range(n_pos)], 1, n_items, [(0, n_items - 1)])


def choices(sampler: PLDSampler, spec: DataSpec, probe: TableProbe | None, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return sampler.batch(spec, n, g, probe).pos_items


def test_choice_frequencies_follow_softmax_of_negative_loss() -> None:
    # One user with exactly k positives: the pool is all of them, so P(i) = softmax(-l_i / tau).
    k, tau, n = 4, 0.5, 40_000
    spec = one_user_spec(k, 8)
    table = torch.zeros(1, 8)
    table[0, :k] = torch.tensor([2.0, 1.0, 0.0, -1.0])
    table[0, k:] = -0.5  # every negative scores the same, so the loss is known exactly
    sampler = PLDSampler(PLDConfig(pool_size=k, temperature=tau))
    got = torch.bincount(choices(sampler, spec, TableProbe(table), n), minlength=8)[:k] / n
    loss = torch.nn.functional.softplus(-0.5 - table[0, :k])
    want = torch.softmax(-loss / tau, dim=0)
    # 5 binomial standard errors
    assert torch.all((got - want).abs() <= 5 * torch.sqrt(want * (1 - want) / n))


def test_bce_criterion_uses_the_pointwise_loss() -> None:
    k, tau, n = 3, 1.0, 30_000
    spec = one_user_spec(k, 6)
    table = torch.zeros(1, 6)
    table[0, :k] = torch.tensor([1.5, 0.0, -1.5])
    table[0, k:] = 9.0  # a BPR rule would see huge losses; BCE ignores the negative
    sampler = PLDSampler(PLDConfig(pool_size=k, temperature=tau, criterion="bce"))
    got = torch.bincount(choices(sampler, spec, TableProbe(table), n), minlength=6)[:k] / n
    want = torch.softmax(-torch.nn.functional.softplus(-table[0, :k]) / tau, dim=0)
    assert torch.all((got - want).abs() <= 5 * torch.sqrt(want * (1 - want) / n))


def test_infinite_temperature_is_uniform_over_the_users_positives() -> None:
    # 10 positives, pools of 3: with tau = inf every positive is chosen with probability 1/10.
    spec = one_user_spec(10, 14)
    table = torch.linspace(-3, 3, 14)[None, :]
    sampler = PLDSampler(PLDConfig(pool_size=3, temperature=math.inf))
    n = 40_000
    got = torch.bincount(choices(sampler, spec, TableProbe(table), n), minlength=14) / n
    assert got[10:].sum() == 0
    assert torch.all((got[:10] - 0.1).abs() < 5 * math.sqrt(0.09 / n))


def test_pool_is_distinct_when_possible_and_uniform() -> None:
    spec = make_spec([(0, i) for i in range(7)] + [(1, 0), (1, 1)], 2, 9, [(0, 8)])
    g = torch.Generator().manual_seed(1)
    users = torch.tensor([0] * 20_000 + [1] * 50)
    rows = draw_pool(spec, users, 3, g)
    items = spec.train.items[rows]
    first = items[:20_000]
    assert torch.all(first.sort(dim=1).values.diff(dim=1) > 0)  # without replacement
    freq = torch.bincount(first.flatten(), minlength=9)[:7] / 20_000
    assert torch.all((freq - 3 / 7).abs() < 0.02)  # each positive in a pool w.p. k / n
    slot_freq = torch.bincount(first[:, 2], minlength=7)[:7] / 20_000
    assert torch.all((slot_freq - 1 / 7).abs() < 0.015)  # every slot is uniform too
    assert set(items[20_000:].flatten().tolist()) <= {0, 1}  # with replacement for |train_u| < k


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_users=st.integers(1, 6),
    n_items=st.integers(3, 12),
    k=st.integers(1, 6),
    warm=st.booleans(),
)
def test_positives_are_train_positives_and_negatives_are_not(
    seed: int, n_users: int, n_items: int, k: int, warm: bool
) -> None:
    g = torch.Generator().manual_seed(seed)
    dense = torch.rand(n_users, n_items, generator=g) < 0.5
    dense[:, 0] = True  # every user has a positive ...
    dense[:, -1] = False  # ... and a non-positive
    users, items = dense.nonzero(as_tuple=True)
    spec = make_spec(Interactions(users, items), n_users, n_items)
    probe = TableProbe(torch.randn(n_users, n_items, generator=g))
    sampler = PLDSampler(PLDConfig(pool_size=k, warmup_epochs=1))
    batches = list(sampler.epoch(spec, 5, g, probe, epoch=1 if warm else 2))
    assert sum(len(b) for b in batches) == len(spec.train)
    for b in batches:
        assert torch.all(dense[b.users, b.pos_items])
        assert torch.all(~dense[b.users[:, None], b.neg_items])
    assert probe.calls == (0 if warm else len(batches))


def test_user_sampler_epoch_size_and_user_uniformity() -> None:
    # User 0 has 30 positives, user 1 has 2: the interaction sampler would pick user 0 15x as
    # often; the user-based one picks both equally.
    pairs = [(0, i) for i in range(30)] + [(1, 0), (1, 1)]
    spec = make_spec(pairs, 2, 40, [(0, 39)])
    sampler = SAMPLERS["user"](SAMPLERS["user"].Config(n_negatives=2))
    g = torch.Generator().manual_seed(0)
    users = torch.cat([b.users for _ in range(200) for b in sampler.epoch(spec, 7, g)])
    assert users.numel() == 200 * 32
    assert abs(float((users == 0).float().mean()) - 0.5) < 0.02
    assert draw_users(spec, 3, g).dtype == torch.int64


@pytest.mark.parametrize(
    ("key", "value"), [("pool_size", 0), ("temperature", 0.0), ("temperature", -1.0)]
)
def test_bad_pld_settings_are_rejected(key: str, value: float) -> None:
    with pytest.raises(ValidationError, match=key):
        PLDConfig.model_validate({key: value})


def planted_noise_spec(seed: int = 0, ratio: float = 0.3) -> DataSpec:
    """Four user groups, each with its own block of items; noise = items of other blocks."""
    g = torch.Generator().manual_seed(seed)
    n_users, n_items, groups = 160, 80, 4
    block = n_items // groups
    grp = torch.arange(n_users) % groups
    mine = (torch.arange(n_items)[None, :] // block) == grp[:, None]
    clean = mine & (torch.rand(n_users, n_items, generator=g) < 0.6)
    u, i = clean.nonzero(as_tuple=True)
    n_noise = (clean.sum(1).double() * ratio).floor().long()
    scores = torch.rand(n_users, n_items, generator=g).masked_fill(mine, -1.0)
    top = scores.argsort(dim=1, descending=True)
    take = torch.arange(n_items)[None, :] < n_noise[:, None]
    nu, ni = take.nonzero(as_tuple=True)
    ni = top[nu, ni]
    spec = make_spec(
        Interactions(torch.cat([u, nu]), torch.cat([i, ni])), n_users, n_items, [(0, 0)]
    )
    spec.train_noise = torch.cat([torch.zeros(u.numel()), torch.ones(nu.numel())]).bool()
    return spec


def test_pld_selects_less_noise_than_uniform_after_warmup() -> None:
    ratio = 0.3
    spec = planted_noise_spec(ratio=ratio)
    model = build_model("mf", None, spec, seed=0)
    sampler = PLDSampler(PLDConfig(warmup_epochs=3))
    cfg = TrainConfig(epochs=8, batch_size=256, lr=0.02)
    history = fit(model, [LOSSES["bpr"]()], sampler, spec, cfg, seed=0).history
    after = [h for h in history if h["epoch"] > 3]
    for row in after:
        assert row["pld/noise_share"] < row["pld/pool_noise_share"]
        assert row["pld/noise_share"] < ratio / (1 + ratio)
    warm = [h for h in history if h["epoch"] <= 3]
    # During warm-up the choice is uniform: the selected share tracks the pool share.
    for row in warm:
        assert abs(row["pld/noise_share"] - row["pld/pool_noise_share"]) < 0.05
    assert after[-1]["pld/noise_share"] < 0.5 * ratio / (1 + ratio)


class Killed(Exception):
    pass


def test_killed_pld_run_with_diagnostics_resumes_bit_for_bit(tmp_path: Path) -> None:
    from recsys.train.noise_diagnostics import NoiseDiagnostic

    spec = planted_noise_spec(seed=1, ratio=0.2)
    cfg = TrainConfig(epochs=5, batch_size=128, lr=0.02, patience=0)

    def run(path: Path, hooks: list[Any]) -> tuple[torch.nn.Module, list[dict[str, float]]]:
        model = build_model("lightgcn", None, spec, seed=3)
        sampler = PLDSampler(PLDConfig(warmup_epochs=1))
        res = fit(
            model,
            [LOSSES["tce"](LOSSES["tce"].Config(base="bpr", n_gradual=20))],
            sampler,
            spec,
            cfg,
            seed=3,
            checkpoint_path=path,
            hooks=hooks,
            diagnostics=[NoiseDiagnostic(spec, seed=3)],
        )
        return model, [{k: v for k, v in r.items() if "seconds" not in k} for r in res.history]

    whole_model, whole = run(tmp_path / "whole.pt", [])

    def kill(epoch: int, row: dict[str, float]) -> bool:
        if epoch == 3:
            raise Killed
        return False

    with pytest.raises(Killed):
        run(tmp_path / "killed.pt", [kill])
    model, resumed = run(tmp_path / "killed.pt", [])
    assert resumed == whole
    assert {"pld/noise_share", "noise/auroc_user", "noise/auroc_global"} <= set(whole[-1])
    for a, b in zip(whole_model.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
