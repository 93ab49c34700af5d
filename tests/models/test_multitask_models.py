"""Multi-task models (shared-bottom, MMoE, PLE, DTRN, single-task) on synthetic data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from recsys.data.multitask.tensors import FeatureTable, MultiTaskData, TaskRows
from recsys.errors import ConfigError, RecsysError
from recsys.models import MODELS
from recsys.models.multitask import DTRN, MMoE, SingleTask, TaskModel
from recsys.models.multitask.attention import TargetAttention
from recsys.models.multitask.layers import n_params
from recsys.spec import DataSpec
from recsys.types import Interactions, ItemFeatures, TaskBatch
from tests.contract.toy_data import make_spec

NAMES = ["shared-bottom", "mmoe", "ple", "dtrn", "single-task"]
SMALL: dict[str, Any] = {"dim": 6, "tower": (8,), "attention_hidden": 8}
EXTRA: dict[str, dict[str, Any]] = {
    "shared-bottom": {"bottom": (16,)},
    "mmoe": {"experts": 3, "expert_hidden": (12,)},
    "ple": {"expert_hidden": (12,), "shared_experts": 2},
    "dtrn": {"experts": 3, "expert_hidden": (12,), "hyper_hidden": 8, "hyper_dim": 4},
    "single-task": {"bottom": (16,)},
}
N_USERS, N_ITEMS, L = 30, 40, 5


def build(name: str, spec: DataSpec, seed: int = 0, **over: Any) -> TaskModel:
    cls = MODELS[name]
    torch.manual_seed(seed)
    model = cls(cls.Config(**{**SMALL, **EXTRA[name], **over}), spec)
    assert isinstance(model, TaskModel)
    return model


def _rows(n: int, gen: torch.Generator, n_tasks: int, n_hist: int, rule: Any) -> TaskRows:
    users = torch.randint(0, N_USERS, (n,), generator=gen)
    items = torch.randint(0, N_ITEMS, (n,), generator=gen)
    labels = rule(users, items)
    mask = torch.ones(n, n_tasks, dtype=torch.bool)
    mask[:, 1] = labels[:, 0] > 0  # task 1 is defined on task 0's positives only
    labels = labels * mask
    history = torch.randint(0, n_hist, (n,), generator=gen)
    return TaskRows(labels, mask, users, items, FeatureTable.empty(n), history)


def ranking_spec(n_tasks: int = 2, n_behaviours: int = 3, seed: int = 0) -> DataSpec:
    """30 users × 40 items, user table (user_id + 2 fields), item table (item_id + genre + 2
    dense), ``n_behaviours`` sequences of length 5, one 6-d modality ``text``."""
    gen = torch.Generator().manual_seed(seed)
    gender = torch.randint(1, 3, (N_USERS,), generator=gen)
    age = torch.randint(0, 5, (N_USERS,), generator=gen)
    genre = torch.randint(1, 4, (N_ITEMS,), generator=gen)
    item_dense = torch.randn(N_ITEMS, 2, generator=gen)
    users = FeatureTable(
        torch.stack([torch.arange(N_USERS) + 1, gender, age], 1),
        torch.zeros(N_USERS, 0),
        ("user_id", "gender", "age"),
        (N_USERS + 1, 3, 5),
    )
    items = FeatureTable(
        torch.stack([torch.arange(N_ITEMS) + 1, genre], 1),
        item_dense,
        ("item_id", "genre"),
        (N_ITEMS + 1, 4),
        ("price", "length"),
    )

    def rule(u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        watch = (gender[u] == 1) == (genre[i] == 1)
        like = item_dense[i, 0] > 0
        cols = [watch, like] + [(u + i) % 2 == 0] * (n_tasks - 2)
        return torch.stack(cols, 1).float()

    n_hist = 25
    hist = torch.randint(1, N_ITEMS + 1, (n_hist, n_behaviours, L), generator=gen)
    pad = torch.rand(n_hist, n_behaviours, L, generator=gen) < 0.3
    hist[pad] = 0
    hist[0] = 0  # an all-padding history
    rank_hist = torch.randint(0, N_ITEMS + 1, (N_USERS, n_behaviours, L), generator=gen)
    rows = {s: _rows(n, gen, n_tasks, n_hist, rule) for s, n in (("train", 240), ("test", 60))}
    rows["valid"] = rows["test"]
    data = MultiTaskData(
        tasks=("watch", "like", *(f"t{k}" for k in range(2, n_tasks))),
        rows=rows,
        user_features=users,
        item_features=items,
        behaviours=("watched", "liked", "disliked", *(f"b{b}" for b in range(3, n_behaviours)))[
            :n_behaviours
        ],
        histories=hist,
        rank_histories={"valid": rank_hist, "test": rank_hist.roll(1, 0)},
        rank_task_weights={"watch": 1.0, "like": 0.5},
    )
    train = rows["train"]
    spec = make_spec(Interactions(train.users, train.items), N_USERS, N_ITEMS, name="toy-mt")
    text = torch.randn(N_ITEMS, 6, generator=gen)
    missing = torch.zeros(N_ITEMS, dtype=torch.bool)
    missing[:3] = True
    text[missing] = 0.0
    spec.features = {"text": ItemFeatures("text", text, missing, "learned", "synthetic")}
    spec.multitask = data  # type: ignore[attr-defined]
    return spec


def census_spec(seed: int = 0) -> DataSpec:
    """Rows only: 3 categorical fields, 2 dense columns, 2 tasks."""
    gen = torch.Generator().manual_seed(seed)

    def rows(n: int) -> TaskRows:
        sparse = torch.stack([torch.randint(0, c, (n,), generator=gen) for c in (4, 5, 3)], 1)
        dense = torch.randn(n, 2, generator=gen)
        labels = torch.stack([(sparse[:, 0] >= 2), dense[:, 0] > 0], 1).float()
        feats = FeatureTable(sparse, dense, ("edu", "job", "sex"), (4, 5, 3), ("age", "hours"))
        none = torch.full((n,), -1, dtype=torch.int64)
        return TaskRows(labels, torch.ones(n, 2, dtype=torch.bool), none, none, feats, none)

    data = MultiTaskData(
        tasks=("income", "married"),
        rows={"train": rows(240), "valid": rows(40), "test": rows(40)},
        user_features=FeatureTable.empty(0),
        item_features=FeatureTable.empty(0),
    )
    spec = make_spec([], 0, 0, name="toy-census")
    spec.multitask = data  # type: ignore[attr-defined]
    return spec


def batch_of(spec: DataSpec, split: str = "train") -> TaskBatch:
    data: MultiTaskData = spec.multitask  # type: ignore[attr-defined]
    r = data.rows[split]
    n = len(r)
    if data.behaviours:
        history = data.histories[r.history]
    else:
        history = torch.zeros(n, 0, 0, dtype=torch.int64)
    return TaskBatch(
        r.users, r.items, r.features.sparse, r.features.dense, history, r.labels, r.mask
    )


def bce(logits: torch.Tensor, batch: TaskBatch) -> torch.Tensor:
    losses = F.binary_cross_entropy_with_logits(logits, batch.labels, reduction="none")
    return (losses * batch.mask).sum() / batch.mask.sum()


@pytest.fixture(scope="module")
def rspec() -> DataSpec:
    return ranking_spec()


@pytest.fixture(scope="module")
def cspec() -> DataSpec:
    return census_spec()


def test_registry_configs_and_task_flag() -> None:
    for name in NAMES:
        cls = MODELS[name]
        assert cls.task_model
        cfg = cls.Config()
        assert cls.Config.model_validate(cfg.model_dump(mode="json")) == cfg
    assert not MODELS["lightgcn"].task_model
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        MODELS["mmoe"].Config(expert_hidden=(0,))


def test_needs_multitask_data() -> None:
    spec = make_spec([(0, 0)], 1, 1)
    with pytest.raises(ConfigError, match=r"needs a \[multitask\] table"):
        build("mmoe", spec)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("which", ["ranking", "census"])
def test_forward_gradients_and_learning(name: str, which: str, rspec, cspec) -> None:  # type: ignore[no-untyped-def]
    spec = rspec if which == "ranking" else cspec
    model = build(name, spec)
    batch = batch_of(spec)
    out = model(batch)
    assert out.logits.shape == (len(batch), 2)
    assert torch.isfinite(out.logits).all()
    loss = bce(out.logits, batch)
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    first = loss.item()
    for _ in range(30):
        opt.zero_grad()
        loss = bce(model(batch).logits, batch)
        loss.backward()
        opt.step()
    assert loss.item() < 0.6 * first, (first, loss.item())


@pytest.mark.parametrize("name", NAMES)
def test_scorer_matches_forward_and_ignores_chunking(name: str, rspec) -> None:  # type: ignore[no-untyped-def]
    model = build(name, rspec, graph_layers=2, modalities=("text",))
    model.eval()
    users = torch.tensor([3, 0, 17, 29])
    with torch.no_grad():
        scores = model.scorer_for("test")(users)
        small = model.scorer_for("test", chunk_pairs=7)(users)
        valid = model.scorer_for("valid")(users)
    assert scores.shape == (4, N_ITEMS)
    torch.testing.assert_close(small, scores)
    assert not torch.allclose(valid, scores)  # the split's histories are used
    # The same pairs through forward: user, item, the user's test history, no row features.
    data = rspec.multitask
    u = users.repeat_interleave(N_ITEMS)
    i = torch.arange(N_ITEMS).repeat(len(users))
    batch = TaskBatch(
        u,
        i,
        torch.zeros(len(u), 0, dtype=torch.int64),
        torch.zeros(len(u), 0),
        data.rank_histories["test"][u],
        torch.zeros(len(u), 2),
        torch.ones(len(u), 2, dtype=torch.bool),
    )
    with torch.no_grad():
        logits = model(batch).logits
    expected = F.logsigmoid(logits) @ torch.tensor([1.0, 0.5])
    torch.testing.assert_close(scores.reshape(-1), expected)
    torch.testing.assert_close(model.scorer()(users), scores)


def test_scorer_refuses_unrankable_data(cspec, rspec) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RecsysError, match="cannot be ranked"):
        build("mmoe", cspec).scorer_for("test")
    with pytest.raises(RecsysError, match="no ranking histories for split 'train'"):
        build("mmoe", rspec).scorer_for("train")
    build("mmoe", rspec, interest=False).scorer_for("train")  # no sequences: no histories needed


def test_rank_weights(rspec) -> None:  # type: ignore[no-untyped-def]
    torch.testing.assert_close(build("mmoe", rspec).rank_weights, torch.tensor([1.0, 0.5]))
    own = build("mmoe", rspec, rank={"like": 2.0})
    torch.testing.assert_close(own.rank_weights, torch.tensor([0.0, 2.0]))
    torch.testing.assert_close(build("mmoe", census_spec()).rank_weights, torch.ones(2))
    with pytest.raises(ConfigError, match="unknown task 'click'; tasks: watch, like"):
        build("mmoe", rspec, rank={"click": 1.0})


def test_attention_matches_brute_force_and_handles_empty_sequences() -> None:
    torch.manual_seed(0)
    att = TargetAttention(dim=3, hidden=5)
    seq = torch.randn(4, 2, 6, 3, requires_grad=True)
    target = torch.randn(4, 3)
    mask = torch.rand(4, 2, 6) < 0.6
    mask[1, 0] = False  # all padding
    mask[2, 1] = True
    got = att(seq, mask, target)
    for p in range(4):
        for b in range(2):
            x, e = seq[p, b], target[p].expand(6, 3)
            s = att.second(torch.relu(att.first(torch.cat([x, e, x * e, x - e], 1))))[:, 0]
            if not mask[p, b].any():
                torch.testing.assert_close(got[p, b], torch.zeros(3))
                continue
            a = torch.softmax(s[mask[p, b]], 0)
            torch.testing.assert_close(got[p, b], a @ x[mask[p, b]])
    got.sum().backward()
    assert seq.grad is not None and torch.isfinite(seq.grad).all()
    assert seq.grad[1, 0].abs().sum() == 0


def test_all_padding_history_gives_zero_interest(rspec) -> None:  # type: ignore[no-untyped-def]
    model = build("mmoe", rspec)
    batch = batch_of(rspec)
    empty = rspec.multitask.rows["train"].history == 0
    assert empty.any()
    inp = model.inputs.batch_inputs(batch)
    interests = model.inputs.interests(inp)
    assert interests.shape == (len(batch), 3, SMALL["dim"])
    assert (interests[empty] == 0).all() and (interests[~empty].abs().sum(-1) > 0).any()
    assert model.inputs.field_names[-3:] == (
        "interest:watched",
        "interest:liked",
        "interest:disliked",
    )


def test_graph_backbone_replaces_id_fields(rspec) -> None:  # type: ignore[no-untyped-def]
    plain = build("mmoe", rspec)
    model = build("mmoe", rspec, graph_layers=2)
    assert plain.inputs.field_names == model.inputs.field_names
    names = model.inputs.field_names
    assert names[:3] == ("user:user_id", "user:gender", "user:age")
    layer = model.inputs
    adj = rspec.graph.adj.to_dense()
    e0 = torch.cat([layer.user_ego, layer.item_ego]).detach()
    ref = (e0 + adj @ e0 + adj @ adj @ e0) / 3
    ctx = layer.context()
    assert ctx is not None
    torch.testing.assert_close(torch.cat([ctx.users, ctx.items]).detach(), ref)
    batch = batch_of(rspec)
    inp = layer.batch_inputs(batch)
    torch.testing.assert_close(inp.base[:, 0].detach(), ref[batch.users])
    torch.testing.assert_close(inp.base[:, 3].detach(), ref[N_USERS + batch.items])
    torch.testing.assert_close(inp.target.detach(), ref[N_USERS + batch.items])  # type: ignore[union-attr]
    h = batch.history[:, 1]
    seq = ref[N_USERS + (h - 1).clamp(min=0)]
    torch.testing.assert_close(inp.seq[:, 1].detach(), seq)  # type: ignore[index]
    # The id columns left the embedding tables: (31 + 41) rows fewer, 2 · (30 + 40) ego rows.
    tables = n_params(model.inputs.users.cat) + n_params(model.inputs.items.cat)
    plain_tables = n_params(plain.inputs.users.cat) + n_params(plain.inputs.items.cat)
    assert plain_tables - tables == (N_USERS + 1 + N_ITEMS + 1) * SMALL["dim"]
    with pytest.raises(ConfigError, match="graph_layers > 0 needs users and items"):
        build("mmoe", census_spec(), graph_layers=1)


def test_modalities_and_freezing(rspec) -> None:  # type: ignore[no-untyped-def]
    model = build("ple", rspec, graph_layers=1, modalities=("text",), freeze_backbone=True)
    names = model.inputs.field_names
    assert names.index("modality:text") == names.index("item:length") + 1
    frozen = {"inputs.user_ego", "inputs.item_ego", "inputs.modalities.placeholders.0"}
    frozen |= {f"inputs.projections.0.{p}" for p in ("weight", "bias")}
    batch = batch_of(rspec)
    bce(model(batch).logits, batch).backward()
    for pname, p in model.named_parameters():
        if pname in frozen:
            assert not p.requires_grad and p.grad is None, pname
        else:
            assert p.grad is not None, pname
    assert frozen <= {n for n, _ in model.named_parameters()}
    counts = model.parameter_counts()
    n_frozen = sum(p.numel() for n, p in model.named_parameters() if n in frozen)
    assert counts["total"] - counts["trainable"] == n_frozen > 0
    inp = model.inputs.batch_inputs(batch)
    ref = model.inputs.projections[0](model.inputs.modalities.filled(0, batch.items))
    torch.testing.assert_close(inp.base[:, names.index("modality:text")], ref)
    with pytest.raises(ConfigError, match=r"unknown modality 'image'.*has: text"):
        build("mmoe", rspec, modalities=("image",))


def test_backbone_init_loads_lightgcn_embeddings(rspec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    users, items = torch.randn(N_USERS, 6), torch.randn(N_ITEMS, 6)
    torch.save({"user_emb": users, "item_emb": items}, tmp_path / "model.pt")
    model = build("dtrn", rspec, graph_layers=2, backbone_init=str(tmp_path), freeze_backbone=True)
    torch.testing.assert_close(model.inputs.user_ego.detach(), users)
    torch.testing.assert_close(model.inputs.item_ego.detach(), items)
    with pytest.raises(ConfigError, match=r"user_emb has shape \(30, 6\), expected \(30, 4\)"):
        build("dtrn", rspec, graph_layers=2, backbone_init=str(tmp_path), dim=4)
    with pytest.raises(ConfigError, match=r"has no model\.pt"):
        build("dtrn", rspec, graph_layers=2, backbone_init=str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="backbone_init needs graph_layers > 0"):
        build("dtrn", rspec, backbone_init=str(tmp_path))


def test_hypernetwork_generates_task_and_behaviour_specific_attention(rspec) -> None:  # type: ignore[no-untyped-def]
    model = build("dtrn", rspec)
    assert isinstance(model, DTRN) and model.tim is not None
    w, b = model.task_attention()
    assert w.shape == (2, 3, 8, 4 * 6) and b.shape == (2, 3, 8)
    for beh in range(3):
        assert (w[0, beh] - w[1, beh]).abs().max() > 1e-4
    assert (w[0, 0] - w[0, 1]).abs().max() > 1e-4
    # The generated deltas have rank <= hyper_rank.
    base = model.inputs.attention.first.weight  # type: ignore[union-attr]
    assert torch.linalg.matrix_rank((w[1, 2] - base).detach()) <= 4
    # Task-specific interests differ, and task 0's fields hold its own.
    inp = model.inputs.batch_inputs(batch_of(rspec))
    per_task = model.task_fields(inp)
    assert len(per_task) == 2 and per_task[0].shape[1] == model.inputs.n_fields
    assert (per_task[0][:, -3:] - per_task[1][:, -3:]).abs().max() > 1e-5
    torch.testing.assert_close(per_task[0][:, :-3], per_task[1][:, :-3])


def test_hypernetwork_parameters_do_not_scale_with_tasks_times_behaviours() -> None:
    def hyper_and_copy(n_tasks: int, n_behaviours: int) -> tuple[int, int]:
        model = build("dtrn", ranking_spec(n_tasks, n_behaviours))
        assert model.tim is not None and model.inputs.attention is not None
        copy = n_tasks * n_behaviours * n_params(model.inputs.attention)
        counts = model.parameter_counts()
        assert counts["tim_copy_equivalent"] == copy
        assert (
            counts["total"]
            == n_params(model)
            == sum(
                v
                for k, v in counts.items()
                if k not in ("total", "trainable", "tim_copy_equivalent")
            )
        )
        return counts["tim"], copy

    small, small_copy = hyper_and_copy(2, 3)
    large, large_copy = hyper_and_copy(4, 6)
    hyper_dim = EXTRA["dtrn"]["hyper_dim"]
    assert large - small == (2 + 3) * hyper_dim  # only the new task / behaviour embeddings
    assert large_copy - small_copy == 18 * (4 * 6 * 8 + 8 + 8)
    assert large < large_copy


def test_dtrn_without_behaviours_is_trm_plus_top(cspec) -> None:  # type: ignore[no-untyped-def]
    model = build("dtrn", cspec)
    assert model.tim is None and model.inputs.attention is None
    out = model(batch_of(cspec))
    assert out.extra["trm"].shape == (240, 2, 5)
    assert ((out.extra["trm"] > 0) & (out.extra["trm"] < 2)).all()
    ple = build("dtrn", cspec, top="ple")
    assert ple(batch_of(cspec)).logits.shape == (240, 2)


def test_dtrn_without_tim_and_trm_is_mmoe(rspec) -> None:  # type: ignore[no-untyped-def]
    mmoe = build("mmoe", rspec, graph_layers=1)
    dtrn = build("dtrn", rspec, graph_layers=1, tim=False, trm=False, seed=1)
    state = {k.replace("mmoe.", "top."): v for k, v in mmoe.state_dict().items()}
    dtrn.load_state_dict(state)
    batch = batch_of(rspec)
    torch.testing.assert_close(dtrn(batch).logits, mmoe(batch).logits)


def test_dtrn_trm_refines_fields_by_task_weights(rspec) -> None:  # type: ignore[no-untyped-def]
    model = build("dtrn", rspec, tim=False)
    assert model.trm is not None
    inp = model.inputs.batch_inputs(batch_of(rspec))
    e = model.inputs.fields(inp)
    net = model.trm[1].net
    a = 2 * torch.sigmoid(net(e.mean(-1)))
    refined, weights = model.trm[1](e)
    torch.testing.assert_close(weights, a)
    torch.testing.assert_close(refined, e * a[..., None])


def test_ple_last_level_has_no_shared_gate(rspec) -> None:  # type: ignore[no-untyped-def]
    model = build("ple", rspec, levels=3)
    gates = [level.shared_gate for level in model.ple.levels]
    assert [g is None for g in gates] == [False, False, True]
    assert gates[0].out_features == 2 * 1 + 2  # K task experts + shared experts


def test_single_task_networks_share_nothing(rspec) -> None:  # type: ignore[no-untyped-def]
    model = build("single-task", rspec, graph_layers=1, modalities=("text",))
    assert isinstance(model, SingleTask)
    ids = [{id(p) for p in net.parameters()} for net in model.nets]
    assert not ids[0] & ids[1]
    assert sum(map(len, ids)) == len(list(model.parameters()))
    batch = batch_of(rspec)
    logits = model(batch).logits
    F.binary_cross_entropy_with_logits(logits[:, 0], batch.labels[:, 0]).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.nets[0].parameters())
    assert all(p.grad is None or (p.grad == 0).all() for p in model.nets[1].parameters())


def test_mmoe_gates_are_distributions(rspec) -> None:  # type: ignore[no-untyped-def]
    model = build("mmoe", rspec)
    assert isinstance(model, MMoE)
    gates = model(batch_of(rspec)).extra["gates"]
    assert gates.shape == (240, 2, 3)
    torch.testing.assert_close(gates.sum(-1), torch.ones(240, 2))
