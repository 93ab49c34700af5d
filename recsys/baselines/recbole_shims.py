"""Compatibility shims that let RecBole 1.2.1 run on numpy 2, scipy >= 1.13, torch >= 2.6, pandas 3.

RecBole 1.2.1 was released against numpy 1, scipy < 1.13, torch < 2.6 and pandas 2. On the
versions this project pins, it breaks in four places:

* numpy 2 removed ``np.float_``, ``np.complex_``, ``np.unicode_`` and ``np.bool8``;
  ``Config.compatibility_settings`` reads them (``np.float = np.float_``) and crashes.
* scipy >= 1.13 removed the private ``dok_matrix._update`` that LightGCN/NGCF/NCL/GCMC's
  ``get_norm_adj_mat`` call to bulk-insert the adjacency entries.
* torch >= 2.6 defaults ``torch.load(weights_only=True)``, which rejects RecBole's checkpoints
  (they pickle the config) when a trainer restores its best model.
* pandas 3 (copy-on-write) turns ``df[col].fillna(..., inplace=True)`` in
  ``Dataset._fill_nan`` into a silent no-op, so NaNs would survive.

Call :func:`apply` once, BEFORE importing any ``recbole`` module, and only in the process that
runs RecBole: :mod:`recsys.baselines.recbole_worker` (a subprocess) does. The patches change
global library state (``torch.load``'s default above all), so the ``recsys`` process itself
never applies them; importing this module patches nothing.
"""

from __future__ import annotations

import functools
from typing import Any

_APPLIED = False

NUMPY_ALIASES = ("float_", "complex_", "unicode_", "bool8", "string_")
"""numpy 1 names RecBole reads, restored as aliases of their numpy 2 equivalents."""


def _patch_numpy() -> None:
    """Restore the numpy 1 aliases RecBole reads (as aliases of their numpy 2 equivalents)."""
    import numpy as np

    targets = (np.float64, np.complex128, np.str_, np.bool_, np.bytes_)
    for name, target in zip(NUMPY_ALIASES, targets, strict=True):
        if name not in np.__dict__:
            setattr(np, name, target)


def _dok_update(self: Any, data: dict[tuple[int, int], Any]) -> None:
    """``dok_matrix._update`` as scipy < 1.13 had it: ``dict.update`` of the stored entries.

    Keys are ``(row, col)`` pairs and values are stored as given, without bounds checks, exactly
    like the removed private method (later entries for the same key win).
    """
    self._dict.update(data)


def _patch_scipy() -> None:
    """Give ``scipy.sparse.dok_matrix`` back its private ``_update``."""
    import scipy.sparse as sp

    if not hasattr(sp.dok_matrix, "_update"):
        setattr(sp.dok_matrix, "_update", _dok_update)  # noqa: B010 (private attribute)


def _patch_torch() -> None:
    """Make ``torch.load`` default to ``weights_only=False`` (RecBole pickles its config)."""
    import torch

    if getattr(torch.load, "_recbole_shim", False):
        return
    original = torch.load

    @functools.wraps(original)
    def load(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("weights_only", False)
        return original(*args, **kwargs)

    load._recbole_shim = True  # type: ignore[attr-defined]
    setattr(torch, "load", load)  # noqa: B010 (module attribute)


def _fill_nan(self: Any) -> None:
    """``Dataset._fill_nan`` rewritten with assignments instead of chained ``inplace`` fills.

    Same semantics as RecBole 1.2.1: token fields get 0 (``[PAD]``), float fields the column
    mean, sequence fields an empty array.
    """
    import numpy as np
    from recbole.utils import FeatureType

    for feat_name in self.feat_name_list:
        feat = getattr(self, feat_name)
        for field in feat:
            ftype = self.field2type[field]
            if ftype == FeatureType.TOKEN:
                feat[field] = feat[field].fillna(value=0)
            elif ftype == FeatureType.FLOAT:
                feat[field] = feat[field].fillna(value=feat[field].mean())
            else:
                dtype = np.int64 if ftype == FeatureType.TOKEN_SEQ else np.float64
                feat[field] = feat[field].apply(
                    lambda x, dt=dtype: np.array([], dtype=dt) if isinstance(x, float) else x
                )


def _patch_recbole_dataset() -> None:
    """Replace ``Dataset._fill_nan`` (must run after numpy is patched; imports recbole.data)."""
    from recbole.data.dataset import Dataset

    Dataset._fill_nan = _fill_nan


def apply() -> None:
    """Apply every shim (idempotent). Call before importing ``recbole`` anywhere else."""
    global _APPLIED
    if _APPLIED:
        return
    _patch_numpy()
    _patch_scipy()
    _patch_torch()
    _patch_recbole_dataset()
    _APPLIED = True
