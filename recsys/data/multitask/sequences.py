"""Behaviour sequences from strictly earlier events, vectorised.

For queries ``(user, t)`` and one behaviour's events ``(user, time, item)``, the sequence is
the user's last ``L`` events with ``time < t`` (an event at the same time is not earlier),
oldest first, left-padded with 0, items stored as ``item + 1``.

Implementation: events and queries are keyed ``user · (T + 1) + rank(time)`` over the distinct
times ``T`` of both; ``searchsorted(left)`` of a query's key counts the events before it, and
of ``user · (T + 1)`` the events of earlier users, so the last ``L`` earlier events of the
same user are a slice of the sorted events, gathered for all queries at once.
"""

from __future__ import annotations

import numpy as np


def last_before(
    ev_users: np.ndarray,
    ev_times: np.ndarray,
    ev_items: np.ndarray,
    q_users: np.ndarray,
    q_times: np.ndarray,
    length: int,
) -> np.ndarray:
    """``(Q, length)`` int64: per query, the user's last ``length`` events before its time.

    Args:
        ev_users, ev_times, ev_items: the events (any order; times are numbers, may repeat).
        q_users, q_times: the queries (``+inf`` time: all of the user's events).
        length: ``L``.
    """
    times, inverse = np.unique(np.concatenate([ev_times, q_times]), return_inverse=True)
    stride = np.int64(times.size + 1)
    ev_keys = ev_users.astype(np.int64) * stride + inverse[: ev_times.size]
    order = np.argsort(ev_keys, kind="stable")
    ev_keys, items = ev_keys[order], ev_items[order].astype(np.int64)
    q_users = q_users.astype(np.int64)
    before = np.searchsorted(ev_keys, q_users * stride + inverse[ev_times.size :], side="left")
    first = np.searchsorted(ev_keys, q_users * stride, side="left")
    idx = before[:, None] - length + np.arange(length, dtype=np.int64)[None, :]
    valid = idx >= first[:, None]
    if items.size == 0:
        return np.zeros((q_users.size, length), dtype=np.int64)
    return np.where(valid, items[np.clip(idx, 0, None)] + 1, 0)
