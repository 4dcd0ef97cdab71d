"""How the training step executes (not what it computes): the memory format.

Shared by the training loop and ``bench/train_step.py`` so that the bench times exactly the
step the loop runs. ``train.channels_last``: ``auto`` keeps NHWC (channels_last) weights and
batches on CUDA only, as before the setting existed; ``true`` uses it on CPU too, where
oneDNN then skips its NCHW reorders; ``false`` never. NHWC sums the convolutions' products
in another order, so the weights differ from NCHW's in the last bits and then drift apart as
any two float runs do (``tests/test_execution.py`` bounds how far); the default leaves the
CPU step bit for bit as it was. ``torch.compile`` was measured and left out (docs/benchmarks.md).
"""

from __future__ import annotations

import torch
from torch import nn

from mpfas.core.config import TrainConfig


def channels_last(cfg: TrainConfig, device: torch.device) -> bool:
    """Whether weights and batches use the channels_last memory format on ``device``."""
    if cfg.channels_last == "auto":
        return device.type == "cuda"
    return cfg.channels_last is True


def prepare_model(model: nn.Module, cfg: TrainConfig, device: torch.device) -> nn.Module:
    """``model`` (already on ``device``) in the memory format ``cfg`` asks for."""
    return model.to(memory_format=torch.channels_last) if channels_last(cfg, device) else model
