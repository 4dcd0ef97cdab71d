"""The one place a device name (``runtime.device``, ``--device``) becomes a torch device."""

from __future__ import annotations

import torch

from mpfas.core.config import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA when available, else CPU; ``cuda`` fails loudly without a GPU."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("runtime.device: 'cuda' requested but no CUDA device is available")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
