"""The Hierarchical Fusion Network (HFN) and the full HFN+MP model.

The HFN runs an RGB stream and a pattern stream (two ``FPNStream``s) and fuses them
hierarchically, as the official code does: the streams' lateral features at C5, C4
and C3, their top-down outputs P4 and P3, and their P7 are averaged, and each fused
level feeds the next top-down step of *both* streams. Two heads read the fused
pyramid: a sigmoid map on P3 (stride 8; all ones for live, zeros for spoof) and a
2-way classifier on globally pooled P7 (index 1 = live).

Inputs as in the official code: the image stream gets the raw [0, 1] pixels (not
ImageNet-normalised); the pattern is ImageNet-normalised before its stream. Callers
always pass RGB; ``channel_order: bgr`` reverses the channels at the model's input,
which reproduces what the official code feeds (OpenCV's BGR frames, unconverted) to
both the MP extractor and the image stream. With pattern 'none' there is one stream and
fusion is the identity; the heads stay the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mpfas.core.config import ModelConfig
from mpfas.models.fpn import FPN_CHANNELS, FPNStream, upsample_add
from mpfas.models.pattern import build_pattern
from mpfas.models.weights import init_backbones

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class ModelOutput:
    map: Tensor  # B x 1 x h x w in [0, 1], h = w = input_size / 8
    logits: Tensor  # B x 2, index 1 = live
    pattern: Tensor | None  # B x 3 x H x W (what fed the second stream), None for 'none'


def _mean(tensors: list[Tensor]) -> Tensor:
    """The streams' average. Two streams: (a + b) / 2, the same floats as stacking and taking
    the mean (one rounded sum, an exact halving) without copying both levels into a stack."""
    if len(tensors) == 1:
        return tensors[0]
    if len(tensors) == 2:
        return (tensors[0] + tensors[1]) / 2
    return torch.stack(tensors).mean(dim=0)


class HierarchicalFusionNetwork(nn.Module):
    """Two-stream (or, with ``two_stream=False``, one-stream) FPN with map and class heads."""

    def __init__(self, backbone: str, two_stream: bool = True, pyramid_init: str = "normal") -> None:
        super().__init__()
        self.rgb_stream = FPNStream(backbone, init=pyramid_init)
        self.pattern_stream = FPNStream(backbone, init=pyramid_init) if two_stream else None
        if pyramid_init == "official" and self.pattern_stream is not None:
            for mine, theirs in zip(self.pattern_stream.pyramid_convs(), self.rgb_stream.pyramid_convs()):
                mine.load_state_dict(theirs.state_dict())
        self.register_buffer("pattern_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pattern_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.map_head = nn.Sequential(
            nn.Conv2d(FPN_CHANNELS, 128, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 1, kernel_size=1),
            nn.Sigmoid(),
        )
        for module in self.map_head:
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=0.01)
                nn.init.zeros_(module.bias)
        self.classifier = nn.Linear(FPN_CHANNELS, 2)

    @property
    def streams(self) -> list[FPNStream]:
        return [self.rgb_stream] if self.pattern_stream is None else [self.rgb_stream, self.pattern_stream]

    def forward(self, rgb: Tensor, pattern: Tensor | None = None) -> ModelOutput:
        if self.pattern_stream is None:
            if pattern is not None:
                raise ValueError("HFN built for model.pattern 'none' (one stream) was given a pattern")
            inputs = [rgb]
        else:
            if pattern is None:
                raise ValueError("two-stream HFN needs a pattern for its second stream, got None")
            inputs = [rgb, (pattern - self.pattern_mean) / self.pattern_std]
        streams = self.streams
        c3s, c4s, c5s = zip(*(s.body(x) for s, x in zip(streams, inputs)))
        p5 = _mean([s.lateral5(c5) for s, c5 in zip(streams, c5s)])
        l4 = _mean([s.lateral4(c4) for s, c4 in zip(streams, c4s)])
        p4 = _mean([s.smooth4(upsample_add(p5, l4)) for s in streams])
        l3 = _mean([s.lateral3(c3) for s, c3 in zip(streams, c3s)])
        p3 = _mean([s.smooth3(upsample_add(p4, l3)) for s in streams])
        p7 = _mean([s.p7(c5) for s, c5 in zip(streams, c5s)])
        live_map = self.map_head(p3)
        logits = self.classifier(F.adaptive_avg_pool2d(p7, 1).flatten(1))
        return ModelOutput(map=live_map, logits=logits, pattern=pattern)


class MetaPatternFAS(nn.Module):
    """Pattern module + HFN. Training updates them separately (see the accessors)."""

    def __init__(self, backbone: str = "resnet18", input_size: int = 128, pattern: str = "meta",
                 channel_order: str = "rgb", pyramid_init: str = "normal") -> None:
        super().__init__()
        if input_size <= 0 or input_size % 32:
            raise ValueError(f"model.input_size: {input_size} must be a positive multiple of 32")
        if channel_order not in ("rgb", "bgr"):
            raise ValueError(f"model.channel_order: {channel_order!r} is not one of ['rgb', 'bgr']")
        self.backbone = backbone
        self.input_size = input_size
        self.channel_order = channel_order
        self.pretrained_sha256 = ""  # set by load_pretrained; part of the training fingerprint
        self.pattern = build_pattern(pattern)
        self.hfn = HierarchicalFusionNetwork(backbone, two_stream=self.pattern is not None,
                                             pyramid_init=pyramid_init)

    def forward(self, rgb: Tensor) -> ModelOutput:
        """``rgb``: B x 3 x input_size x input_size float in [0, 1]."""
        if rgb.dim() != 4 or rgb.shape[1] != 3 or tuple(rgb.shape[-2:]) != (self.input_size,) * 2:
            raise ValueError(
                f"expected a B x 3 x {self.input_size} x {self.input_size} RGB batch "
                f"(model.input_size), got {tuple(rgb.shape)}"
            )
        if self.channel_order == "bgr":
            rgb = rgb.flip(1)
        pattern = None if self.pattern is None else self.pattern(rgb)
        return self.hfn(rgb, pattern)

    export_names = ("score", "map", "logits")

    @staticmethod
    def frame_score(out: ModelOutput) -> Tensor:
        return frame_score(out)

    def export_outputs(self, out: ModelOutput) -> tuple[Tensor, Tensor, Tensor]:
        return frame_score(out), out.map, out.logits

    def backbone_bodies(self) -> list[nn.Module]:
        """Where an ImageNet file loads: the body of every stream."""
        return [stream.body for stream in self.hfn.streams]

    def pattern_parameters(self) -> list[nn.Parameter]:
        """The MP extractor's parameters; [] for fixed or no patterns."""
        return [] if self.pattern is None else list(self.pattern.parameters())

    def hfn_parameters(self) -> list[nn.Parameter]:
        return list(self.hfn.parameters())


def frame_score(out: ModelOutput) -> Tensor:
    """Per-frame liveness in [0, 1]: (mean of the map + softmax live probability) / 2, in fp32."""
    map_mean = out.map.float().flatten(1).mean(dim=1)
    live_prob = out.logits.float().softmax(dim=1)[:, 1]
    return (map_mean + live_prob) / 2


def build_model(cfg: ModelConfig) -> MetaPatternFAS:
    """The model ``params.yaml``'s ``model`` section describes, with backbone weights loaded.

    With ``cfg.pretrained`` empty or ``random`` the backbones stay randomly initialised;
    that is said loudly (warning + log) because the paper's numbers need ImageNet weights.
    """
    cfg.validate()
    model = MetaPatternFAS(cfg.backbone, cfg.input_size, cfg.pattern, cfg.channel_order, cfg.pyramid_init)
    init_backbones(model, cfg)
    return model
