"""Seeds: one per component, derived from a run seed and the component's name."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch


def derive_seed(seed: int, component: str) -> int:
    """A 63-bit seed for ``component`` that depends only on (seed, component)."""
    digest = hashlib.sha256(f"{seed}:{component}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def generator(seed: int, component: str, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch generator seeded for ``component``."""
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(seed, component))
    return g


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch global RNGs (for code that uses them implicitly)."""
    s = derive_seed(seed, "global")
    random.seed(s)
    np.random.seed(s % (1 << 32))
    torch.manual_seed(s)
