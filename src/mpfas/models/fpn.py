"""One feature-pyramid stream of the HFN.

A stream is a registered backbone body (``mpfas.models.backbones``: C3, C4, C5; the paper's
is a torchvision ResNet) plus the pyramid layers of the official HFN: 1x1 laterals on
C3/C4/C5 to 256 channels, 3x3 smoothing convs after each top-down merge (P4, P3), and
RetinaNet-style P6 = conv3x3/2(C5), P7 = conv3x3/2(ReLU(P6)). There is no P5 smoothing
conv and P6 is only a step to P7, as in the official code. The fusion lives in
``hfn.py``, which runs the body and these layers itself (level by level, averaging the
streams), so a stream has no ``forward`` of its own.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from mpfas.models.backbones import get_backbone
from mpfas.models.backbones.resnet import ResNetBody

__all__ = ["FPN_CHANNELS", "FPNStream", "ResNetBody", "upsample_add"]

FPN_CHANNELS = 256


def upsample_add(top: Tensor, lateral: Tensor) -> Tensor:
    """Nearest-upsample ``top`` to ``lateral``'s size and add (the top-down merge)."""
    return F.interpolate(top, size=lateral.shape[-2:], mode="nearest") + lateral


class FPNStream(nn.Module):
    """Backbone body + pyramid layers; the HFN fuses two of these level by level."""

    def __init__(self, arch: str, channels: int = FPN_CHANNELS, init: str = "normal") -> None:
        super().__init__()
        backbone = get_backbone(arch)
        self.body = backbone.build()
        c3, c4, c5 = backbone.channels
        self.lateral3 = nn.Conv2d(c3, channels, kernel_size=1)
        self.lateral4 = nn.Conv2d(c4, channels, kernel_size=1)
        self.lateral5 = nn.Conv2d(c5, channels, kernel_size=1)
        self.smooth4 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.smooth3 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv6 = nn.Conv2d(c5, channels, kernel_size=3, stride=2, padding=1)
        self.conv7 = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=1)
        if init not in ("normal", "official"):
            raise ValueError(f"model.pyramid_init: {init!r} is not one of ['normal', 'official']")
        # "normal": N(0, 0.01) weights, zero bias. The official network code writes the same
        # init, but its trainer then assembles the state dict so that the pyramid keeps
        # PyTorch's default init ("official"); the HFN copies it into both streams.
        if init == "normal":
            for conv in self.pyramid_convs():
                nn.init.normal_(conv.weight, std=0.01)
                nn.init.zeros_(conv.bias)

    def pyramid_convs(self) -> tuple[nn.Conv2d, ...]:
        """The layers on top of the ResNet body (laterals, smoothing, P6/P7)."""
        return (self.lateral3, self.lateral4, self.lateral5, self.smooth4, self.smooth3, self.conv6, self.conv7)

    def p7(self, c5: Tensor) -> Tensor:
        """The coarsest level, stride 128 (P7), from C5 via P6."""
        return self.conv7(F.relu(self.conv6(c5)))
