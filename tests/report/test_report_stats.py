"""Report statistics against hand-worked examples and scipy."""

from __future__ import annotations

import pytest

from recsys.report.tables import holm


def test_holm_hand_worked() -> None:
    # p = [0.01, 0.04, 0.03, 0.005], m = 4. Sorted: 0.005, 0.01, 0.03, 0.04.
    # Step-down multipliers 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04 -> monotone max: 0.02, 0.03,
    # 0.06, 0.06. Back in input order: [0.03, 0.06, 0.06, 0.02].
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one() -> None:
    assert holm([0.6, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []
