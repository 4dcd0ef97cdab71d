"""What feeds the HFN's second stream: the learnable Meta Pattern or a fixed handcrafted one.

Every pattern maps a B x 3 x H x W RGB batch in [0, 1] to a B x 3 x H x W pattern in
[0, 1]. The handcrafted ones (HSV, YCrCb, colour LBP) are the texture cues that the
Meta Pattern is meant to replace; they are parameter-free so that the ablation
``model.pattern`` changes only what the second stream sees.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

PATTERN_NAMES = ("meta", "none", "hsv", "ycrcb", "lbp")


class MetaPatternExtractor(nn.Module):
    """The learnable Meta Pattern (MP) extractor of HFN+MP.

    Conv3x3(3->6) . BN . ReLU . Conv3x3(6->3) . BN . Sigmoid, same spatial size as the
    input: 168 + 12 + 165 + 6 = 351 parameters. The official code also builds a
    decoder half that reconstructs RGB from the pattern, but its loss weight is 0 so it
    never influences training; it is omitted here.
    """

    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        hidden = 2 * channels
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, hidden, kernel_size=3, padding=1),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(channels),
            nn.Sigmoid(),
        )

    def forward(self, rgb: Tensor) -> Tensor:
        return self.encoder(rgb)


class HSVPattern(nn.Module):
    """RGB -> HSV, all three channels in [0, 1] (hue / 360), as OpenCV's float conversion."""

    def forward(self, rgb: Tensor) -> Tensor:
        r, g, b = rgb.unbind(dim=1)
        value, _ = rgb.max(dim=1)
        low, _ = rgb.min(dim=1)
        delta = value - low
        sat = torch.where(value > 0, delta / value.clamp_min(1e-12), torch.zeros_like(value))
        safe = delta.clamp_min(1e-12)
        # OpenCV's tie order: the red branch wins over green, green over blue.
        hue = torch.where(
            value == r,
            (g - b) / safe,
            torch.where(value == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe),
        )
        hue = torch.where(delta > 0, torch.remainder(hue / 6.0, 1.0), torch.zeros_like(hue))
        return torch.stack([hue, sat, value], dim=1)


class YCrCbPattern(nn.Module):
    """RGB -> YCrCb (BT.601, OpenCV's float convention and channel order), in [0, 1]."""

    def forward(self, rgb: Tensor) -> Tensor:
        r, g, b = rgb.unbind(dim=1)
        y = 0.299 * r + 0.587 * g + 0.114 * b
        cr = (r - y) * 0.713 + 0.5
        cb = (b - y) * 0.564 + 0.5
        return torch.stack([y, cr, cb], dim=1).clamp(0.0, 1.0)


class LBPPattern(nn.Module):
    """Basic 8-neighbour, radius-1 LBP computed on each colour channel, code / 255.

    Bit k is set when the k-th neighbour (clockwise from the top-left) is >= the centre;
    borders replicate the edge pixel. Not differentiable (a hard comparison), which is
    fine: a fixed pattern has nothing to learn.
    """

    # (row, col) offsets clockwise from the top-left neighbour.
    OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))

    def forward(self, rgb: Tensor) -> Tensor:
        height, width = rgb.shape[-2:]
        padded = nn.functional.pad(rgb, (1, 1, 1, 1), mode="replicate")
        code = torch.zeros_like(rgb)
        for bit, (dr, dc) in enumerate(self.OFFSETS):
            neighbour = padded[..., 1 + dr : 1 + dr + height, 1 + dc : 1 + dc + width]
            code = code + (neighbour >= rgb).to(rgb.dtype) * float(1 << bit)
        return code / 255.0


def build_pattern(name: str) -> nn.Module | None:
    """The pattern module for ``model.pattern``; None for 'none' (RGB-only, one stream)."""
    if name == "meta":
        return MetaPatternExtractor()
    if name == "none":
        return None
    fixed = {"hsv": HSVPattern, "ycrcb": YCrCbPattern, "lbp": LBPPattern}
    if name not in fixed:
        raise ValueError(f"model.pattern: unknown pattern {name!r}; use one of {list(PATTERN_NAMES)}")
    return fixed[name]()
