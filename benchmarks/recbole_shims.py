"""The RecBole 1.2.1 compatibility shims, now :mod:`recsys.baselines.recbole_shims`.

Kept so that ``benchmarks/recbole_epoch_time.py`` (which puts only ``benchmarks/`` on the path)
can still ``import recbole_shims; recbole_shims.apply()``. Call :func:`apply` before importing
any ``recbole`` module, and only in the process that runs RecBole.
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    from recsys.baselines.recbole_shims import apply
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from recsys.baselines.recbole_shims import apply

__all__ = ["apply"]
