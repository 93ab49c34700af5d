"""Cohorts, popularity groups and list statistics against hand-computed small cases and
brute-force references."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from recsys.errors import RecsysError
from recsys.report.cohorts import (
    activity_cohorts,
    cohort_table,
    item_group_recall,
    list_stats,
    popularity_groups,
)

# 6 items, 10 train users. Item 0 is the most popular; items 1 and 2 tie at 5.
ITEM_COUNTS = np.array([10, 5, 5, 2, 0, 1])
N_TRAIN_USERS = 10
TOPK = np.array([[0, 1], [0, 2], [0, 3], [1, 4]])  # 4 users × K = 2


# --- activity cohorts ----------------------------------------------------------------------


def test_activity_cohorts_equal_frequency() -> None:
    # Users 0..9; users 8 and 9 are not evaluated. Evaluated counts 1..8 (shuffled order):
    # quartile edges at 2.75, 4.5, 6.25 -> {1, 2}, {3, 4}, {5, 6}, {7, 8}.
    train_counts = np.array([5, 1, 8, 3, 2, 7, 4, 6, 100, 0])
    labels = activity_cohorts(train_counts, np.arange(8))
    assert labels.tolist() == [
        "Q3 (5–6)",
        "Q1 (1–2)",
        "Q4 (7–8)",
        "Q2 (3–4)",
        "Q1 (1–2)",
        "Q4 (7–8)",
        "Q2 (3–4)",
        "Q3 (5–6)",
    ]
    # Evaluated users picked by index, in any order.
    assert activity_cohorts(train_counts, np.array([2, 1])).tolist() == ["Q2 (8–8)", "Q1 (1–1)"]


def test_activity_cohorts_ties_share_a_bin_and_bins_collapse() -> None:
    # Counts [1]*6 + [2, 3]: edges np.quantile at .25, .5, .75 = 1, 1, 1.25. A count equal to
    # an edge goes to the lower bin: every 1 -> bin 0; 2 and 3 exceed all edges -> bin 3.
    # Bins 1 and 2 are empty and dropped: two cohorts, renumbered Q1, Q2.
    counts = np.array([1, 1, 2, 1, 1, 3, 1, 1])
    labels = activity_cohorts(counts, np.arange(8))
    assert (
        labels.tolist()
        == ["Q1 (1–1)"] * 2 + ["Q2 (2–3)"] + ["Q1 (1–1)"] * 2 + ["Q2 (2–3)"] + ["Q1 (1–1)"] * 2
    )
    # Counts [1, 2, 2, 2, 2, 3]: edges 2, 2, 2. The 1 and every 2 are <= the first edge
    # (bin 0, so the 2s are never split); the 3 exceeds all edges (bin 3).
    labels = activity_cohorts(np.array([1, 2, 2, 2, 2, 3]), np.arange(6))
    assert labels.tolist() == ["Q1 (1–2)"] * 5 + ["Q2 (3–3)"]
    # One distinct count: one cohort.
    assert set(activity_cohorts(np.full(5, 4), np.arange(5)).tolist()) == {"Q1 (4–4)"}
    # Users with equal counts always get equal labels.
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 6, size=200)
    labels = activity_cohorts(counts, np.arange(200), n_bins=4)
    for c in np.unique(counts):
        assert len(set(labels[counts == c].tolist())) == 1
    assert activity_cohorts(counts, np.array([], dtype=np.int64)).shape == (0,)
    with pytest.raises(ValueError, match="n_bins"):
        activity_cohorts(counts, np.arange(3), n_bins=0)


# --- popularity groups ---------------------------------------------------------------------


def test_popularity_groups_head_with_ties() -> None:
    # ceil(0.2 · 6) = 2 head items: item 0 (10), then items 1 and 2 tie at 5 -> lower index 1.
    assert popularity_groups(ITEM_COUNTS, 0.2).tolist() == [True, True, False] + [False] * 3
    # ceil(0.5 · 6) = 3: items 0, 1, 2.
    assert popularity_groups(ITEM_COUNTS, 0.5).tolist() == [True, True, True, False, False, False]
    # 10 items all tied, 0.7 · 10 = 7 items (not 8 from rounding): indices 0..6.
    assert popularity_groups(np.zeros(10, dtype=np.int64), 0.7).tolist() == [True] * 7 + [False] * 3
    assert not popularity_groups(ITEM_COUNTS, 0.0).any()
    assert popularity_groups(ITEM_COUNTS, 1.0).all()
    with pytest.raises(ValueError, match="head_share"):
        popularity_groups(ITEM_COUNTS, 1.5)


# --- cohort table --------------------------------------------------------------------------


def test_cohort_table_means_and_order() -> None:
    per_user = pl.DataFrame(
        {
            "user_idx": [0, 1, 2, 3, 4],
            "recall@20": [0.5, 0.0, 1.0, 0.25, 0.75],
            "ndcg@20": [0.2, 0.0, 0.6, 0.1, 0.3],
        }
    )
    labels = np.array(["Q10 (9–9)", "Q2 (3–4)", "Q10 (9–9)", "Q1 (1–2)", "Q2 (3–4)"])
    table = cohort_table(per_user, labels, ["recall@20", "ndcg@20"])
    assert table.columns == ["cohort", "users", "recall@20", "ndcg@20"]
    assert table["cohort"].to_list() == ["Q1 (1–2)", "Q2 (3–4)", "Q10 (9–9)"]
    assert table["users"].to_list() == [1, 2, 2]
    assert table["recall@20"].to_list() == pytest.approx([0.25, 0.375, 0.75])
    assert table["ndcg@20"].to_list() == pytest.approx([0.1, 0.15, 0.4])
    with pytest.raises(ValueError, match="align"):
        cohort_table(per_user, labels[:3], ["recall@20"])
    with pytest.raises(RecsysError, match="mrr@20"):
        cohort_table(per_user, labels, ["mrr@20"])


# --- list statistics -----------------------------------------------------------------------


def test_list_stats_by_hand() -> None:
    head = popularity_groups(ITEM_COUNTS, 0.2)  # items 0, 1
    stats = list_stats(TOPK, ITEM_COUNTS, N_TRAIN_USERS, head)
    # Slots: 0, 1, 0, 2, 0, 3, 1, 4 -> counts 10, 5, 10, 5, 10, 2, 5, 0.
    # Distinct items {0, 1, 2, 3, 4}: coverage 5/6.
    assert stats["coverage"] == pytest.approx(5 / 6)
    # Self-information -log2(c / 10), item 4 counted as 1: 0, 1, 0, 1, 0, log2 5, 1, log2 10.
    assert stats["novelty"] == pytest.approx((3 + math.log2(5) + math.log2(10)) / 8)
    # ARP: (10 + 5 + 10 + 5 + 10 + 2 + 5 + 0) / 10 / 8 = 47 / 80.
    assert stats["arp"] == pytest.approx(47 / 80)
    # Head slots (items 0, 1): 0, 1, 0, 0, 1 -> 5 of 8.
    assert stats["head_share"] == pytest.approx(5 / 8)
    # Exposure [3, 2, 1, 1, 1, 0], sorted [0, 1, 1, 1, 2, 3]: Σ i·e = 2+3+4+10+18 = 37,
    # G = 2·37 / (6·8) - 7/6 = 18/48.
    assert stats["gini"] == pytest.approx(18 / 48)
    exposure = np.bincount(TOPK.ravel(), minlength=6)
    mean_abs_diff = np.abs(exposure[:, None] - exposure[None, :]).sum()
    assert stats["gini"] == pytest.approx(mean_abs_diff / (2 * 6 * exposure.sum()))


def test_gini_extremes() -> None:
    n_items = 6
    counts = np.ones(n_items, dtype=np.int64)
    head = np.zeros(n_items, dtype=bool)
    uniform = np.array([[0, 1, 2], [3, 4, 5]])
    assert list_stats(uniform, counts, 4, head)["gini"] == pytest.approx(0.0, abs=1e-15)
    one_item = np.full((3, 1), 2)
    stats = list_stats(one_item, counts, 4, head)
    assert stats["gini"] == pytest.approx((n_items - 1) / n_items)
    assert stats["coverage"] == pytest.approx(1 / 6)
    assert stats["head_share"] == 0.0
    with pytest.raises(ValueError, match="outside"):
        list_stats(np.array([[0, 6]]), counts, 4, head)
    with pytest.raises(ValueError, match="at least one"):
        list_stats(np.empty((0, 2), dtype=np.int64), counts, 4, head)


# --- item-group recall ---------------------------------------------------------------------


def test_item_group_recall_by_hand() -> None:
    head = popularity_groups(ITEM_COUNTS, 0.2)  # items 0, 1
    test_items = [np.array([0, 5]), np.array([2, 3]), np.array([1, 3]), np.array([], dtype=int)]
    # k = 2. User 0: head {0} hit (1/1); tail {5} missed (0/1). User 1: no head; tail {2, 3}:
    # 2 hit (1/2). User 2: head {1} missed (0/1); tail {3} hit (1/1). User 3: nothing.
    # head: mean(1, 0) = 0.5 over 2 users; tail: mean(0, 0.5, 1) = 0.5 over 3 users.
    out = item_group_recall(TOPK, test_items, head, k=2)
    assert out == pytest.approx({"head": 0.5, "tail": 0.5, "head_users": 2.0, "tail_users": 3.0})
    # k = 1: user 0 head hit 1; user 1 tail 0/2; user 2 (item 0) 0/1 head, 0/1 tail.
    out = item_group_recall(TOPK, test_items, head, k=1)
    assert out == pytest.approx({"head": 0.5, "tail": 0.0, "head_users": 2.0, "tail_users": 3.0})
    # The same as CSR.
    indptr = np.array([0, 2, 4, 6, 6])
    indices = np.array([0, 5, 2, 3, 1, 3])
    assert item_group_recall(TOPK, (indptr, indices), head, k=2) == pytest.approx(
        {"head": 0.5, "tail": 0.5, "head_users": 2.0, "tail_users": 3.0}
    )
    none_head = item_group_recall(TOPK, test_items, np.zeros(6, dtype=bool), k=2)
    assert math.isnan(none_head["head"]) and none_head["head_users"] == 0.0
    with pytest.raises(ValueError, match="cut-off"):
        item_group_recall(TOPK, test_items, head, k=3)
    with pytest.raises(ValueError, match="4 users"):
        item_group_recall(TOPK, test_items[:3], head, k=2)


def reference_group_recall(
    topk: np.ndarray, test_items: list[np.ndarray], head: np.ndarray, k: int
) -> dict[str, float]:
    """Per-user Python loop with sets."""
    per_group: dict[str, list[float]] = {"head": [], "tail": []}
    for u, items in enumerate(test_items):
        recommended = set(topk[u, :k].tolist())
        for name, in_group in (("head", True), ("tail", False)):
            relevant = {int(i) for i in items if bool(head[i]) == in_group}
            if relevant:
                per_group[name].append(len(relevant & recommended) / len(relevant))
    return {
        "head": float(np.mean(per_group["head"])) if per_group["head"] else float("nan"),
        "tail": float(np.mean(per_group["tail"])) if per_group["tail"] else float("nan"),
        "head_users": float(len(per_group["head"])),
        "tail_users": float(len(per_group["tail"])),
    }


@pytest.mark.parametrize("seed", range(5))
def test_item_group_recall_against_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_users, n_items, width = 60, 25, 8
    # Distinct items per list; test sets of 0..6 items (some repeated on purpose).
    topk = np.argsort(rng.random((n_users, n_items)), axis=1)[:, :width]
    test_items = [rng.integers(0, n_items, size=rng.integers(0, 7)) for _ in range(n_users)]
    head = popularity_groups(rng.integers(0, 50, size=n_items), 0.2)
    for k in (1, 3, width):
        got = item_group_recall(topk, test_items, head, k)
        assert got == pytest.approx(reference_group_recall(topk, test_items, head, k), nan_ok=True)
    # A list repeating an item counts it once (the reference uses sets too).
    topk[:, 1] = topk[:, 0]
    got = item_group_recall(topk, test_items, head, width)
    assert got == pytest.approx(reference_group_recall(topk, test_items, head, width), nan_ok=True)
