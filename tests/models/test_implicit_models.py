"""The ``implicit`` wrappers: the train matrix, scores against implicit's own ``recommend``,
seeding, and ml-100k quality through the public API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from recsys import api
from recsys.errors import RecsysError
from recsys.models import MODELS, build_model
from recsys.models.base import Model
from recsys.models.implicit_mf import (
    ImplicitALS,
    ImplicitBPR,
    ImplicitLMF,
    ImplicitMF,
    cuda_usable,
    implicit_seed,
    resolve_threads,
    user_items,
)
from recsys.seeding import derive_seed
from recsys.types import Interactions
from tests.contract.toy_data import block_spec, make_spec

ROOT = Path(__file__).resolve().parents[2]
POP_TEST_NDCG10 = 0.1407  # most-popular on the same split

# Small settings so each fit takes milliseconds (one thread: on toy data more only costs).
SMALL: dict[str, dict[str, Any]] = {
    "implicit-als": {"factors": 8, "iterations": 5, "regularization": 3.0, "threads": 1},
    "implicit-bpr": {"factors": 8, "iterations": 60, "learning_rate": 0.05, "threads": 1},
    "implicit-lmf": {"factors": 8, "iterations": 30, "regularization": 2.0, "threads": 1},
}


@pytest.fixture(scope="module")
def spec():  # type: ignore[no-untyped-def]
    return block_spec(n_users=30, n_items=24, keep=0.5, seed=3)


def small(name: str, **kw: Any) -> Any:
    return MODELS[name].Config(**{**SMALL[name], **kw})


def all_scores(model: Model, n_users: int) -> torch.Tensor:
    with torch.no_grad():
        return model.scorer()(torch.arange(n_users))


def test_registered() -> None:
    assert MODELS["implicit-als"] is ImplicitALS
    assert MODELS["implicit-bpr"] is ImplicitBPR
    assert MODELS["implicit-lmf"] is ImplicitLMF
    assert not any(MODELS[n].trainable for n in SMALL)


def test_user_items_is_binary_with_users_as_rows() -> None:
    # (0, 2) twice, (2, 1) once; user 1 has nothing.
    spec = make_spec([(0, 2), (2, 1), (0, 2), (0, 0)], n_users=3, n_items=4)
    mat = user_items(spec)
    assert mat.format == "csr" and mat.shape == (3, 4) and mat.dtype == np.float32
    expected = np.zeros((3, 4), dtype=np.float32)
    expected[0, 2] = expected[2, 1] = expected[0, 0] = 1.0
    np.testing.assert_array_equal(mat.toarray(), expected)
    assert mat.nnz == 3


@pytest.mark.parametrize("name", list(SMALL))
def test_scores_are_implicits_factor_dot_products(name: str, spec) -> None:  # type: ignore[no-untyped-def]
    """Refit implicit by hand with the seed build_model derives: same factors, and our scores
    equal the scores implicit's recommend returns for every item."""
    cfg = small(name)
    model = build_model(name, cfg, spec, seed=7)
    assert isinstance(model, ImplicitMF)
    torch.manual_seed(derive_seed(7, "model-init"))
    est = model.make_estimator(cfg, implicit_seed())
    matrix = user_items(spec)
    est.fit(matrix, show_progress=False)
    np.testing.assert_array_equal(model.user_factors.numpy(), est.user_factors)
    np.testing.assert_array_equal(model.item_factors.numpy(), est.item_factors)
    extra = {"implicit-als": 0, "implicit-bpr": 1, "implicit-lmf": 2}[name]
    assert model.user_factors.shape == (spec.n_users, cfg.factors + extra)

    users = np.array([0, 5, 17, 29])
    ids, ref = est.recommend(users, matrix[users], N=spec.n_items, filter_already_liked_items=False)
    ours = all_scores(model, spec.n_users)[torch.from_numpy(users)]
    got = torch.gather(ours, 1, torch.from_numpy(ids.astype(np.int64)))
    torch.testing.assert_close(got, torch.from_numpy(ref), rtol=1e-5, atol=1e-5)
    # Each row of ids is a permutation of all items and the scores are sorted descending.
    assert (np.sort(ids, axis=1) == np.arange(spec.n_items)).all()
    assert (np.diff(ref, axis=1) <= 1e-6).all()

    u, v = model.embeddings()  # type: ignore[misc]
    torch.testing.assert_close(all_scores(model, spec.n_users), u @ v.T)


@pytest.mark.parametrize("name", list(SMALL))
def test_seeded_builds_repeat_and_seeds_differ(name: str, spec) -> None:  # type: ignore[no-untyped-def]
    cfg = small(name)
    a = all_scores(build_model(name, cfg, spec, seed=0), spec.n_users)
    b = all_scores(build_model(name, cfg, spec, seed=0), spec.n_users)
    c = all_scores(build_model(name, cfg, spec, seed=1), spec.n_users)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)


def test_als_does_not_depend_on_the_thread_count(spec) -> None:  # type: ignore[no-untyped-def]
    one = build_model("implicit-als", small("implicit-als", threads=1), spec, seed=0)
    two = build_model("implicit-als", small("implicit-als", threads=2), spec, seed=0)
    torch.testing.assert_close(one.item_factors, two.item_factors, rtol=0, atol=0)


def test_models_fit_the_blocks(spec) -> None:  # type: ignore[no-untyped-def]
    """Each user ranks their group's held-out (valid) items above the other group's items:
    AUC over those pairs, averaged over all pairs, is at least 0.95."""
    half_u, half_i = spec.n_users // 2, spec.n_items // 2
    own = torch.zeros(spec.n_users, spec.n_items, dtype=torch.bool)
    own[:half_u, :half_i] = own[half_u:, half_i:] = True
    held = torch.zeros_like(own)
    held[spec.valid.users, spec.valid.items] = True
    pairs = held.unsqueeze(2) & (~own).unsqueeze(1)  # (u, held-out i, other-group j)
    for name in SMALL:
        s = all_scores(build_model(name, small(name), spec, seed=0), spec.n_users)
        above = (s.unsqueeze(2) > s.unsqueeze(1)) & pairs
        assert float(above.sum() / pairs.sum()) >= 0.95, name


@given(st.integers(min_value=0, max_value=2**63 - 1))
@settings(max_examples=50, deadline=None)
def test_implicit_seed_is_a_positive_31_bit_function_of_the_torch_seed(seed: int) -> None:
    torch.manual_seed(seed)
    assert implicit_seed() == 1 + seed % (2**31 - 1)
    assert 1 <= implicit_seed() <= 2**31 - 1


def test_threads_and_gpu_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_threads(0) == torch.get_num_threads()
    assert resolve_threads(3) == 3
    assert ImplicitBPR.Config().threads == 1  # reproducible by default
    assert not cuda_usable(False)
    import implicit.gpu

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(implicit.gpu, "HAS_CUDA", False)
    assert not cuda_usable(True)
    monkeypatch.setattr(implicit.gpu, "HAS_CUDA", True)
    assert cuda_usable(True)


def test_config_bounds_and_empty_train() -> None:
    with pytest.raises(ValidationError, match="factors"):
        ImplicitALS.Config(factors=0)
    with pytest.raises(ValidationError, match="alpha"):
        ImplicitALS.Config(alpha=0.0)
    with pytest.raises(ValidationError, match="threads"):
        ImplicitLMF.Config(threads=-1)
    empty = make_spec(
        Interactions(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)), 2, 3
    )
    with pytest.raises(RecsysError, match="implicit-als: the train split of 'toy' is empty"):
        build_model("implicit-als", None, empty, seed=0)


def test_ml100k_through_the_api(tmp_path: Path) -> None:
    """The shipped configs on the embedded ml-100k: ALS near 0.32 test NDCG@10, BPR and LMF
    above most-popular."""
    ndcg = {}
    for name in ("als", "bpr", "lmf"):
        exp = api.load_experiment(ROOT / "conf" / "exp" / f"ml100k-implicit-{name}.toml")
        run = api.train(exp, runs_dir=tmp_path)
        ndcg[name] = run.results["test"]["ndcg@10"]
        assert run.results["test"]["ndcg@20"] > 0
    assert 0.29 <= ndcg["als"] <= 0.35, ndcg
    assert ndcg["bpr"] > POP_TEST_NDCG10 + 0.05, ndcg
    assert ndcg["lmf"] > POP_TEST_NDCG10 + 0.05, ndcg
