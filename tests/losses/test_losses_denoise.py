"""Pointwise BCE and the T-CE / R-CE denoising losses on hand-computed cases and properties."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from recsys.errors import RecsysError
from recsys.losses import LOSSES
from recsys.losses.bce import BCE, BCEConfig, pointwise_bce
from recsys.losses.bpr import BPR, BPRConfig
from recsys.losses.denoise import RCE, TCE, RCEConfig, TCEConfig
from recsys.losses.l2 import l2_reg
from recsys.models import build_model
from recsys.samplers import SAMPLERS
from recsys.train.config import TrainConfig
from recsys.train.loop import fit
from recsys.types import Batch, ModelOutput
from tests.contract.toy_data import block_spec


def sp(x: float) -> float:
    """softplus(x) = log(1 + e^x)."""
    return math.log1p(math.exp(x))


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def batch(b: int, n: int) -> Batch:
    return Batch(
        torch.zeros(b, dtype=torch.long),
        torch.zeros(b, dtype=torch.long),
        torch.zeros(b, n, dtype=torch.long),
    )


def output(pos: list[float], neg: list[list[float]], grad: bool = False) -> ModelOutput:
    p = torch.tensor(pos, dtype=torch.float64, requires_grad=grad)
    n = torch.tensor(neg, dtype=torch.float64, requires_grad=grad)
    return ModelOutput(p, n)


def grads(out: ModelOutput, loss: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    gp, gn = torch.autograd.grad(loss, [out.pos_scores, out.neg_scores])
    return gp, gn


def at_step(loss: TCE, step: int) -> TCE:
    loss.load_state_dict({"step": step})
    return loss


scores = st.floats(-6.0, 6.0, allow_nan=False, width=32)


@st.composite
def batches(draw: st.DrawFn) -> ModelOutput:
    b = draw(st.integers(1, 6))
    n = draw(st.integers(1, 4))
    pos = draw(st.lists(scores, min_size=b, max_size=b))
    neg = [draw(st.lists(scores, min_size=n, max_size=n)) for _ in range(b)]
    return output(pos, neg, grad=True)


# --- registry, configs, L2 -------------------------------------------------------------------


def test_registered_names() -> None:
    assert LOSSES["bce"] is BCE and LOSSES["tce"] is TCE and LOSSES["rce"] is RCE
    assert LOSSES["bpr"] is BPR


@pytest.mark.parametrize(
    ("cls", "bad"),
    [
        (BCE, {"reg_weight": -1e-4}),
        (TCE, {"max_drop": 1.0}),
        (TCE, {"max_drop": -0.1}),
        (TCE, {"n_gradual": 0}),
        (TCE, {"exponent": 0.0}),
        (TCE, {"base": "hinge"}),
        (TCE, {"reg_weight": -1.0}),
        (TCE, {"drop_rate": 0.1}),
        (RCE, {"beta": -0.1}),
        (RCE, {"base": "BCE"}),
        (RCE, {"reg_weight": -1.0}),
    ],
)
def test_bad_config_values_raise(cls: Any, bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match=next(iter(bad))):
        cls.Config.model_validate(bad)


def test_config_defaults_follow_the_official_code() -> None:
    t, r = TCEConfig(), RCEConfig()
    assert (t.base, t.max_drop, t.n_gradual, t.exponent, t.reg_weight) == (
        "bce",
        0.2,
        30000,
        1.0,
        1e-4,
    )
    assert (r.base, r.beta, r.reg_weight) == ("bce", 0.2, 1e-4)
    assert BCEConfig().reg_weight == BPRConfig().reg_weight == 1e-4


def test_l2_reg_hand_computed_and_omitted() -> None:
    user = torch.tensor([[1.0, 2.0], [0.0, 1.0]])  # ||.||² = 6
    item = torch.tensor([[3.0, 0.0], [0.0, 0.0]])  # 9
    negs = torch.ones(2, 3, 2)  # 12, still divided by B = 2
    out = ModelOutput(torch.zeros(2), torch.zeros(2, 3), reg={"u": user, "p": item, "n": negs})
    reg = l2_reg(out, 0.1)
    assert reg is not None and float(reg) == pytest.approx(0.1 * 27 / 2 / 2)
    assert l2_reg(out, 0.0) is None
    assert l2_reg(ModelOutput(torch.zeros(2), torch.zeros(2, 3)), 0.1) is None
    for name in ("bpr", "bce", "tce", "rce"):
        loss = LOSSES[name](LOSSES[name].Config(reg_weight=0.1))
        assert float(loss(batch(2, 3), out)["reg"]) == pytest.approx(float(reg))


@pytest.mark.parametrize("cls", [BCE, TCE, RCE])
def test_only_the_loss_and_reg_terms_are_returned(cls: Any) -> None:
    reg = {"u": torch.ones(2, 2)}
    out = ModelOutput(torch.zeros(2), torch.zeros(2, 1), reg=reg)
    name = cls.__name__.lower()
    assert set(cls()(batch(2, 1), out)) == {name, "reg"}
    assert set(cls(cls.Config(reg_weight=0.0))(batch(2, 1), out)) == {name}


# --- BCE -------------------------------------------------------------------------------------


def test_bce_hand_computed() -> None:
    out = output([0.0, 2.0], [[0.0, 3.0], [-1.0, 1.0]])
    terms = BCE(BCEConfig(reg_weight=0.0))(batch(2, 2), out)
    expected = (sp(-0.0) + sp(-2.0) + sp(0.0) + sp(3.0) + sp(-1.0) + sp(1.0)) / 6
    assert float(terms["bce"]) == pytest.approx(expected, rel=1e-12)


def test_pointwise_bce_order_and_labels() -> None:
    losses, labels = pointwise_bce(output([1.0, 2.0], [[3.0], [4.0]]))
    torch.testing.assert_close(labels, torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=torch.float64))
    expected = torch.tensor([sp(3.0), sp(4.0), sp(-1.0), sp(-2.0)], dtype=torch.float64)
    torch.testing.assert_close(losses, expected)


@settings(max_examples=40, deadline=None)
@given(batches())
def test_bce_matches_torch_reference(out: ModelOutput) -> None:
    logits = torch.cat([out.pos_scores, out.neg_scores.reshape(-1)])
    labels = torch.cat([torch.ones_like(out.pos_scores), torch.zeros(out.neg_scores.numel())])
    ref = F.binary_cross_entropy_with_logits(logits, labels.double())
    torch.testing.assert_close(BCE()(batch(1, 1), out)["bce"], ref)


# --- T-CE schedule ---------------------------------------------------------------------------


def test_drop_rate_linear_ramp() -> None:
    loss = TCE(TCEConfig(max_drop=0.2, n_gradual=5))
    rates = [loss.drop_rate(t) for t in range(8)]
    assert rates == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2, 0.2, 0.2, 0.2])
    assert rates[4] == 0.2  # the ramp ends one step before n_gradual (linspace endpoint)


def test_drop_rate_exponent_quirk_jumps_to_max_drop() -> None:
    loss = TCE(TCEConfig(max_drop=0.5, n_gradual=3, exponent=2.0))
    assert [loss.drop_rate(t) for t in range(5)] == [0.0, 0.125, 0.25, 0.5, 0.5]


def test_drop_rate_single_step_ramp_and_negative_step() -> None:
    loss = TCE(TCEConfig(max_drop=0.3, n_gradual=1))
    assert [loss.drop_rate(t) for t in range(3)] == [0.0, 0.3, 0.3]
    with pytest.raises(ValueError, match="step"):
        loss.drop_rate(-1)


@settings(max_examples=60, deadline=None)
@given(
    st.floats(0.0, 0.99),
    st.integers(1, 200),
    st.floats(0.1, 3.0),
    st.integers(0, 250),
)
def test_drop_rate_equals_numpy_linspace(
    max_drop: float, n_gradual: int, exponent: float, step: int
) -> None:
    cfg = TCEConfig(max_drop=max_drop, n_gradual=n_gradual, exponent=exponent)
    schedule = np.linspace(0, max_drop**exponent, n_gradual)
    expected = float(schedule[step]) if step < n_gradual else max_drop
    assert TCE(cfg).drop_rate(step) == expected


def test_step_counts_calls_and_state_dict_round_trip_continues_schedule() -> None:
    cfg = TCEConfig(max_drop=0.5, n_gradual=5, reg_weight=0.0)
    out = output([3.0, -2.0, 0.0, -1.0], [[5.0], [-5.0], [0.0], [1.0]])
    a = TCE(cfg)
    seen = []
    for _ in range(3):
        a(batch(4, 1), out)
        seen.append(a.last_drop_rate)
    assert seen == [0.0, 0.125, 0.25] and a.step == 3
    state = a.state_dict()
    assert state == {"step": 3}
    b = TCE(cfg)
    b.load_state_dict(state)
    va, vb = a(batch(4, 1), out)["tce"], b(batch(4, 1), out)["tce"]
    assert a.last_drop_rate == b.last_drop_rate == 0.375
    assert float(va) == float(vb) and a.step == b.step == 4
    fresh = TCE(cfg)(batch(4, 1), out)["tce"]  # rate 0 keeps everything: a different value
    assert float(fresh) != float(vb)


@pytest.mark.parametrize("state", [{}, {"step": -1}, {"step": 1.5}, {"step": True}, {"s": 1}])
def test_load_state_dict_rejects_bad_state(state: dict[str, object]) -> None:
    with pytest.raises(RecsysError, match="step"):
        TCE().load_state_dict(state)


# --- T-CE truncation -------------------------------------------------------------------------


def test_tce_bce_drops_highest_loss_positives_only() -> None:
    # Positive losses: sp(-3) < sp(0) < sp(1) < sp(2); the negative with score 5 has the
    # largest loss of all but negatives are never dropped.
    out = output([3.0, -2.0, 0.0, -1.0], [[5.0], [-5.0], [0.0], [1.0]], grad=True)
    loss = at_step(TCE(TCEConfig(max_drop=0.25, n_gradual=1, reg_weight=0.0)), 1)
    value = loss(batch(4, 1), out)["tce"]
    assert loss.last_drop_rate == 0.25 and loss.last_n_dropped == 2  # 8 - int(0.75 * 8)
    kept = [sp(-3.0), sp(-0.0), sp(5.0), sp(-5.0), sp(0.0), sp(1.0)]
    assert float(value.detach()) == pytest.approx(sum(kept) / 6, rel=1e-12)
    gp, gn = grads(out, value)
    assert gp[1] == 0 and gp[3] == 0 and (gp[[0, 2]] < 0).all()
    assert (gn > 0).all()
    torch.testing.assert_close(gp[2], torch.tensor(-0.5 / 6, dtype=torch.float64))


def test_tce_rate_fraction_is_of_the_whole_batch() -> None:
    # B = 2, N = 3: 8 samples; rate 0.25 drops 2 samples = both positives.
    out = output([0.0, 1.0], [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]], grad=True)
    loss = at_step(TCE(TCEConfig(max_drop=0.25, n_gradual=1, reg_weight=0.0)), 1)
    value = loss(batch(2, 3), out)["tce"]
    assert float(value.detach()) == pytest.approx((3 * sp(0.0) + 3 * sp(1.0)) / 6, rel=1e-12)
    gp, _ = grads(out, value)
    assert (gp == 0).all()


def test_tce_bpr_base_hand_computed() -> None:
    # Triple losses softplus(neg - pos): [[log 2, sp(2)], [sp(-2), log 2]].
    out = output([0.0, 1.0], [[0.0, 2.0], [-1.0, 1.0]], grad=True)
    cfg = TCEConfig(base="bpr", max_drop=0.25, n_gradual=1, reg_weight=0.0)
    value = at_step(TCE(cfg), 1)(batch(2, 2), out)["tce"]  # keeps int(0.75 * 4) = 3
    assert float(value.detach()) == pytest.approx((2 * math.log(2) + sp(-2.0)) / 3, rel=1e-12)
    _, gn = grads(out, value)
    assert gn[0, 1] == 0 and (gn[[0, 1, 1], [0, 0, 1]] > 0).all()
    cfg = TCEConfig(base="bpr", max_drop=0.5, n_gradual=1, reg_weight=0.0)
    value = at_step(TCE(cfg), 1)(batch(2, 2), out)["tce"]
    assert float(value.detach()) == pytest.approx((math.log(2) + sp(-2.0)) / 2, rel=1e-12)


def test_tce_always_keeps_one_sample() -> None:
    out = output([0.0], [[0.0]])
    cfg = TCEConfig(base="bpr", max_drop=0.9, n_gradual=1, reg_weight=0.0)
    loss = at_step(TCE(cfg), 1)
    assert float(loss(batch(1, 1), out)["tce"]) == pytest.approx(math.log(2))
    assert loss.last_n_dropped == 0


@settings(max_examples=60, deadline=None)
@given(batches(), st.floats(0.0, 0.95))
def test_tce_bce_matches_brute_force(out: ModelOutput, rate: float) -> None:
    b, n = out.neg_scores.shape
    loss = at_step(TCE(TCEConfig(max_drop=rate, n_gradual=1, reg_weight=0.0)), 1)
    value = loss(batch(b, n), out)["tce"]
    total = b * (1 + n)
    n_drop = total - max(int((1 - rate) * total), 1)
    assert loss.last_n_dropped == n_drop
    pos_losses = sorted(sp(-float(s)) for s in out.pos_scores.detach().tolist())
    neg_losses = sorted(sp(float(s)) for s in out.neg_scores.detach().reshape(-1).tolist())
    if n_drop <= b:  # only positives go
        kept = neg_losses + pos_losses[: b - n_drop]
        gp, gn = grads(out, value)
        assert (gn > 0).all()
        assert int((gp == 0).sum()) == n_drop
        if 0 < n_drop < b:
            pos_loss = F.softplus(-out.pos_scores.detach())
            dropped, kept_pos = pos_loss[gp == 0], pos_loss[gp != 0]
            assert float(dropped.min()) >= float(kept_pos.max())
    else:  # all positives go, then negatives in sample order
        flat = [sp(float(s)) for s in out.neg_scores.detach().reshape(-1).tolist()]
        kept = flat[: total - n_drop]
    assert float(value.detach()) == pytest.approx(sum(kept) / len(kept), rel=1e-9)


@settings(max_examples=40, deadline=None)
@given(batches(), st.sampled_from(["bce", "bpr"]))
def test_tce_rate_zero_is_the_plain_mean(out: ModelOutput, base: Literal["bce", "bpr"]) -> None:
    b, n = out.neg_scores.shape
    value = TCE(TCEConfig(base=base, reg_weight=0.0))(batch(b, n), out)["tce"]  # step 0: rate 0
    plain = LOSSES[base](LOSSES[base].Config(reg_weight=0.0))(batch(b, n), out)[base]
    torch.testing.assert_close(value, plain)


@settings(max_examples=40, deadline=None)
@given(batches(), st.floats(0.0, 0.95))
def test_tce_bpr_base_never_exceeds_plain_bpr(out: ModelOutput, rate: float) -> None:
    b, n = out.neg_scores.shape
    cfg = TCEConfig(base="bpr", max_drop=rate, n_gradual=1, reg_weight=0.0)
    value = at_step(TCE(cfg), 1)(batch(b, n), out)["tce"]
    plain = BPR(BPRConfig(reg_weight=0.0))(batch(b, n), out)["bpr"]
    assert float(value.detach()) <= float(plain.detach()) * (1 + 1e-12)


# --- R-CE ------------------------------------------------------------------------------------


def test_rce_bce_hand_computed() -> None:
    out = output([1.0], [[-1.0, 2.0]])
    value = RCE(RCEConfig(beta=0.5, reg_weight=0.0))(batch(1, 2), out)["rce"]
    w = [sig(1.0) ** 0.5, (1 - sig(-1.0)) ** 0.5, (1 - sig(2.0)) ** 0.5]
    ls = [sp(-1.0), sp(-1.0), sp(2.0)]
    assert float(value.detach()) == pytest.approx(
        sum(a * b for a, b in zip(w, ls, strict=True)) / 3
    )


def test_rce_bpr_hand_computed() -> None:
    out = output([1.0, 0.0], [[0.0], [2.0]])
    value = RCE(RCEConfig(base="bpr", beta=0.3, reg_weight=0.0))(batch(2, 1), out)["rce"]
    expected = (sig(1.0) ** 0.3 * sp(-1.0) + sig(-2.0) ** 0.3 * sp(2.0)) / 2
    assert float(value.detach()) == pytest.approx(expected, rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(batches(), st.floats(0.0, 2.0))
def test_rce_weights_are_detached(out: ModelOutput, beta: float) -> None:
    b, n = out.neg_scores.shape
    value = RCE(RCEConfig(beta=beta, reg_weight=0.0))(batch(b, n), out)["rce"]
    gp, gn = grads(out, value)
    pos, neg = out.pos_scores.detach(), out.neg_scores.detach()
    # d BCE / d s = σ(s) - label; weights σ(s)^β (positives), (1 - σ(s))^β (negatives).
    total = b * (1 + n)
    exp_p = torch.sigmoid(pos).pow(beta) * (torch.sigmoid(pos) - 1) / total
    exp_n = (1 - torch.sigmoid(neg)).pow(beta) * torch.sigmoid(neg) / total
    torch.testing.assert_close(gp, exp_p)
    torch.testing.assert_close(gn, exp_n)


@settings(max_examples=30, deadline=None)
@given(batches(), st.floats(0.0, 2.0))
def test_rce_bpr_weights_are_detached(out: ModelOutput, beta: float) -> None:
    b, n = out.neg_scores.shape
    value = RCE(RCEConfig(base="bpr", beta=beta, reg_weight=0.0))(batch(b, n), out)["rce"]
    _, gn = grads(out, value)
    diff = out.pos_scores.detach().unsqueeze(-1) - out.neg_scores.detach()
    # d softplus(s_neg - s_pos) / d s_neg = σ(s_neg - s_pos) = 1 - σ(diff).
    expected = torch.sigmoid(diff).pow(beta) * (1 - torch.sigmoid(diff)) / (b * n)
    torch.testing.assert_close(gn, expected)


@settings(max_examples=30, deadline=None)
@given(batches())
def test_rce_beta_zero_is_plain_loss(out: ModelOutput) -> None:
    b, n = out.neg_scores.shape
    bce = RCE(RCEConfig(beta=0.0, reg_weight=0.0))(batch(b, n), out)["rce"]
    assert torch.equal(bce, BCE(BCEConfig(reg_weight=0.0))(batch(b, n), out)["bce"])
    bpr = RCE(RCEConfig(base="bpr", beta=0.0, reg_weight=0.0))(batch(b, n), out)["rce"]
    assert torch.equal(bpr, BPR(BPRConfig(reg_weight=0.0))(batch(b, n), out)["bpr"])


# --- all losses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "loss",
    [
        BCE(),
        at_step(TCE(TCEConfig(n_gradual=1)), 1),
        at_step(TCE(TCEConfig(base="bpr", n_gradual=1)), 1),
        RCE(),
        RCE(RCEConfig(base="bpr")),
    ],
    ids=["bce", "tce-bce", "tce-bpr", "rce-bce", "rce-bpr"],
)
def test_extreme_scores_give_finite_values_and_gradients(loss: object) -> None:
    pos = torch.tensor([80.0, -80.0, 0.0], requires_grad=True)
    neg = torch.tensor([[-80.0, 80.0], [80.0, -80.0], [0.0, 1.0]], requires_grad=True)
    user = torch.randn(3, 4, generator=torch.Generator().manual_seed(0), requires_grad=True)
    terms = loss(batch(3, 2), ModelOutput(pos, neg, reg={"user": user}))  # type: ignore[operator]
    total = torch.stack(list(terms.values())).sum()
    assert torch.isfinite(total)
    total.backward()
    for g in (pos.grad, neg.grad, user.grad):
        assert g is not None and torch.isfinite(g).all()


class Killed(Exception):
    pass


def test_killed_fit_resumes_the_tce_schedule(tmp_path: Path) -> None:
    spec = block_spec(n_users=12, n_items=10)
    cfg = TrainConfig(epochs=2, batch_size=8, patience=0)

    def train(
        path: Path, on_epoch: Callable[[dict[str, float]], None] | None = None
    ) -> tuple[TCE, list[float]]:
        loss = TCE(TCEConfig(max_drop=0.2, n_gradual=5))
        losses: list[Any] = [loss]  # the Loss protocol's Config ClassVar does not type-check
        res = fit(
            build_model("mf", None, spec, seed=0),
            losses,
            SAMPLERS["uniform"](),
            spec,
            cfg,
            seed=0,
            checkpoint_path=path,
            on_epoch=on_epoch,
        )
        return loss, [r["loss/tce"] for r in res.history]

    def kill(row: dict[str, float]) -> None:  # after the epoch's checkpoint is written
        raise Killed

    whole, whole_hist = train(tmp_path / "whole.pt")
    with pytest.raises(Killed):
        train(tmp_path / "killed.pt", kill)
    resumed, resumed_hist = train(tmp_path / "killed.pt")
    per_epoch = math.ceil(len(spec.train) / 8)
    assert whole.step == resumed.step == 2 * per_epoch
    assert whole.last_drop_rate == resumed.last_drop_rate == 0.2
    assert resumed_hist == whole_hist and len(whole_hist) == 2
