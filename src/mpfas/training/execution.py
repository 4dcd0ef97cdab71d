"""How the training step executes (not what it computes): memory format and ``torch.compile``.

Shared by the training loop and ``bench/train_step.py`` so that the bench times exactly the
step the loop runs. ``train.channels_last``: ``auto`` keeps NHWC (channels_last) weights and
batches on CUDA only, as before these settings existed; ``true`` uses it on CPU too (oneDNN
skips its NCHW reorders; the sums run in another order, so weights differ from NCHW in the
last bits and then drift as any two runs in float do); ``false`` never. ``train.compile``
wraps the HFN in ``torch.compile`` (inductor): the MP and HFN phases freeze different
parameters, so it compiles two graphs, each once.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import TrainConfig


def channels_last(cfg: TrainConfig, device: torch.device) -> bool:
    """Whether weights and batches use the channels_last memory format on ``device``."""
    if cfg.channels_last == "auto":
        return device.type == "cuda"
    return cfg.channels_last is True


def prepare_model(model: nn.Module, cfg: TrainConfig, device: torch.device) -> nn.Module:
    """``model`` (already on ``device``) in the memory format and compiled form ``cfg`` asks for.

    Compiling replaces ``model.hfn``'s forward only: the parameters, state dict and
    checkpoints stay those of the plain module.
    """
    if channels_last(cfg, device):
        model = model.to(memory_format=torch.channels_last)
    if cfg.compile:
        # in place: the HFN's forward runs compiled, its state dict keys stay unchanged; static
        # shapes (the meta-test and meta-train batches differ in size: one graph each)
        model.hfn.compile(dynamic=False)
    return model
