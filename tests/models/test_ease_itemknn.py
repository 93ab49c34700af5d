"""EASE and ItemKNN: closed forms against direct numpy references, hand cases, chunking, and
their quality on ml-100k (clearly above most-popular)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from recsys import api
from recsys.errors import ConfigError
from recsys.models import build_model
from recsys.models.ease import EASE, EASEConfig, ease_weights
from recsys.models.itemknn import ItemKNN, ItemKNNConfig, item_knn
from recsys.spec import DataSpec
from recsys.types import Interactions
from tests.contract.toy_data import make_spec

ROOT = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")
POP_TEST_NDCG10 = 0.1407  # most-popular on the same split (conf/exp/ml100k-pop.toml)


def random_spec(
    n_users: int, n_items: int, density: float, seed: int
) -> tuple[DataSpec, np.ndarray]:
    """A random binary train matrix as a spec (every pair listed twice: duplicates count once),
    and the dense matrix."""
    rng = np.random.default_rng(seed)
    x = (rng.random((n_users, n_items)) < density).astype(np.float64)
    u, i = np.nonzero(x)
    users = torch.from_numpy(np.concatenate([u, u[::-1]]))
    items = torch.from_numpy(np.concatenate([i, i[::-1]]))
    return make_spec(Interactions(users, items), n_users, n_items), x


def all_scores(model: torch.nn.Module, n_users: int) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model.scorer()(torch.arange(n_users)).double().numpy()  # type: ignore[operator]


# --------------------------------------------------------------------------- EASE


def ease_reference(x: np.ndarray, reg: float) -> np.ndarray:
    g = x.T @ x + reg * np.eye(x.shape[1])
    p = np.linalg.inv(g)
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b


@pytest.mark.parametrize("reg", [3.0, 50.0])
def test_ease_matches_numpy_float64(reg: float) -> None:
    spec, x = random_spec(30, 20, 0.3, seed=1)
    ref = ease_reference(x, reg)
    model = EASE(EASEConfig(reg=reg, fit_device="cpu"), spec)
    assert model.weights.dtype == torch.float32
    np.testing.assert_allclose(model.weights.double().numpy(), ref, rtol=0, atol=1e-5)
    assert torch.all(model.weights.diagonal() == 0)
    np.testing.assert_allclose(all_scores(model, 30), x @ ref, rtol=0, atol=1e-5)
    m64 = EASE(EASEConfig(reg=reg, dtype="float64", fit_device="cpu"), spec)
    assert m64.weights.dtype == torch.float64
    np.testing.assert_allclose(m64.weights.numpy(), ref, rtol=0, atol=1e-11)
    np.testing.assert_allclose(all_scores(m64, 30), x @ ref, rtol=0, atol=1e-11)


def test_ease_two_items_by_hand() -> None:
    # X = [[1, 1], [1, 0]], reg 1: G = [[3, 1], [1, 2]], P = [[2, -1], [-1, 3]] / 5,
    # B_01 = -P_01 / P_11 = 1/3 (= x0·x1 / (x0·x0 + 1)), B_10 = -P_10 / P_00 = 1/2.
    spec = make_spec([(0, 0), (0, 1), (1, 0), (1, 0)], 2, 2)
    model = EASE(EASEConfig(reg=1.0, dtype="float64", fit_device="cpu"), spec)
    torch.testing.assert_close(
        model.weights, torch.tensor([[0.0, 1 / 3], [1 / 2, 0.0]], dtype=torch.float64)
    )
    expected = np.array([[1 / 2, 1 / 3], [0.0, 1 / 3]])
    np.testing.assert_allclose(all_scores(model, 2), expected, rtol=1e-12)


def test_ease_large_reg_tends_to_cooccurrence() -> None:
    """λB → XᵀX with a zero diagonal as λ → ∞ (P ≈ (I − XᵀX/λ)/λ)."""
    spec, x = random_spec(25, 12, 0.4, seed=2)
    reg = 1e7
    b = ease_weights(spec, reg, torch.float64, CPU).numpy()
    co = x.T @ x
    np.fill_diagonal(co, 0.0)
    np.testing.assert_allclose(reg * b, co, rtol=0, atol=1e-3 * co.max())


def test_ease_batches_and_subsets_agree() -> None:
    spec, _ = random_spec(40, 15, 0.2, seed=3)
    model = EASE(EASEConfig(reg=10.0, fit_device="cpu"), spec)
    full = all_scores(model, 40)
    sub = model.scorer()(torch.tensor([7, 0, 7, 39])).double().numpy()
    np.testing.assert_allclose(sub, full[[7, 0, 7, 39]], rtol=0, atol=1e-6)


def test_ease_config_bounds_and_item_limit() -> None:
    with pytest.raises(ValidationError, match="reg"):
        EASEConfig(reg=0.0)
    with pytest.raises(ValidationError, match="dtype"):
        EASEConfig.model_validate({"dtype": "float16"})
    spec, _ = random_spec(10, 12, 0.3, seed=4)
    with pytest.raises(ConfigError, match=r"12 items exceed model.max_items = 11.*12×12 float32"):
        EASE(EASEConfig(max_items=11), spec)


# --------------------------------------------------------------------------- ItemKNN


def knn_reference(x: np.ndarray, shrink: float, dtype: type = np.float64) -> np.ndarray:
    """Dense shrunk cosine with the diagonal at -inf (in ``dtype``, the model's order of
    operations: a float32 reference is bitwise the model's, so ties fall the same way)."""
    co = (x.T @ x).astype(dtype)
    norms = np.sqrt(x.sum(axis=0).astype(dtype))
    denom = np.outer(norms, norms) + dtype(shrink)
    with np.errstate(invalid="ignore", divide="ignore"):
        sim = np.where(denom > 0, co / denom, dtype(0.0))
    np.fill_diagonal(sim, -np.inf)
    return sim


def knn_matrix(x: np.ndarray, k: int, shrink: float) -> np.ndarray:
    """The brute-force S: ``S[i, j] = sim(i, j)`` (float64) for the ``k`` best ``i`` of each
    target ``j`` (self excluded; equal similarities: lower index first)."""
    select = knn_reference(x, shrink, np.float32)
    sim = knn_reference(x, shrink)
    s = np.zeros_like(sim)
    for j in range(sim.shape[0]):
        nbr = np.argsort(-select[j], kind="stable")[:k]
        s[nbr, j] = sim[j, nbr]
    return s


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("k", "shrink"), [(4, 3.7), (7, 0.0), (1, 10.0)])
def test_itemknn_matches_brute_force(seed: int, k: int, shrink: float) -> None:
    spec, x = random_spec(40, 15, 0.3, seed=seed)
    idx, val = item_knn(spec, k, shrink, None, CPU)
    select = knn_reference(x, shrink, np.float32)
    expected = np.sort(np.argsort(-select, axis=1, kind="stable")[:, :k], axis=1)
    np.testing.assert_array_equal(idx.numpy(), expected)
    assert not np.any(expected == np.arange(15)[:, None]), "self is never a neighbour"
    sim = knn_reference(x, shrink)
    rows = np.arange(15)[:, None]
    np.testing.assert_allclose(val.double().numpy(), sim[rows, expected], rtol=1e-6, atol=1e-7)


def test_itemknn_scores_match_brute_force() -> None:
    """The scores are X S with the brute-force S (ties at the cut included)."""
    spec, x = random_spec(60, 14, 0.35, seed=5)
    k, shrink = 5, 2.5
    model = ItemKNN(ItemKNNConfig(k=k, shrink=shrink, fit_device="cpu"), spec)
    np.testing.assert_allclose(
        all_scores(model, 60), x @ knn_matrix(x, k, shrink), rtol=1e-6, atol=1e-6
    )


def test_itemknn_chunk_size_does_not_matter() -> None:
    spec, _ = random_spec(50, 13, 0.3, seed=6)
    results = [item_knn(spec, 4, 10.0, chunk, CPU) for chunk in (1, 3, 13, None)]
    for idx, val in results[1:]:
        assert torch.equal(idx, results[0][0]) and torch.equal(val, results[0][1])


def test_itemknn_all_neighbours_and_empty_items() -> None:
    """k >= n_items - 1 keeps every other item (scores = X · sim with a zero diagonal); an item
    nobody has, with shrink 0, gets similarity 0, not NaN."""
    spec, x = random_spec(30, 9, 0.3, seed=7)
    keep = spec.train.items != 4
    spec = make_spec(Interactions(spec.train.users[keep], spec.train.items[keep]), 30, 9)
    x[:, 4] = 0.0
    model = ItemKNN(ItemKNNConfig(k=50, shrink=0.0, fit_device="cpu"), spec)
    assert model.neighbours.shape == (9, 8)
    assert torch.isfinite(model.similarities).all()
    sim = knn_reference(x, 0.0)
    np.fill_diagonal(sim, 0.0)
    np.testing.assert_allclose(all_scores(model, 30), x @ sim, rtol=1e-6, atol=1e-6)


def test_itemknn_config_bounds() -> None:
    with pytest.raises(ValidationError, match="k"):
        ItemKNNConfig(k=0)
    with pytest.raises(ValidationError, match="shrink"):
        ItemKNNConfig(shrink=-1.0)
    with pytest.raises(ValidationError, match="chunk"):
        ItemKNNConfig(chunk=0)


# --------------------------------------------------------------------------- ml-100k


@pytest.fixture(scope="module")
def data_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One prepared-data cache for the module's ml-100k runs."""
    return tmp_path_factory.mktemp("cache")


@pytest.mark.parametrize(("name", "floor"), [("ease", 0.30), ("itemknn", 0.25)])
def test_ml100k_well_above_most_popular(
    name: str, floor: float, data_cache: Path, tmp_path: Path
) -> None:
    sets = [f"data.cache_dir={data_cache.as_posix()}"]
    exp = api.load_experiment(ROOT / f"conf/exp/ml100k-{name}.toml", sets)
    run = api.train(exp, runs_dir=tmp_path / "runs")
    test = run.results["test"]
    assert test["ndcg@10"] > floor > POP_TEST_NDCG10
    assert test["ndcg@20"] > floor
    assert run.results["epochs_run"] == 0
    # The saved state dict reloads into a model built on the same data: same test numbers.
    again = api.load_run(run.dir).evaluate("test").summary
    assert again["ndcg@10"] == test["ndcg@10"]


def test_build_model_registry_names() -> None:
    spec, _ = random_spec(8, 6, 0.5, seed=8)
    assert isinstance(build_model("ease", None, spec, seed=0), EASE)
    assert isinstance(build_model("itemknn", None, spec, seed=0), ItemKNN)
