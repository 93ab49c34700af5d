"""The ``implicit`` library's ALS, BPR and logistic MF as closed-form registry models.

Each model fits its ``implicit`` estimator at construction on the binary user x item matrix of
the train split (:func:`user_items`: ``scipy.sparse.csr_matrix`` of shape
``(n_users, n_items)``, users as rows, 1.0 where the pair occurs in train, duplicates counted
once) and keeps the fitted factors as float32 buffers. Scores are ``s(u, i) = <U_u, V_i>`` over
``implicit``'s own factor matrices, which is the score its ``recommend`` ranks by: BPR and LMF
carry their bias in extra columns (BPR: a column of ones in ``U`` against the item bias in
``V``; LMF: user and item bias columns each met by a column of ones), so ``d`` is
``factors + 1`` (BPR, more on GPU where rows are padded) or ``factors + 2`` (LMF).

Conventions:

* ``trainable = False``: the training loop validates once and runs no epochs; the fit happens
  in the constructor and its wall time is ``fit_seconds`` (also logged at INFO).
* Seeding: ``implicit``'s ``random_state`` is :func:`implicit_seed`, ``1 + s mod (2**31 - 1)``
  with ``s = torch.initial_seed()``, the seed :func:`recsys.models.build_model` has just set from
  the run seed. On the CPU the same run seed and thread count give bit-identical factors for
  ALS and LMF (LMF draws its negatives from per-thread generators, so another thread count gives
  other factors), and for BPR with one thread, its default: BPR's multi-threaded SGD updates
  shared factors without locks, so its result then depends on thread timing.
* Threads: ``threads = 0`` means ``torch.get_num_threads()`` (the ALS and LMF default). BLAS is
  limited to one thread during the fit, as ``implicit`` recommends (its native code
  parallelises over users).
* GPU: with ``use_gpu`` (ALS, BPR), ``implicit``'s CUDA estimators are used when the installed
  ``implicit`` has CUDA (``implicit.gpu.HAS_CUDA``) and torch sees a GPU; their factors are
  copied to the host with ``.to_numpy()``. LMF has no GPU implementation.

``implicit`` (and scipy) are imported inside the functions, so ``import recsys.models`` does not
pay for them.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from pydantic import Field
from torch import Tensor

from recsys.config import StrictModel
from recsys.errors import RecsysError
from recsys.models.base import Model, Scorer, dot_scorer
from recsys.spec import DataSpec

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

log = logging.getLogger(__name__)


def user_items(spec: DataSpec) -> csr_matrix:
    """The binary train matrix ``(n_users, n_items)``: 1.0 (float32) where ``(u, i)`` is in
    train, duplicates counted once."""
    from scipy.sparse import csr_matrix

    users = spec.train.users.numpy()
    items = spec.train.items.numpy()
    ones = np.ones(len(users), dtype=np.float32)
    mat = csr_matrix((ones, (users, items)), shape=(spec.n_users, spec.n_items), dtype=np.float32)
    mat.sum_duplicates()
    mat.data[:] = 1.0
    return mat


def implicit_seed() -> int:
    """``implicit``'s ``random_state``: ``1 + torch.initial_seed() mod (2**31 - 1)``.

    In ``[1, 2**31 - 1]``: positive because ``implicit``'s GPU estimators treat 0 as "seed from the
    clock", and below ``2**31`` for their generator.
    """
    return 1 + torch.initial_seed() % (2**31 - 1)


def resolve_threads(threads: int) -> int:
    """``threads``, or ``torch.get_num_threads()`` when it is 0."""
    return threads if threads > 0 else torch.get_num_threads()


def cuda_usable(use_gpu: bool) -> bool:
    """True when ``use_gpu`` is set, ``implicit`` was built with CUDA and torch sees a GPU."""
    if not use_gpu or not torch.cuda.is_available():
        return False
    import implicit.gpu

    return bool(implicit.gpu.HAS_CUDA)


def _import_implicit() -> None:
    """Load ``implicit``'s CPU estimators (and the BLAS libraries they bring)."""
    import implicit.cpu.als
    import implicit.cpu.bpr
    import implicit.cpu.lmf  # noqa: F401


def _host(factors: Any) -> np.ndarray:
    """A float32 numpy copy of an ``implicit`` factor matrix (numpy, or GPU ``Matrix``)."""
    arr = factors if isinstance(factors, np.ndarray) else factors.to_numpy()
    return np.array(arr, dtype=np.float32, copy=True)


class ImplicitALSConfig(StrictModel):
    """Alternating least squares on confidence-weighted squared loss (Hu, Koren & Volinsky).

    Minimises ``sum_{u,i} c_ui (p_ui - <U_u, V_i>)^2 + regularization (|U|^2 + |V|^2)`` with
    ``p_ui = 1`` for train pairs (0 elsewhere) and ``c_ui = 1 + alpha`` on train pairs, 1
    elsewhere (``implicit`` scales the matrix entries by ``alpha``), solved per row by
    conjugate gradient.
    """

    factors: int = Field(default=64, ge=1)
    """Factor dimension ``d``."""
    regularization: float = Field(default=0.01, ge=0)
    """L2 weight on the factors."""
    alpha: float = Field(default=1.0, gt=0)
    """Confidence scale of the observed entries."""
    iterations: int = Field(default=15, ge=1)
    """ALS sweeps (users then items)."""
    calculate_training_loss: bool = False
    """Have ``implicit`` compute (and log at DEBUG) the loss after each sweep."""
    threads: int = Field(default=0, ge=0)
    """Native threads (0: ``torch.get_num_threads()``)."""
    use_gpu: bool = True
    """Use ``implicit``'s CUDA estimator when it and a GPU are available."""


class ImplicitBPRConfig(StrictModel):
    """Bayesian personalised ranking by SGD over (user, positive, sampled negative) triples."""

    factors: int = Field(default=64, ge=1)
    """Factor dimension, before the bias column ``implicit`` adds."""
    learning_rate: float = Field(default=0.01, gt=0)
    """SGD step size."""
    regularization: float = Field(default=0.01, ge=0)
    """L2 weight on the factors."""
    iterations: int = Field(default=100, ge=1)
    """Epochs over the train pairs."""
    threads: int = Field(default=1, ge=0)
    """Native threads (0: ``torch.get_num_threads()``). One by default: with more, the
    lock-free SGD updates race and the same seed no longer gives the same factors."""
    use_gpu: bool = True
    """Use ``implicit``'s CUDA estimator when it and a GPU are available."""


class ImplicitLMFConfig(StrictModel):
    """Logistic matrix factorisation (Johnson): ``P(u likes i) = sigmoid(<U_u, V_i>)`` with
    user and item biases, fitted by AdaGrad on the train pairs and ``neg_prop`` sampled
    negatives per positive."""

    factors: int = Field(default=30, ge=1)
    """Factor dimension, before the two bias columns ``implicit`` adds."""
    learning_rate: float = Field(default=1.0, gt=0)
    """AdaGrad step size."""
    regularization: float = Field(default=0.6, ge=0)
    """L2 weight on the factors."""
    iterations: int = Field(default=30, ge=1)
    """Epochs over the train pairs."""
    neg_prop: int = Field(default=30, ge=1)
    """Negatives sampled per positive."""
    threads: int = Field(default=0, ge=0)
    """Native threads (0: ``torch.get_num_threads()``)."""


class ImplicitMF(Model):
    """Base of the ``implicit`` wrappers: fit at construction, score by ``U V^T``.

    Subclasses name their estimators and config keys (:meth:`make_estimator`).
    ``user_factors (n_users, d)`` and ``item_factors (n_items, d)`` are buffers, so
    ``state_dict``/``load_state_dict`` round-trip and ``.to(device)`` moves them.
    """

    trainable = False
    label: ClassVar[str] = "implicit"
    user_factors: Tensor
    item_factors: Tensor
    fit_seconds: float
    """Wall time of ``implicit``'s ``fit`` at construction."""

    def __init__(self, cfg: StrictModel, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        from threadpoolctl import threadpool_limits

        _import_implicit()  # before the BLAS limit, so that it covers the BLAS implicit loads
        if len(spec.train) == 0:
            raise RecsysError(f"{self.label}: the train split of {spec.name!r} is empty")
        matrix = user_items(spec)
        with threadpool_limits(1, "blas"):
            estimator = self.make_estimator(cfg, implicit_seed())
            start = time.perf_counter()
            estimator.fit(matrix, show_progress=False)
            self.fit_seconds = time.perf_counter() - start
        users, items = _host(estimator.user_factors), _host(estimator.item_factors)
        if users.shape[0] != spec.n_users or items.shape[0] != spec.n_items:
            raise RecsysError(
                f"{self.label}: implicit returned factors of shape {users.shape} / {items.shape} "
                f"for {spec.n_users} users and {spec.n_items} items"
            )
        log.info("%s: fitted in %.3f s on %s", self.label, self.fit_seconds, spec.name)
        self.register_buffer("user_factors", torch.from_numpy(users))
        self.register_buffer("item_factors", torch.from_numpy(items))

    cpu_estimator: ClassVar[str]
    """``module:Class`` of the CPU estimator."""
    gpu_estimator: ClassVar[str | None] = None
    """``module:Class`` of the CUDA estimator, if ``implicit`` has one."""
    estimator_keys: ClassVar[tuple[str, ...]]
    """Config fields passed to the estimator under the same names."""

    @classmethod
    def make_estimator(cls, cfg: Any, random_state: int) -> Any:
        """The unfitted ``implicit`` estimator for ``cfg``, seeded with ``random_state``: the
        CUDA one when :func:`cuda_usable`, else the CPU one with ``num_threads``."""
        kwargs = {key: getattr(cfg, key) for key in cls.estimator_keys}
        kwargs["random_state"] = random_state
        if cls.gpu_estimator is not None and cuda_usable(getattr(cfg, "use_gpu", False)):
            return _estimator_class(cls.gpu_estimator)(**kwargs)
        kwargs["num_threads"] = resolve_threads(cfg.threads)
        return _estimator_class(cls.cpu_estimator)(**kwargs)

    def scorer(self) -> Scorer:
        return dot_scorer(self.user_factors, self.item_factors)

    def embeddings(self) -> tuple[Tensor, Tensor] | None:
        return self.user_factors, self.item_factors


class ImplicitALS(ImplicitMF):
    """``implicit``'s alternating least squares (see :class:`ImplicitALSConfig`)."""

    Config = ImplicitALSConfig
    label = "implicit-als"
    cpu_estimator = "implicit.cpu.als:AlternatingLeastSquares"
    gpu_estimator = "implicit.gpu.als:AlternatingLeastSquares"
    estimator_keys = (
        "factors",
        "regularization",
        "alpha",
        "iterations",
        "calculate_training_loss",
    )


class ImplicitBPR(ImplicitMF):
    """``implicit``'s Bayesian personalised ranking (see :class:`ImplicitBPRConfig`)."""

    Config = ImplicitBPRConfig
    label = "implicit-bpr"
    cpu_estimator = "implicit.cpu.bpr:BayesianPersonalizedRanking"
    gpu_estimator = "implicit.gpu.bpr:BayesianPersonalizedRanking"
    estimator_keys = ("factors", "learning_rate", "regularization", "iterations")


class ImplicitLMF(ImplicitMF):
    """``implicit``'s logistic matrix factorisation (see :class:`ImplicitLMFConfig`)."""

    Config = ImplicitLMFConfig
    label = "implicit-lmf"
    cpu_estimator = "implicit.cpu.lmf:LogisticMatrixFactorization"
    estimator_keys = ("factors", "learning_rate", "regularization", "iterations", "neg_prop")


def _estimator_class(path: str) -> Any:
    import importlib

    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "ImplicitALS",
    "ImplicitALSConfig",
    "ImplicitBPR",
    "ImplicitBPRConfig",
    "ImplicitLMF",
    "ImplicitLMFConfig",
    "ImplicitMF",
    "cuda_usable",
    "implicit_seed",
    "resolve_threads",
    "user_items",
]
