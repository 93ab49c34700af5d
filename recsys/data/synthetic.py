"""Synthetic interaction logs: power-law activity, planted clusters, a fringe, noise, duplicates.

The generator produces raw files the way a user would have them (string ids, repeated rows,
a long tail that iterative k-core filtering peels off over several rounds) at any size from
10^5 to 5·10^7 rows, so that the data pipeline, training and evaluation can be measured as the
data grow, and model quality can be measured against a known structure.

**Sizes** (``N`` = ``n_interactions``, the rows written, duplicates included):

* ``n_users = round(0.1 · N^0.9)``: 3,162 at 10^5, 25,119 at 10^6, 199,526 at 10^7, 372,329
  at 2·10^7, 849,323 at 5·10^7 (about N/32 … N/59);
* ``n_items = round(0.08 · N^0.8)``: 800, 5,048, 31,849, 55,452, 115,416 (about N/125 …
  N/433). Both grow sublinearly, so the mean activity (``10 · N^0.1``) and popularity
  (``12.5 · N^0.2``) grow slowly. Ids that draw no row do not appear in the file;
* ``n_clusters = clip(round(√n_items / 4), 2, 256)``: 7, 18, 45, 59, 85.

**Activity and popularity** are Zipf–Mandelbrot laws over shuffled ranks,
``w_r ∝ (r + q·n)^-s`` with ``q = 0.05``: users ``s = user_exponent`` (2.5), items
``s = item_exponent`` (2.0). A user's expected rows are capped at ``max_user_share · n_items``
(0.25; the excess is spread over the other users).

**Planted structure**: ``k = n_clusters`` unit centroids ``c ∈ R^dim`` (``dim`` = 16) with
affinities ``S = C Cᵀ`` (``S_cc = 1``). Each user has a home cluster ``h(u)`` and each item a
cluster ``g(i)``, balanced over ``0..k-1``. One row is drawn as:

1. a user ``u`` with probability ``∝`` its activity weight;
2. a cluster ``c``: ``h(u)`` with probability ``home_share`` (0.8), else another cluster
   ``∝ exp(S[h(u), c] / temperature)`` (``temperature`` = 0.25), then an item of ``c`` with
   probability ``∝`` its popularity weight;
3. with probability ``noise`` the item is replaced by a noise item, uniform over all items
   (``noise_items = "uniform"``) or by popularity (``"popularity"``).

**Fringe**: ``round(fringe · n_items)`` users and as many items (``fringe`` = 0.3; at most 10%
of the rows) form label ``k``: each fringe user has 6 expected rows, 90% of them on fringe
items (uniformly), the rest uniformly over the clusters, so fringe items get about 5.4 rows
each. This sparse community, of mean degree just under the 5-core threshold of a random graph,
is what iterative k-core filtering peels off layer by layer (8–9 rounds from 10^5 to 2·10^7 rows
with ``user_core = item_core = 5``), like the raw tails of real logs; the Zipf tails add users and
items with 1–2 rows.

**Distinct pairs**: the ``N − round(dup_rate · N)`` drawn rows have
distinct (user, item) pairs. A pair drawn again has its item redrawn for the same user (up to
:data:`ITEM_ROUNDS` times); rows still repeating belong to heavy users whose likely items are
all taken, and are replaced by fresh rows of other (non-fringe) users. Heavy users therefore
saturate below their nominal activity, as in real logs, and the realised share of home-cluster
rows is about 0.5 rather than 0.8; the rows drawn in all are ``SyntheticData.draws`` (4.3x
``N`` at 10^5, 2.5x at 10^7, 2.1x at 5·10^7).

**Duplicates**: ``round(dup_rate · N)`` rows (``dup_rate`` = 0.05) copy uniformly chosen rows
(with replacement) 1 s … 30 days later, with a re-drawn rating: the file has exactly
``N − round(dup_rate · N)`` distinct pairs.

**Ratings** are integers 1–5: ``clip(round(3 + 1.5·S[h(u), g(i)] + 0.5·b_u + 0.5·b_i +
0.7·ε), 1, 5)`` with ``b_u, b_i, ε ~ N(0, 1)`` (fringe: ``S`` = 1 within the fringe, 0 across):
home-cluster rows rate high and noise rows (mostly far clusters) lower. **Timestamps** are
integer seconds from 1.6·10^9 (2020-09-13) over about three years; rows are in time order.

**Determinism**: one ``numpy`` PCG64 stream seeded by ``derive_seed(seed, "synthetic")``,
consumed in fixed :data:`CHUNK`-row blocks: the same arguments give the same rows everywhere.

**Cost** (2-core machine shared with other jobs, ``benchmarks/scaling.py``): vectorised numpy,
with loops only over blocks, clusters and rounds; 0.1 / 0.5 / 6.9 / 14.8 / 40.2 s at 10^5 /
10^6 / 10^7 / 2·10^7 / 5·10^7 rows (about 0.7–0.8 s per 10^6 rows) with a peak of about 50
bytes per row (2.5 GB at 5·10^7). Indices are ``int32``, ratings ``int8``, timestamps ``int64``;
string ids are built only in :func:`to_frame` or while :func:`write_raw` streams the file
(9 s for the 1.35 GB CSV of 5·10^7 rows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from recsys.atomic import atomic_path
from recsys.errors import ConfigError, RecsysError
from recsys.seeding import derive_seed

USER_SCALE, USER_POWER = 0.1, 0.9
"""``n_users = round(USER_SCALE · N^USER_POWER)``."""
ITEM_SCALE, ITEM_POWER = 0.08, 0.8
"""``n_items = round(ITEM_SCALE · N^ITEM_POWER)``."""
MANDELBROT_Q = 0.05
"""Zipf–Mandelbrot offset as a share of the population (flattens the head)."""
FRINGE_DEGREE = 6.0
"""Expected rows of each fringe user; fringe items get about as many."""
MAX_FRINGE_ROWS = 0.1
"""The fringe holds at most this share of the rows (fewer fringe users/items on tiny sets)."""
FRINGE_HOME = 0.9
"""Share of a fringe user's rows on fringe items (the rest: uniform over the clusters)."""
CHUNK = 1 << 22
"""Rows drawn per block (fixed: the random stream, hence the output, depends on it)."""
ITEM_ROUNDS = 4
"""Rounds of :func:`_distinct_rows` that redraw a repeated pair's item for the same user."""
MAX_ROUNDS = 100
"""Rounds of :func:`_distinct_rows` that add fresh rows before it gives up."""
T0 = 1_600_000_000
"""First timestamp (2020-09-13, seconds)."""
SPAN = 3 * 365 * 86_400
"""Timestamps of the drawn rows spread over about this many seconds."""
MAX_DELAY = 30 * 86_400
"""A duplicate comes 1 … MAX_DELAY seconds after the row it copies."""
USER_PREFIX, ITEM_PREFIX = "u", "i"


@dataclass(frozen=True)
class SyntheticData:
    """Generated interactions as integer arrays, with the planted ground truth.

    Attributes:
        users, items: ``(N,)`` int32 user / item indices (``0..n_users-1`` / ``0..n_items-1``).
        ratings: ``(N,)`` int8 ratings 1–5.
        timestamps: ``(N,)`` int64 seconds, non-decreasing (rows are in time order).
        n_users, n_items: the index spaces (some indices may draw no row).
        user_cluster: ``(n_users,)`` int32 home cluster of each user (``n_clusters``: the
            fringe).
        item_cluster: ``(n_items,)`` int32 cluster of each item (``n_clusters``: the fringe).
        centroids: ``(n_clusters, dim)`` float32 unit cluster vectors.
        is_noise: ``(N,)`` bool: the row's item is a noise item (duplicates copy the flag).
        is_duplicate: ``(N,)`` bool: the row is a planted copy of an earlier row.
        draws: rows drawn in all to get distinct pairs (module doc).
    """

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray
    n_users: int
    n_items: int
    user_cluster: np.ndarray
    item_cluster: np.ndarray
    centroids: np.ndarray
    is_noise: np.ndarray
    is_duplicate: np.ndarray
    draws: int

    def __len__(self) -> int:
        return int(self.users.size)

    @property
    def n_clusters(self) -> int:
        return int(self.centroids.shape[0])


def default_sizes(n_interactions: int) -> tuple[int, int, int]:
    """``(n_users, n_items, n_clusters)`` for ``N`` rows (the module's formulas)."""
    n = float(n_interactions)
    n_users = max(10, round(USER_SCALE * n**USER_POWER))
    n_items = max(10, round(ITEM_SCALE * n**ITEM_POWER))
    n_clusters = int(np.clip(round(math.sqrt(n_items) / 4), 2, 256))
    return n_users, n_items, n_clusters


def zipf_mandelbrot(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` float64 weights ``(r + q·n)^-s / Σ`` with the ranks ``r = 1..n`` shuffled."""
    ranks = rng.permutation(n).astype(np.float64) + 1.0
    w = (ranks + MANDELBROT_Q * n) ** -exponent
    return np.asarray(w / w.sum())


def cap_shares(p: np.ndarray, cap: float, rounds: int = 20) -> np.ndarray:
    """Probabilities with every entry at most ``cap`` (the excess spread over the others
    proportionally, repeated until it holds; unchanged when ``cap >= max(p)``)."""
    p = p.copy()
    for _ in range(rounds):
        over = p > cap
        if not over.any():
            break
        excess = float((p[over] - cap).sum())
        p[over] = cap
        free = ~over
        p[free] *= 1.0 + excess / float(p[free].sum())
    return p / p.sum()


def _labels(
    n: int, n_fringe: int, k: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, is_fringe)``: ``n_fringe`` random elements get label ``k`` (the fringe), the
    others ``0..k-1``, each label used ``floor`` or ``ceil`` of ``(n − n_fringe) / k`` times."""
    is_fringe = np.zeros(n, dtype=bool)
    is_fringe[rng.choice(n, n_fringe, replace=False)] = True
    labels = np.full(n, k, dtype=np.int32)
    labels[~is_fringe] = rng.permutation(n - n_fringe) % k
    return labels, is_fringe


def cluster_mix(affinity: np.ndarray, home_share: float, temperature: float) -> np.ndarray:
    """``(k, k)`` rows ``P(c | h)``: ``home_share`` on ``c = h``, the rest over the other clusters
    ``∝ exp(S[h, c] / temperature)`` (all of it on ``h`` when ``k = 1``)."""
    k = affinity.shape[0]
    if k == 1:
        return np.ones((1, 1))
    logits = affinity.astype(np.float64) / temperature
    np.fill_diagonal(logits, -np.inf)
    mix = np.exp(logits - logits.max(axis=1, keepdims=True))
    mix *= (1.0 - home_share) / mix.sum(axis=1, keepdims=True)
    np.fill_diagonal(mix, home_share)
    return mix


def grouped_draw(
    groups: np.ndarray,
    values: list[np.ndarray],
    probs: list[np.ndarray],
    rng: np.random.Generator,
) -> np.ndarray:
    """One draw per row: row ``r`` gets a value of ``values[groups[r]]`` with ``probs[g]``.

    Vectorised per group (a loop over the groups, never over rows): the ``m`` rows of group
    ``g`` get ``Multinomial(m, probs[g])`` copies of each value in a uniformly shuffled order,
    which is exactly ``m`` independent draws.

    Args:
        groups: ``(n,)`` small non-negative ints (< ``len(values)``).
        values: per group, the ``int32`` values to draw from.
        probs: per group, their probabilities (summing to 1).
        rng: the random stream.

    Returns:
        ``(n,)`` int32 draws.
    """
    order = np.argsort(groups.astype(np.int16), kind="stable")
    counts = np.bincount(groups, minlength=len(values))
    out = np.empty(groups.size, dtype=np.int32)
    pos = 0
    for g in np.flatnonzero(counts):
        m = int(counts[g])
        drawn = np.repeat(values[g], rng.multinomial(m, probs[g]))
        rng.shuffle(drawn)
        out[order[pos : pos + m]] = drawn
        pos += m
    return out


@dataclass(frozen=True)
class _Model:
    """Everything one row's item draw needs (steps 2–3 of the module doc)."""

    user_cluster: np.ndarray
    mix: list[np.ndarray]
    cluster_items: list[np.ndarray]
    cluster_probs: list[np.ndarray]
    item_p: np.ndarray
    noise: float
    noise_items: str

    @property
    def n_items(self) -> int:
        return int(self.item_p.size)

    def items_for(
        self, users: np.ndarray, is_noise: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Draw one ``int32`` item per row of ``users``: a noise item where ``is_noise``."""
        k = len(self.mix)
        clusters = np.arange(k, dtype=np.int32)
        cluster = grouped_draw(self.user_cluster[users], [clusters] * k, self.mix, rng)
        items = grouped_draw(cluster, self.cluster_items, self.cluster_probs, rng)
        m = int(is_noise.sum())
        if m:
            if self.noise_items == "uniform":
                items[is_noise] = rng.integers(0, self.n_items, m, dtype=np.int32)
            else:
                counts = rng.multinomial(m, self.item_p)
                picked = np.repeat(np.arange(self.n_items, dtype=np.int32), counts)
                rng.shuffle(picked)
                items[is_noise] = picked
        return items


def _draw_rows(
    is_noise: np.ndarray, user_p: np.ndarray, model: _Model, rng: np.random.Generator
) -> np.ndarray:
    """Independent rows (noise rows where ``is_noise``) as int64 codes
    ``2·(user·n_items + item) + is_noise``."""
    m = is_noise.size
    all_users = np.arange(user_p.size, dtype=np.int32)
    out = np.empty(m, dtype=np.int64)
    for start in range(0, m, CHUNK):
        size = min(CHUNK, m - start)
        users = np.repeat(all_users, rng.multinomial(size, user_p))
        rng.shuffle(users)
        noisy = is_noise[start : start + size]
        items = model.items_for(users, noisy, rng)
        pair = users.astype(np.int64) * model.n_items + items
        out[start : start + size] = 2 * pair + noisy
    return out


def _repeats(pair: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, taken)``: the sorted rows whose pair another row also has (all but one per
    pair) and the sorted distinct pairs."""
    order = np.argsort(pair)
    sorted_pair = pair[order]
    same = sorted_pair[1:] == sorted_pair[:-1]
    rows = np.sort(order[1:][same])
    return rows, sorted_pair[np.concatenate(([True], ~same))]


def _new_pairs(candidates: np.ndarray, taken: np.ndarray) -> np.ndarray:
    """Bool mask of the candidates whose pair is not in the sorted ``taken``, one per pair.

    One sort of the candidates serves both tests (looking sorted queries up in a large array is
    ~15x faster than random ones).
    """
    order = np.argsort(candidates)
    cand = candidates[order]
    new = np.ones(cand.size, dtype=bool)
    new[1:] = cand[1:] != cand[:-1]
    if taken.size:
        pos = np.minimum(np.searchsorted(taken, cand), taken.size - 1)
        new &= taken[pos] != cand
    ok = np.empty(cand.size, dtype=bool)
    ok[order] = new
    return ok


def _distinct_rows(
    n: int,
    user_p: np.ndarray,
    model: _Model,
    rng: np.random.Generator,
    refill_p: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """``n`` rows with distinct (user, item) pairs, drawn by the model (module doc).

    1. Draw ``n`` independent rows.
    2. Up to :data:`ITEM_ROUNDS` times, redraw the item of every row whose pair repeats an
       earlier one, keeping its user (so light users keep their counts).
    3. Drop the rows still repeating (heavy users whose likely items are all taken: their
       activity saturates, as in real logs) and replace them by fresh rows (new users drawn
       with ``refill_p``, default ``user_p``, and new items), keeping new pairs only, until
       ``n`` rows are distinct.

    Returns:
        ``(codes, draws)``: ``(n,)`` int64 codes ``2·pair + is_noise`` in random order, and the
        number of rows drawn in all.

    Raises:
        RecsysError: still short after :data:`MAX_ROUNDS` rounds (too few possible pairs).
    """
    n_items = np.int64(model.n_items)
    codes = _draw_rows(rng.random(n) < model.noise, user_p, model, rng)
    draws = n
    todo, taken = _repeats(codes >> 1)
    for _ in range(ITEM_ROUNDS):
        if todo.size == 0:
            break
        users = ((codes[todo] >> 1) // n_items).astype(np.int32)
        is_noise = (codes[todo] & 1).astype(bool)
        items = model.items_for(users, is_noise, rng)
        draws += todo.size
        pair = users.astype(np.int64) * n_items + items
        ok = _new_pairs(pair, taken)
        codes[todo[ok]] = 2 * pair[ok] + is_noise[ok]
        taken = np.sort(np.concatenate([taken, pair[ok]]))
        todo = todo[~ok]
    # Lost rows are replaced in kind: as many clean and noise rows as were lost.
    need = [int(np.count_nonzero((codes[todo] & 1) == bit)) for bit in (0, 1)]
    if todo.size:
        keep = np.ones(n, dtype=bool)
        keep[todo] = False
        codes = codes[keep]
    accept = 0.5  # share of fresh rows with a new pair, re-estimated every round
    for _ in range(MAX_ROUNDS):
        if need == [0, 0]:
            break
        m = [math.ceil(c / accept * 1.1) + 16 if c else 0 for c in need]
        flags = np.repeat(np.array([False, True]), m)
        new = _draw_rows(flags, user_p if refill_p is None else refill_p, model, rng)
        draws += flags.size
        new = new[_new_pairs(new >> 1, taken)]
        accept = max(new.size / flags.size, 0.02)
        parts = []
        for bit in (0, 1):
            part = new[(new & 1) == bit]
            if part.size > need[bit]:
                part = part[np.sort(rng.choice(part.size, need[bit], replace=False))]
            need[bit] -= part.size
            parts.append(part)
        codes = np.concatenate([codes, *parts])
        taken = np.sort(np.concatenate([taken, *(p >> 1 for p in parts)]))
    if codes.size < n:
        raise RecsysError(
            f"synthetic: only {codes.size} of {n} distinct (user, item) pairs after {MAX_ROUNDS} "
            "rounds; use more users or items"
        )
    if todo.size:
        codes = codes[rng.permutation(n)]  # the fresh rows were appended
    return codes, draws


def _ratings(
    affinity: np.ndarray,
    user_cluster: np.ndarray,
    item_cluster: np.ndarray,
    user_bias: np.ndarray,
    item_bias: np.ndarray,
    users: np.ndarray,
    items: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """int8 ratings ``clip(round(3 + 1.5·S + 0.5·b_u + 0.5·b_i + 0.7·ε), 1, 5)``, in blocks."""
    out = np.empty(users.size, dtype=np.int8)
    for start in range(0, users.size, CHUNK):
        u = users[start : start + CHUNK]
        i = items[start : start + CHUNK]
        s = affinity[user_cluster[u], item_cluster[i]]
        eps = rng.standard_normal(u.size, dtype=np.float32)
        raw = 3.0 + 1.5 * s + 0.5 * user_bias[u] + 0.5 * item_bias[i] + 0.7 * eps
        out[start : start + CHUNK] = np.clip(np.rint(raw), 1, 5).astype(np.int8)
    return out


def generate_arrays(
    n_interactions: int,
    *,
    seed: int = 0,
    noise: float = 0.0,
    dup_rate: float = 0.05,
    dim: int = 16,
    n_users: int | None = None,
    n_items: int | None = None,
    n_clusters: int | None = None,
    user_exponent: float = 2.5,
    item_exponent: float = 2.0,
    home_share: float = 0.8,
    temperature: float = 0.25,
    max_user_share: float = 0.25,
    fringe: float = 0.3,
    noise_items: Literal["uniform", "popularity"] = "uniform",
) -> SyntheticData:
    """Generate ``n_interactions`` rows as integer arrays (see the module doc for the model).

    Args:
        n_interactions: rows ``N``, planted duplicates included (>= 10).
        seed: the seed; equal arguments give equal arrays.
        noise: share of rows whose item is noise, in [0, 1].
        dup_rate: share of rows that are planted duplicates, in [0, 0.5].
        dim: dimension of the cluster centroids.
        n_users, n_items, n_clusters: override the size formulas.
        user_exponent, item_exponent: Zipf–Mandelbrot exponents ``s`` (> 0).
        home_share: probability that a row's cluster is the user's home cluster, in [0, 1].
        temperature: softness of the choice among the other clusters (> 0).
        max_user_share: a user's expected rows are at most this share of the catalogue.
        fringe: fringe items as a share of the catalogue (as many fringe users), in [0, 1).
        noise_items: how noise items are drawn.

    Raises:
        ConfigError: an argument out of range, or sizes that cannot hold the rows.
        RecsysError: not enough distinct pairs could be drawn (extreme overrides).
    """
    _check(n_interactions, noise, dup_rate, dim, home_share, temperature, max_user_share, fringe)
    if noise_items not in ("uniform", "popularity"):
        raise ConfigError(
            f"synthetic: noise_items must be 'uniform' or 'popularity', got {noise_items!r}"
        )
    d_users, d_items, d_clusters = default_sizes(n_interactions)
    n_users = d_users if n_users is None else n_users
    n_items = d_items if n_items is None else n_items
    n_dup = round(dup_rate * n_interactions)
    n_base = n_interactions - n_dup
    n_fringe = min(round(fringe * n_items), math.floor(MAX_FRINGE_ROWS * n_base / FRINGE_DEGREE))
    k = min(d_clusters if n_clusters is None else n_clusters, n_items - n_fringe)
    if n_users - n_fringe < 1 or k < 1 or user_exponent <= 0 or item_exponent <= 0:
        raise ConfigError(
            f"synthetic: need a user and an item outside the fringe, n_clusters >= 1 and "
            f"positive exponents (got n_users={n_users}, n_items={n_items}, {n_fringe} fringe "
            f"users/items, n_clusters={k}, exponents {user_exponent}, {item_exponent})"
        )
    if n_base > max_user_share * n_users * n_items:
        raise ConfigError(
            f"synthetic: {n_base} distinct pairs do not fit {n_users} users x {n_items} items "
            f"with max_user_share={max_user_share}; pass larger n_users / n_items (the default "
            "sizes suit n_interactions >= 10^4)"
        )
    rng = np.random.Generator(np.random.PCG64(derive_seed(seed, "synthetic")))

    centroids = rng.standard_normal((k, dim)).astype(np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    affinity = np.zeros((k + 1, k + 1), dtype=np.float32)  # row/column k: the fringe
    affinity[:k, :k] = centroids @ centroids.T
    affinity[k, k] = 1.0
    user_cluster, fringe_users = _labels(n_users, n_fringe, k, rng)
    item_cluster, fringe_items = _labels(n_items, n_fringe, k, rng)
    fringe_mass = n_fringe * FRINGE_DEGREE / n_base
    user_p = np.full(n_users, FRINGE_DEGREE / n_base)
    core_p = zipf_mandelbrot(n_users - n_fringe, user_exponent, rng)
    cap = max_user_share * n_items / n_base / (1.0 - fringe_mass)
    user_p[~fringe_users] = cap_shares(core_p, cap) * (1.0 - fringe_mass)
    item_p = np.full(n_items, FRINGE_DEGREE / n_base)
    item_p[~fringe_items] = zipf_mandelbrot(n_items - n_fringe, item_exponent, rng) * (
        1.0 - fringe_mass
    )
    item_p /= item_p.sum()
    mix = np.zeros((k + 1, k + 1))
    mix[:k, :k] = cluster_mix(affinity[:k, :k], home_share, temperature)
    mix[k, :k] = (1.0 - FRINGE_HOME) / k
    mix[k, k] = FRINGE_HOME
    members = [np.flatnonzero(item_cluster == c).astype(np.int32) for c in range(k + 1)]
    model = _Model(
        user_cluster=user_cluster,
        mix=list(mix),
        cluster_items=members,
        cluster_probs=[item_p[m] / item_p[m].sum() if m.size else item_p[m] for m in members],
        item_p=item_p,
        noise=noise,
        noise_items=noise_items,
    )

    refill_p = np.where(fringe_users, 0.0, user_p)
    codes, draws = _distinct_rows(n_base, user_p, model, rng, refill_p / refill_p.sum())

    # Time order: the distinct rows get increasing timestamps in their (random) order; each
    # duplicate comes 1 s ... MAX_DELAY after the row it copies; one stable merge sorts them.
    gap = SPAN / max(n_base, 1)
    steps = rng.integers(0, max(1, round(2 * gap)) + 1, n_base, dtype=np.int64)
    ts = T0 + np.cumsum(steps)
    src = rng.integers(0, n_base, n_dup, dtype=np.int64)
    ts_all = np.concatenate([ts, ts[src] + rng.integers(1, MAX_DELAY + 1, n_dup)])
    del ts
    order = np.argsort(ts_all, kind="stable")  # a sorted run + a short unsorted one
    ts_all = ts_all[order]
    codes = codes[np.concatenate([np.arange(n_base), src])[order]]
    del src
    is_noise = (codes & 1).astype(bool)
    pair = codes >> 1
    del codes
    users = (pair // n_items).astype(np.int32)
    items = (pair % n_items).astype(np.int32)
    del pair
    is_dup = order >= n_base
    del order

    user_bias = rng.standard_normal(n_users, dtype=np.float32)
    item_bias = rng.standard_normal(n_items, dtype=np.float32)
    ratings = _ratings(
        affinity, user_cluster, item_cluster, user_bias, item_bias, users, items, rng
    )
    return SyntheticData(
        users=users,
        items=items,
        ratings=ratings,
        timestamps=ts_all,
        n_users=n_users,
        n_items=n_items,
        user_cluster=user_cluster,
        item_cluster=item_cluster,
        centroids=centroids,
        is_noise=is_noise,
        is_duplicate=is_dup,
        draws=draws,
    )


def _check(
    n: int,
    noise: float,
    dup_rate: float,
    dim: int,
    home_share: float,
    temperature: float,
    max_user_share: float,
    fringe: float,
) -> None:
    problems = []
    if n < 10:
        problems.append(f"n_interactions must be >= 10, got {n}")
    if not 0.0 <= noise <= 1.0:
        problems.append(f"noise must be in [0, 1], got {noise}")
    if not 0.0 <= dup_rate <= 0.5:
        problems.append(f"dup_rate must be in [0, 0.5], got {dup_rate}")
    if dim < 1:
        problems.append(f"dim must be >= 1, got {dim}")
    if temperature <= 0:
        problems.append(f"temperature must be > 0, got {temperature}")
    if not 0.0 <= fringe < 1.0:
        problems.append(f"fringe must be in [0, 1), got {fringe}")
    if not 0.0 < max_user_share <= 1.0:
        problems.append(f"max_user_share must be in (0, 1], got {max_user_share}")
    if not 0.0 <= home_share <= 1.0:
        problems.append(f"home_share must be in [0, 1], got {home_share}")
    if problems:
        raise ConfigError("synthetic: " + "; ".join(problems))


def _id_width(n: int) -> int:
    return len(str(max(n - 1, 0)))


def _lazy_frame(data: SyntheticData) -> pl.LazyFrame:
    """String ids (``u`` / ``i`` + zero-padded index, so they sort like the index), rating and
    timestamp, built lazily from the integer columns."""
    raw = pl.DataFrame(
        {
            "u": data.users,
            "i": data.items,
            "rating": data.ratings,
            "timestamp": data.timestamps,
        }
    )

    def ids(col: str, prefix: str, width: int) -> pl.Expr:
        digits = pl.col(col).cast(pl.String).str.zfill(width)
        return pl.concat_str([pl.lit(prefix), digits])

    return raw.lazy().select(
        ids("u", USER_PREFIX, _id_width(data.n_users)).alias("user_id"),
        ids("i", ITEM_PREFIX, _id_width(data.n_items)).alias("item_id"),
        pl.col("rating"),
        pl.col("timestamp"),
    )


def to_frame(data: SyntheticData) -> pl.DataFrame:
    """The raw frame: ``user_id`` / ``item_id`` (String, e.g. ``"u000123"``), ``rating``
    (Int8, 1–5), ``timestamp`` (Int64 seconds), in time order."""
    return _lazy_frame(data).collect()


def generate(n_interactions: int, **options: Any) -> pl.DataFrame:
    """Generate a raw interaction frame: :func:`generate_arrays` (same keyword options) then
    :func:`to_frame`."""
    return to_frame(generate_arrays(n_interactions, **options))


def write_raw(data: pl.DataFrame | SyntheticData, path: str | Path, level: int = 1) -> Path:
    """Write a raw CSV (header ``user_id,item_id,rating,timestamp``) atomically.

    A path ending in ``.gz`` is gzip-compressed at ``level``. :class:`SyntheticData` is
    streamed: its string ids are formatted batch by batch while writing, never all at once.

    Returns:
        The path written.
    """
    path = Path(path)
    lf = _lazy_frame(data) if isinstance(data, SyntheticData) else data.lazy()
    gz = path.suffix == ".gz"
    with atomic_path(path) as tmp:
        lf.sink_csv(
            tmp,
            compression="gzip" if gz else "uncompressed",
            compression_level=level if gz else None,
            check_extension=False,
        )
    return path
