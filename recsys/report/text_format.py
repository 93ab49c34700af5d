"""Plain-text rendering of config values and protocol fields, shared by the report styles."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def join_values(values: Any) -> str:
    """Distinct values as text, shortest first, comma-separated (``"0, 1, 2"``)."""
    items = sorted({str(v) for v in values}, key=lambda s: (len(s), s))
    return ", ".join(items)


def fmt_setting(obj: Any) -> str:
    """A config value on one line: tables as ``k=v, ...`` (None dropped), lists as ``a/b``."""
    if isinstance(obj, Mapping):
        return ", ".join(f"{k}={fmt_setting(v)}" for k, v in obj.items() if v is not None)
    if isinstance(obj, list | tuple):
        return "/".join(fmt_setting(v) for v in obj)
    return str(obj)


def split_rule(dprot: Any) -> str:
    """The split's rule from a data protocol: text, rounding, ties, leakage check, eval users."""
    split = dprot.get("split", {}) if isinstance(dprot, Mapping) else {}
    if not isinstance(split, Mapping):
        return str(split)
    parts = [str(split[k]) for k in ("text", "rounding", "ties", "leakage_check") if k in split]
    if isinstance(dprot, Mapping) and "eval_users" in dprot:
        parts.append(f"evaluated users: {dprot['eval_users']}")
    return "; ".join(parts) or "-"
