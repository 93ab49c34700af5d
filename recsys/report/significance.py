"""Significance statistics of the offline report: seed confidence intervals and paired tests.

* **Seed interval.** :func:`mean_ci` gives the mean of a metric over model seeds and the
  two-sided Student-t interval ``mean ± t_{(1+level)/2, n-1} · sd / √n`` (``sd`` with
  ``ddof = 1``).
* **Paired tests.** :func:`paired_tests` compares two systems on the same users: ``x_u`` and
  ``y_u`` are user ``u``'s metric under each, ``d_u = x_u - y_u``. It reports ``Δ = mean(d)``,
  the effect size ``d_z = mean(d) / sd(d)`` and three two-sided p-values: the paired t-test,
  the Wilcoxon signed-rank test and a sign-flip permutation test of ``mean(d)``.
* **Multiple comparisons.** :func:`holm_table` is Holm's step-down correction. It must run over
  ALL the comparisons a report makes (every system × metric × dataset tested), not per table,
  or the family-wise error rate it controls is that of one table only.

All functions are pure: numpy in, numbers out.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from recsys.report.tables import holm

EXACT_MAX_N = 16
"""Largest number of pairs for which the permutation test enumerates all ``2^n`` sign vectors."""

_CHUNK_ELEMENTS = 1 << 20
"""Sign-matrix entries materialised at once by the permutation test (bounds its memory)."""

PERM_TOLERANCE = 1e-12
"""A permuted ``|mean|`` counts as extreme when it is ``≥ |mean_obs| - PERM_TOLERANCE``, so
rounding in the sums cannot drop the observed sign vector or its ties."""


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of ``values`` (one per model seed) and its two-sided
    Student-t confidence interval at ``level``.

    ``low, high = mean ∓ t_{(1+level)/2, n-1} · sd / √n`` with ``sd`` the sample standard
    deviation (``ddof = 1``); equal to ``scipy.stats.t.interval(level, n - 1, loc=mean,
    scale=scipy.stats.sem(values))``. With one value the interval is undefined and ``low`` and
    ``high`` are NaN; when all values are equal it is the point ``(mean, mean)``.

    Raises:
        ValueError: no values, a NaN or infinite value, or ``level`` outside ``(0, 1)``.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"mean_ci needs a non-empty 1-D sequence, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("mean_ci: values contain NaN or infinity")
    if not 0.0 < level < 1.0:
        raise ValueError(f"mean_ci: level must be in (0, 1), got {level}")
    n = arr.size
    mean = float(arr.mean())
    if n == 1:
        return mean, float("nan"), float("nan")
    sem = float(arr.std(ddof=1)) / np.sqrt(n)
    half = float(stats.t.ppf((1.0 + level) / 2.0, n - 1)) * sem
    return mean, mean - half, mean + half


@dataclass(frozen=True)
class PairedResult:
    """Paired comparison of ``x`` against ``y`` over ``n`` users, ``d = x - y``.

    Attributes:
        n: number of pairs.
        delta: ``mean(d)`` (NaN when ``n = 0``).
        d_z: ``mean(d) / sd(d)`` with ``ddof = 1``; 0 when ``sd = 0`` or ``n < 2``.
        p_t: two-sided paired t-test (``scipy.stats.ttest_rel``); 1 when every ``d = 0`` or
            ``n < 2``.
        p_wilcoxon: two-sided Wilcoxon signed-rank test of ``d`` with ``zero_method="zsplit"``;
            1 when every ``d = 0`` or ``n < 2``.
        p_perm: two-sided sign-flip permutation test of ``mean(d)``, exact for
            ``n ≤ EXACT_MAX_N``, Monte Carlo otherwise (see :func:`paired_tests`).
    """

    n: int
    delta: float
    d_z: float
    p_t: float
    p_wilcoxon: float
    p_perm: float


def paired_tests(
    x: np.ndarray, y: np.ndarray, *, n_perm: int = 20000, seed: int = 0
) -> PairedResult:
    """Paired tests of ``x`` (a system) against ``y`` (the reference), aligned per user.

    With ``d = x - y``:

    * ``p_t``: paired t-test, ``t = mean(d) / (sd(d) / √n)`` on ``n - 1`` degrees of freedom.
    * ``p_wilcoxon``: Wilcoxon signed-rank test on ``d`` (scipy's default method choice: exact
      for small samples without ties or zeros, asymptotic normal otherwise). Zeros are kept
      with ``zero_method="zsplit"`` (each zero is ranked and its rank split half to the
      positive, half to the negative sum): per-user metric differences have many exact zeros
      (users on whom both lists hit nothing), and ``"wilcox"`` would drop them, so the test
      would speak only of the users where the systems differ and ``n`` would shrink to them.
      ``"zsplit"`` keeps every evaluated user, a tie counting as evidence for neither side.
    * ``p_perm``: under the null each ``d_u`` is symmetric about 0, so flipping signs is as
      likely as not. For ``n ≤ EXACT_MAX_N`` all ``2^n`` sign vectors ``s`` are enumerated and
      ``p = #{s: |mean(s·d)| ≥ |mean(d)| - PERM_TOLERANCE} / 2^n``. Otherwise ``n_perm`` sign
      vectors are drawn uniformly from ``numpy.random.default_rng(seed)`` and
      ``p = (1 + #extreme) / (1 + n_perm)`` (never below ``1 / (1 + n_perm)``). Sign vectors
      are processed in chunks of about ``2^20`` entries, so memory stays bounded.

    Raises:
        ValueError: ``x`` and ``y`` are not 1-D of the same length, contain NaN or infinity,
            or ``n_perm < 1``.
    """
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    if xa.ndim != 1 or xa.shape != ya.shape:
        raise ValueError(
            f"paired_tests needs two 1-D arrays of equal length, got {xa.shape} and {ya.shape}"
        )
    if not (np.all(np.isfinite(xa)) and np.all(np.isfinite(ya))):
        raise ValueError("paired_tests: x or y contains NaN or infinity")
    if n_perm < 1:
        raise ValueError(f"paired_tests: n_perm must be >= 1, got {n_perm}")
    d = xa - ya
    n = int(d.size)
    if n == 0:
        return PairedResult(0, float("nan"), 0.0, 1.0, 1.0, 1.0)
    delta = float(d.mean())
    sd = float(d.std(ddof=1)) if n > 1 else 0.0
    d_z = delta / sd if sd > 0 else 0.0
    p_perm = _permutation_pvalue(d, n_perm, seed)
    if n < 2 or not np.any(d != 0):
        return PairedResult(n, delta, d_z, 1.0, 1.0, p_perm)
    with warnings.catch_warnings():
        # A constant non-zero difference (sd = 0) makes scipy warn about precision loss; its
        # t is infinite and p = 0, which is the right answer.
        warnings.simplefilter("ignore", RuntimeWarning)
        p_t = float(stats.ttest_rel(xa, ya).pvalue)
        p_w = float(stats.wilcoxon(d, zero_method="zsplit").pvalue)
    return PairedResult(n, delta, d_z, p_t, p_w, p_perm)


def _permutation_pvalue(d: np.ndarray, n_perm: int, seed: int) -> float:
    """Two-sided sign-flip permutation p-value of ``mean(d)`` (see :func:`paired_tests`).

    A sign vector ``s = 1 - 2b`` (``b`` a 0/1 row) gives ``Σ s·d = Σ d - 2 b·d``.
    """
    n = d.size
    total = float(d.sum())
    threshold = abs(total / n) - PERM_TOLERANCE
    rows = max(1, _CHUNK_ELEMENTS // n)
    extreme = 0
    if n <= EXACT_MAX_N:
        n_vectors = 1 << n
        shifts = np.arange(n, dtype=np.int64)
        for start in range(0, n_vectors, rows):
            codes = np.arange(start, min(start + rows, n_vectors), dtype=np.int64)
            bits = ((codes[:, None] >> shifts) & 1).astype(np.float64)
            means = (total - 2.0 * (bits @ d)) / n
            extreme += int(np.count_nonzero(np.abs(means) >= threshold))
        return extreme / n_vectors
    rng = np.random.default_rng(seed)
    n_bytes = (n + 7) // 8
    done = 0
    while done < n_perm:
        m = min(rows, n_perm - done)
        packed = rng.integers(0, 256, size=(m, n_bytes), dtype=np.uint8)
        bits = np.unpackbits(packed, axis=1, count=n).astype(np.float64)
        means = (total - 2.0 * (bits @ d)) / n
        extreme += int(np.count_nonzero(np.abs(means) >= threshold))
        done += m
    return (1 + extreme) / (1 + n_perm)


def holm_table(p: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in input order (:func:`recsys.report.tables.holm`).

    Sorted ascending, the ``i``-th smallest (``i = 1..m``) becomes
    ``min(1, max_{j ≤ i} (m - j + 1) · p_(j))``. Pass ALL comparisons of a report at once
    (every system, metric and dataset tested): correcting table by table controls the
    family-wise error of each table only.
    """
    return holm([float(v) for v in p])
