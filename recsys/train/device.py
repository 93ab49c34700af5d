"""Device selection."""

from __future__ import annotations

import torch

from recsys.errors import ConfigError


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """Turn a device setting into a :class:`torch.device`.

    Args:
        name: ``"auto"`` (the first CUDA device when available, else the CPU), ``"cpu"``,
            ``"cuda"``, ``"cuda:1"``, ... or a ``torch.device``.

    Raises:
        ConfigError: an unknown device string, or CUDA asked for but not available.
    """
    if isinstance(name, torch.device):
        device = name
    elif name == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    else:
        try:
            device = torch.device(name)
        except RuntimeError:
            raise ConfigError(
                f"device {name!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'"
            ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) present"
            )
    return device
