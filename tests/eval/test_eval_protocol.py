"""Full-ranking protocol: brute-force agreement, masking, conventions, batch-size invariance."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from torch import Tensor, nn

from recsys.config import StrictModel
from recsys.errors import ConfigError, DataError, RecsysError
from recsys.eval.config import EvalConfig
from recsys.eval.protocol import SCORE_BLOCK, EvalResult, evaluate, evaluate_model
from recsys.models.base import Model, Scorer
from recsys.spec import DataSpec
from recsys.types import Interactions

# ----------------------------------------------------------------- helpers


def make_spec(
    n_users: int,
    n_items: int,
    train: list[tuple[int, int]],
    valid: list[tuple[int, int]],
    test: list[tuple[int, int]],
) -> DataSpec:
    def inter(pairs: list[tuple[int, int]]) -> Interactions:
        arr = np.array(pairs, dtype=np.int64).reshape(-1, 2)
        return Interactions(torch.from_numpy(arr[:, 0].copy()), torch.from_numpy(arr[:, 1].copy()))

    def eval_users(split: list[tuple[int, int]]) -> Tensor:
        has_train = {u for u, _ in train}
        return torch.tensor(sorted({u for u, _ in split} & has_train), dtype=torch.int64)

    return DataSpec(
        name="synthetic",
        data_hash="0",
        n_users=n_users,
        n_items=n_items,
        train=inter(train),
        valid=inter(valid),
        test=inter(test),
        user_ids=np.array([str(u) for u in range(n_users)]),
        item_ids=np.array([str(i) for i in range(n_items)]),
        eval_users_valid=eval_users(valid),
        eval_users_test=eval_users(test),
    )


def matrix_scorer(scores: Tensor, calls: list[int] | None = None) -> Scorer:
    def scorer(users: Tensor) -> Tensor:
        if calls is not None:
            calls.append(len(users))
        return scores[users]

    return scorer


def brute_force(
    scores: list[list[float]],
    spec: DataSpec,
    split: str,
    cfg: EvalConfig,
) -> dict[str, Any]:
    """Independent implementation: python loops, sorted(), math.log2."""
    n_items = spec.n_items

    def sets(inter: Interactions) -> dict[int, set[int]]:
        out: dict[int, set[int]] = {}
        for u, i in zip(inter.users.tolist(), inter.items.tolist(), strict=True):
            out.setdefault(u, set()).add(i)
        return out

    train, valid, test = sets(spec.train), sets(spec.valid), sets(spec.test)
    truth_all = valid if split == "valid" else test
    users = sorted(u for u in truth_all if u in train)
    per_user: dict[str, list[float]] = {f"{m}@{k}": [] for m in cfg.metrics for k in cfg.ks}
    lists = []
    for u in users:
        masked = set(train[u])
        if split == "test" and cfg.test_mask == "train_valid":
            masked |= valid.get(u, set())
        candidates = [i for i in range(n_items) if i not in masked]
        ranked = sorted(candidates, key=lambda i: (-scores[u][i], i))
        lists.append(ranked)
        truth = truth_all[u]
        for k in cfg.ks:
            top = ranked[:k]
            rel = [1 if i in truth else 0 for i in top]
            n_hit = sum(rel)
            first = next((r + 1 for r, x in enumerate(rel) if x), None)
            dcg = sum(1 / math.log2(r + 2) for r, x in enumerate(rel) if x)
            ideal_n = min(len(truth), k) if cfg.idcg == "truncated" else len(truth)
            idcg = sum(1 / math.log2(r + 2) for r in range(ideal_n))
            ap = 0.0
            seen = 0
            for r, x in enumerate(rel):
                if x:
                    seen += 1
                    ap += seen / (r + 1)
            values = {
                "recall": n_hit / len(truth),
                "precision": n_hit / k,
                "hit": 1.0 if n_hit else 0.0,
                "mrr": 1 / first if first else 0.0,
                "map": ap / min(len(truth), k),
                "ndcg": dcg / idcg,
            }
            for m in cfg.metrics:
                per_user[f"{m}@{k}"].append(values[m])
    denom = spec.n_users if cfg.average == "all_users" else len(users)
    summary = {name: sum(v) / denom for name, v in per_user.items()} if users else {}
    return {"users": users, "per_user": per_user, "summary": summary, "lists": lists}


# --------------------------------------------------------- brute-force agreement


@st.composite
def problems(draw: st.DrawFn) -> tuple[list[list[float]], DataSpec, str, EvalConfig]:
    n_users = draw(st.integers(1, 6))
    n_items = draw(st.integers(1, 9))
    # Few distinct values: many ties, including across the cut.
    scores = draw(
        st.lists(
            st.lists(st.sampled_from([-1.0, 0.0, 0.5, 2.0]), min_size=n_items, max_size=n_items),
            min_size=n_users,
            max_size=n_users,
        )
    )
    # Each (user, item) cell: 0 unseen, 1 train, 2 valid, 3 test.
    cells = draw(
        st.lists(
            st.lists(st.sampled_from([0, 0, 1, 2, 3]), min_size=n_items, max_size=n_items),
            min_size=n_users,
            max_size=n_users,
        )
    )
    split = draw(st.sampled_from(["valid", "test"]))
    pairs: dict[int, list[tuple[int, int]]] = {1: [], 2: [], 3: []}
    for u in range(n_users):
        for i in range(n_items):
            if cells[u][i]:
                pairs[cells[u][i]].append((u, i))
    spec = make_spec(n_users, n_items, pairs[1], pairs[2], pairs[3])
    ks = tuple(sorted(draw(st.sets(st.integers(1, 6), min_size=1, max_size=3))))
    cfg = EvalConfig(
        ks=ks,
        batch_users=draw(st.sampled_from([1, 3, 256, 300])),
        idcg=draw(st.sampled_from(["truncated", "full"])),
        average=draw(st.sampled_from(["evaluated", "all_users"])),
        test_mask=draw(st.sampled_from(["train_valid", "train"])),
        export_topk=draw(st.sampled_from([0, 2, 20])),
    )
    return scores, spec, split, cfg


@settings(derandomize=True, max_examples=150, deadline=None)
@given(problems())
def test_agrees_with_brute_force(
    problem: tuple[list[list[float]], DataSpec, str, EvalConfig],
) -> None:
    scores, spec, split, cfg = problem
    expected = brute_force(scores, spec, split, cfg)
    scorer = matrix_scorer(torch.tensor(scores, dtype=torch.float32))
    if not expected["users"]:
        with pytest.raises(DataError, match="nothing to evaluate"):
            evaluate(scorer, spec, split, cfg)
        return
    result = evaluate(scorer, spec, split, cfg)
    assert result.users.tolist() == expected["users"]
    assert result.n_users_evaluated == len(expected["users"])
    for name, values in expected["per_user"].items():
        assert result.per_user[name].dtype == np.float64
        np.testing.assert_allclose(result.per_user[name], values, rtol=0, atol=1e-12)
        assert result.summary[name] == pytest.approx(expected["summary"][name], abs=1e-12)
    if split == "test" and cfg.export_topk > 0:
        assert result.topk is not None
        width = min(cfg.export_topk, spec.n_items)
        want = [(ranked + [-1] * width)[:width] for ranked in expected["lists"]]
        assert result.topk.tolist() == want
    else:
        assert result.topk is None


# ----------------------------------------------------------- specific behaviour


def small_problem() -> tuple[Tensor, DataSpec]:
    # 3 users, 6 items. User 0 scores decrease with the item index, so its train items 0 and 1
    # would be ranked first if not masked.
    scores = torch.tensor(
        [
            [9.0, 8.0, 7.0, 6.0, 5.0, 4.0],
            [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        ]
    )
    spec = make_spec(
        n_users=4,  # user 3 has no interaction at all
        n_items=6,
        train=[(0, 0), (0, 1), (1, 5), (2, 0)],
        valid=[(0, 2), (1, 4)],
        test=[(0, 3), (0, 4), (1, 0), (2, 1)],
    )
    return scores, spec


def test_masking_and_hand_computed_values() -> None:
    scores, spec = small_problem()
    cfg = EvalConfig(ks=(1, 2), metrics=("recall", "ndcg", "precision"), export_topk=3)
    result = evaluate(matrix_scorer(scores), spec, "test", cfg)
    # Test, mask train+valid:
    #   user 0: masked {0,1,2}; ranking 3,4,5 ; truth {3,4} -> top1 hit, top2 two hits
    #   user 1: masked {5,4};   ranking 3,2,1,0 ; truth {0} -> no hit in top 2
    #   user 2: masked {0};     all ties -> ranking 1,2,3 ; truth {1} -> hit at rank 1
    assert result.users.tolist() == [0, 1, 2]
    assert result.topk is not None
    assert result.topk.tolist() == [[3, 4, 5], [3, 2, 1], [1, 2, 3]]
    assert result.per_user["recall@1"].tolist() == [0.5, 0.0, 1.0]
    assert result.per_user["recall@2"].tolist() == [1.0, 0.0, 1.0]
    assert result.per_user["precision@2"].tolist() == [1.0, 0.0, 0.5]
    assert result.per_user["ndcg@2"].tolist() == pytest.approx([1.0, 0.0, 1.0])
    # mean over evaluated users: recall@1 = (0.5 + 0 + 1) / 3
    assert result.summary["recall@1"] == pytest.approx(1.5 / 3)
    assert result.protocol["masking"] == "train+valid"
    assert result.protocol["users_evaluated"] == 3

    # all_users: the same sum divided by n_users = 4 (PLD).
    all_users = evaluate(
        matrix_scorer(scores), spec, "test", cfg.model_copy(update={"average": "all_users"})
    )
    assert all_users.summary["recall@1"] == pytest.approx(1.5 / 4)
    assert all_users.protocol["denominator"] == 4

    # MMRec: test masks train only -> user 0 ranks valid item 2 first (a miss at rank 1).
    train_only = evaluate(
        matrix_scorer(scores), spec, "test", cfg.model_copy(update={"test_mask": "train"})
    )
    assert train_only.topk is not None
    assert train_only.topk[0].tolist() == [2, 3, 4]
    assert train_only.per_user["recall@1"][0] == 0.0
    assert train_only.protocol["masking"] == "train"

    # Validation: mask train only, truth = valid, no export.
    valid = evaluate(matrix_scorer(scores), spec, "valid", cfg)
    assert valid.users.tolist() == [0, 1]
    assert valid.topk is None
    # user 0: ranking 2,3,.. truth {2} -> hit at 1 ; user 1: ranking 4,3,... truth {4} -> hit
    assert valid.per_user["recall@1"].tolist() == [1.0, 1.0]


def test_train_items_never_recommended() -> None:
    gen = torch.Generator().manual_seed(3)
    n_users, n_items = 40, 60
    train = [(u, i) for u in range(n_users) for i in range(n_items) if (u * 7 + i * 3) % 5 == 0]
    test = [(u, (u * 11 + 1) % n_items) for u in range(n_users)]
    test = [p for p in test if p not in set(train)]
    spec = make_spec(n_users, n_items, train, [], test)
    scores = torch.randn(n_users, n_items, generator=gen)
    # Give train items the highest scores: masking must still remove them.
    for u, i in train:
        scores[u, i] = 100.0
    cfg = EvalConfig(ks=(10, 30), export_topk=30)
    result = evaluate(matrix_scorer(scores), spec, "test", cfg)
    assert result.topk is not None
    train_set = set(train)
    for row, u in zip(result.topk.tolist(), result.users.tolist(), strict=True):
        assert not any((u, i) in train_set for i in row)


def test_scorer_always_called_with_fixed_block() -> None:
    scores, spec = small_problem()
    calls: list[int] = []
    evaluate(matrix_scorer(scores, calls), spec, "test", EvalConfig(batch_users=2))
    assert calls == [SCORE_BLOCK]


def test_view_scores_are_not_modified() -> None:
    # A most-popular style scorer returning an expanded view of a shared vector.
    _, spec = small_problem()
    pop = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0, 0.0])

    def scorer(users: Tensor) -> Tensor:
        return pop.unsqueeze(0).expand(len(users), -1)

    result = evaluate(scorer, spec, "test", EvalConfig(ks=(1,)))
    assert pop.tolist() == [5.0, 4.0, 3.0, 2.0, 1.0, 0.0]
    # pop ranking 0,1,2,3,4,5 minus each user's train+valid items:
    #   user 0 -> 3 (truth {3,4}: 1/2), user 1 -> 0 (truth {0}: 1), user 2 -> 1 (truth {1}: 1)
    assert result.per_user["recall@1"].tolist() == [0.5, 1.0, 1.0]


def test_errors() -> None:
    scores, spec = small_problem()
    scorer = matrix_scorer(scores)
    with pytest.raises(ConfigError, match="split"):
        evaluate(scorer, spec, "train", EvalConfig())
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        EvalConfig(ks=(0,))
    with pytest.raises(ConfigError, match="ks"):  # a config built without validation
        evaluate(scorer, spec, "test", EvalConfig.model_construct(ks=(0,)))
    with pytest.raises(RecsysError, match="shape"):
        evaluate(lambda u: scores[u][:, :3], spec, "test", EvalConfig())
    nan_scores = scores.clone()
    nan_scores[1, 2] = float("nan")
    with pytest.raises(RecsysError, match="NaN"):
        evaluate(matrix_scorer(nan_scores), spec, "test", EvalConfig())
    empty = make_spec(2, 3, [(0, 0)], [], [(1, 1)])
    with pytest.raises(DataError, match="no user"):
        evaluate(scorer, empty, "test", EvalConfig())


class _Cfg(StrictModel):
    dim: int = 4


class _TinyMF(Model):
    Config = _Cfg

    def __init__(self, cfg: _Cfg, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        gen = torch.Generator().manual_seed(0)
        self.user = nn.Parameter(torch.randn(spec.n_users, cfg.dim, generator=gen))
        self.item = nn.Parameter(torch.randn(spec.n_items, cfg.dim, generator=gen))
        self.grad_seen: list[bool] = []

    def scorer(self) -> Scorer:
        def score(users: Tensor) -> Tensor:
            out = self.user[users] @ self.item.T
            self.grad_seen.append(out.requires_grad)
            return out

        return score


def test_evaluate_model_restores_mode_and_disables_grad() -> None:
    _, spec = small_problem()
    model = _TinyMF(_Cfg(), spec)
    model.train()
    result = evaluate_model(model, spec, "test", EvalConfig())
    assert isinstance(result, EvalResult)
    assert model.training
    assert model.grad_seen == [False]
    model.eval()
    evaluate_model(model, spec, "valid", EvalConfig())
    assert not model.training


# ----------------------------------------- batch-size invariance on trained embeddings


def ml100k_path() -> Path:
    found = importlib.util.find_spec("recbole")
    if found is None or found.origin is None:
        pytest.skip("recbole is not installed: no ml-100k copy to read")
    path = Path(found.origin).parent / "dataset_example" / "ml-100k" / "ml-100k.inter"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="module")
def trained_ml100k() -> tuple[DataSpec, Tensor, Tensor]:
    frame = pl.read_csv(ml100k_path(), separator="\t").select(
        pl.col("user_id:token").cast(pl.Utf8).alias("user"),
        pl.col("item_id:token").cast(pl.Utf8).alias("item"),
    )
    user_ids = np.sort(frame["user"].unique().to_numpy())
    item_ids = np.sort(frame["item"].unique().to_numpy())
    users = np.searchsorted(user_ids, frame["user"].to_numpy()).astype(np.int64)
    items = np.searchsorted(item_ids, frame["item"].to_numpy()).astype(np.int64)
    # Random 80/10/10 split of the interactions, seeded.
    rng = np.random.default_rng(20240611)
    part = rng.random(len(users))
    masks = [part < 0.8, (part >= 0.8) & (part < 0.9), part >= 0.9]
    splits = [
        Interactions(torch.from_numpy(users[m].copy()), torch.from_numpy(items[m].copy()))
        for m in masks
    ]
    has_train = torch.zeros(len(user_ids), dtype=torch.bool)
    has_train[splits[0].users] = True

    def eval_users(inter: Interactions) -> Tensor:
        present = torch.zeros(len(user_ids), dtype=torch.bool)
        present[inter.users] = True
        return (present & has_train).nonzero().squeeze(1)

    spec = DataSpec(
        name="ml-100k",
        data_hash="test",
        n_users=len(user_ids),
        n_items=len(item_ids),
        train=splits[0],
        valid=splits[1],
        test=splits[2],
        user_ids=user_ids,
        item_ids=item_ids,
        eval_users_valid=eval_users(splits[1]),
        eval_users_test=eval_users(splits[2]),
    )
    # A tiny MF trained with BPR for 3 epochs, plain torch.
    torch.manual_seed(0)
    user_emb = nn.Parameter(torch.randn(spec.n_users, 32) * 0.1)
    item_emb = nn.Parameter(torch.randn(spec.n_items, 32) * 0.1)
    opt = torch.optim.Adam([user_emb, item_emb], lr=0.01)
    gen = torch.Generator().manual_seed(1)
    n_train = len(spec.train)
    for _ in range(3):
        order = torch.randperm(n_train, generator=gen)
        for start in range(0, n_train, 1024):
            idx = order[start : start + 1024]
            u, i = spec.train.users[idx], spec.train.items[idx]
            j = torch.randint(0, spec.n_items, (len(idx),), generator=gen)
            eu = user_emb[u]
            diff = (eu * item_emb[i]).sum(1) - (eu * item_emb[j]).sum(1)
            loss = -torch.nn.functional.logsigmoid(diff).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return spec, user_emb.detach().clone(), item_emb.detach().clone()


def test_fixed_shape_gemm_rows_do_not_depend_on_position(
    trained_ml100k: tuple[DataSpec, Tensor, Tensor],
) -> None:
    _, user_emb, item_emb = trained_ml100k
    first = user_emb[0:SCORE_BLOCK] @ item_emb.T
    shifted = user_emb[100 : 100 + SCORE_BLOCK] @ item_emb.T
    assert torch.equal(first[100:], shifted[: SCORE_BLOCK - 100])


def test_batch_size_invariance_on_trained_mf(
    trained_ml100k: tuple[DataSpec, Tensor, Tensor],
) -> None:
    spec, user_emb, item_emb = trained_ml100k
    seen: dict[int, dict[int, Tensor]] = {}

    def recording_scorer(batch_users: int) -> Scorer:
        rows = seen.setdefault(batch_users, {})

        def scorer(users: Tensor) -> Tensor:
            out = user_emb[users] @ item_emb.T
            for r, u in enumerate(users.tolist()):
                rows.setdefault(u, out[r].clone())
            return out

        return scorer

    results = {
        b: evaluate(
            recording_scorer(b),
            spec,
            "test",
            EvalConfig(ks=(5, 10, 20), batch_users=b, export_topk=50),
        )
        for b in (1, 7, 100, 256, 1000, 5000)
    }
    ref = results[256]
    # The model learned something: far above random (~0.01 recall@20 on ml-100k).
    assert ref.summary["recall@20"] > 0.05
    assert ref.n_users_evaluated > 800
    for b, res in results.items():
        # The raw scores themselves are bit-identical (scoring 1 or 7 rows at a time instead
        # changes about half of them in the last bits on CPU).
        assert seen[b].keys() == seen[256].keys()
        assert all(torch.equal(seen[b][u], seen[256][u]) for u in seen[256]), b
        assert np.array_equal(res.users, ref.users), b
        assert res.topk is not None and ref.topk is not None
        assert np.array_equal(res.topk, ref.topk), b
        for name, values in ref.per_user.items():
            assert np.array_equal(res.per_user[name], values), (b, name)
        assert res.summary == ref.summary


@pytest.mark.gpu
def test_cuda_scores_match_cpu_on_exact_values() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    # Integer-valued scores are exact on any device, so CPU and CUDA must agree bit for bit,
    # ties included; the masking and hit lookup then run on the GPU.
    gen = torch.Generator().manual_seed(5)
    n_users, n_items = 300, 500
    scores = torch.randint(0, 4, (n_users, n_items), generator=gen).to(torch.float32)
    cells = torch.randint(0, 12, (n_users, n_items), generator=gen)
    pairs = {c: [(int(u), int(i)) for u, i in (cells == c).nonzero().tolist()] for c in (1, 2, 3)}
    spec = make_spec(n_users, n_items, pairs[1], pairs[2], pairs[3])
    cfg = EvalConfig(ks=(5, 20), batch_users=700)
    on_cpu = evaluate(matrix_scorer(scores), spec, "test", cfg)
    on_gpu = evaluate(matrix_scorer(scores.cuda()), spec, "test", cfg, device="cuda")
    assert on_gpu.topk is not None and on_cpu.topk is not None
    assert np.array_equal(on_gpu.topk, on_cpu.topk)
    for name, values in on_cpu.per_user.items():
        assert np.array_equal(on_gpu.per_user[name], values), name
