"""SSDG-R's network (Jia et al., CVPR 2020), as its official code builds it (docs/methods.md).

A backbone body (ResNet-18 in the paper) pooled to one vector, an embedder (FC 512, ReLU,
dropout 0.5), the feature normalised, and a two-way classifier whose weight columns are
L2-normalised before every forward pass. The domain discriminator (FC 512, ReLU, dropout 0.5,
FC to one output per source domain) sits behind a gradient-reversal layer and sees live
features only; it belongs to training (``trainer.py``), not to the network that scores faces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mpfas.models.backbones import get_backbone

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EMBEDDING = 512


@dataclass
class SSDGOutput:
    logits: Tensor  # B x 2, index 1 = live
    feature: Tensor  # B x 512, normalised: what the triplet and adversarial losses see


class GradientReversal(torch.autograd.Function):
    """Identity forward; the gradient times ``-coeff`` backward."""

    @staticmethod
    def forward(ctx, x: Tensor, coeff: float) -> Tensor:
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return -ctx.coeff * grad, None


def grl_coefficient(it: int, horizon: float) -> float:
    """The official schedule ``2 / (1 + exp(-10 it / horizon)) - 1``: 0 at the start, ~1 at
    ``horizon`` iterations (the official horizon is its 4,000-iteration budget)."""
    return 2.0 / (1.0 + math.exp(-10.0 * it / horizon)) - 1.0


def normalise_feature(f: Tensor) -> Tensor:
    """f / (sqrt(||f||) * sqrt(2)): the official ``norm_flag`` scaling (not a unit vector)."""
    return f / (f.norm(p=2, dim=1, keepdim=True).clamp(min=1e-12) ** 0.5 * 2 ** 0.5)


class Discriminator(nn.Module):
    """Which source domain a live feature comes from (one logit per domain)."""

    def __init__(self, domains: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(EMBEDDING, EMBEDDING), nn.Linear(EMBEDDING, domains)
        nn.init.normal_(self.fc1.weight, 0.0, 0.01)
        nn.init.zeros_(self.fc1.bias)
        nn.init.normal_(self.fc2.weight, 0.0, 0.3)
        nn.init.zeros_(self.fc2.bias)
        self.dropout = nn.Dropout(0.5)

    def forward(self, feature: Tensor, coeff: float) -> Tensor:
        x = GradientReversal.apply(feature, coeff)
        return self.fc2(self.dropout(F.relu(self.fc1(x))))


class SSDGNet(nn.Module):
    """Scores faces: ``model(rgb)`` (RGB in [0, 1]) -> :class:`SSDGOutput`."""

    export_names = ("score", "logits")

    def __init__(self, backbone: str, input_size: int, channel_order: str = "rgb") -> None:
        super().__init__()
        if channel_order not in ("rgb", "bgr"):
            raise ValueError(f"model.channel_order: {channel_order!r} is not one of ['rgb', 'bgr']")
        self.backbone, self.input_size, self.channel_order = backbone, input_size, channel_order
        self.pretrained_sha256 = ""  # set by load_pretrained
        spec = get_backbone(backbone)
        self.body = spec.build()
        self.embed = nn.Linear(spec.channels[2], EMBEDDING)
        nn.init.normal_(self.embed.weight, 0.0, 0.005)
        nn.init.constant_(self.embed.bias, 0.1)
        self.dropout = nn.Dropout(0.5)
        self.classifier = nn.Linear(EMBEDDING, 2)
        nn.init.normal_(self.classifier.weight, 0.0, 0.01)
        nn.init.zeros_(self.classifier.bias)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def backbone_bodies(self) -> list[nn.Module]:
        return [self.body]

    def forward(self, rgb: Tensor) -> SSDGOutput:
        if rgb.dim() != 4 or rgb.shape[1] != 3 or tuple(rgb.shape[-2:]) != (self.input_size,) * 2:
            raise ValueError(f"expected a B x 3 x {self.input_size} x {self.input_size} RGB batch "
                             f"(model.input_size), got {tuple(rgb.shape)}")
        if self.channel_order == "bgr":
            rgb = rgb.flip(1)
        c5 = self.body((rgb - self.mean) / self.std)[2]
        feature = normalise_feature(self.dropout(F.relu(self.embed(c5.mean(dim=(2, 3))))))
        weight = self.classifier.weight
        if self.training:
            # as the official code: the stored columns are renormalised in place, so SGD steps
            # the normalised weights and the gradient does not pass through the normalisation
            with torch.no_grad():
                weight.copy_(weight / weight.norm(p=2, dim=0, keepdim=True))
            logits = self.classifier(feature)
        else:  # the same numbers without writing to the weights (exportable, thread-safe)
            logits = F.linear(feature, weight / weight.norm(p=2, dim=0, keepdim=True), self.classifier.bias)
        return SSDGOutput(logits=logits, feature=feature)

    @staticmethod
    def frame_score(out: SSDGOutput) -> Tensor:
        """Softmax probability of live (the official score)."""
        return out.logits.float().softmax(dim=1)[:, 1]

    def export_outputs(self, out: SSDGOutput) -> tuple[Tensor, Tensor]:
        return self.frame_score(out), out.logits
