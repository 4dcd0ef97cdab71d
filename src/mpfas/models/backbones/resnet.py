"""torchvision ResNets as backbones: ResNet-18 (the CPU demo's) and ResNet-50 (the paper's)."""

from __future__ import annotations

from torch import Tensor, nn

from mpfas.models.backbones import register_backbone


class ResNetBody(nn.Module):
    """A torchvision ResNet without avgpool/fc, returning (C3, C4, C5).

    Submodules keep torchvision's names (conv1, bn1, layer1..layer4) so an ImageNet
    state dict from torchvision loads into it key for key.
    """

    def __init__(self, arch: str) -> None:
        super().__init__()
        import torchvision  # here, not at the top: 1.7 s of import every stage would pay

        net = getattr(torchvision.models, arch)(weights=None)
        self.arch = arch
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c3 = self.layer2(self.layer1(x))
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return c3, c4, c5


@register_backbone("resnet18", channels=(128, 256, 512), head=("fc.",))
def resnet18() -> nn.Module:
    """torchvision ResNet-18 without avgpool/fc (the CPU demo's)."""
    return ResNetBody("resnet18")


@register_backbone("resnet50", channels=(512, 1024, 2048), head=("fc.",))
def resnet50() -> nn.Module:
    """torchvision ResNet-50 without avgpool/fc (the paper's)."""
    return ResNetBody("resnet50")
