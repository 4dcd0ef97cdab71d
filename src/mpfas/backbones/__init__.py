"""The backbone registry: one registered builder per HFN body, torchvision style.

A builder takes no arguments and returns a fresh ``nn.Module`` whose forward maps a
B x 3 x H x W batch to (C3, C4, C5) at strides 8, 16 and 32; ``channels`` gives their
channel counts, so config validation and the pyramid read them without building
anything. This module imports no torch (config reads it on every stage); the
built-in ResNets import theirs when built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

Builder = Callable[[], "nn.Module"]


@dataclass(frozen=True)
class Backbone:
    name: str
    channels: tuple[int, int, int]  # C3, C4, C5
    build: Builder


_REGISTRY: dict[str, Backbone] = {}


def register_backbone(name: str, channels: tuple[int, int, int]) -> Callable[[Builder], Builder]:
    """Decorator: register ``fn`` as the builder of backbone ``name`` (a new name)."""
    def decorate(fn: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} is already registered")
        if len(channels) != 3 or not all(isinstance(c, int) and c > 0 for c in channels):
            raise ValueError(f"backbone {name!r}: channels {channels!r} must be three positive ints (C3, C4, C5)")
        _REGISTRY[name] = Backbone(name, tuple(channels), fn)
        return fn
    return decorate


def unregister_backbone(name: str) -> None:
    """Remove a backbone (tests that register a toy one clean up with this)."""
    _REGISTRY.pop(name, None)


def backbone_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get_backbone(name: str) -> Backbone:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"model.backbone: unknown backbone {name!r}; use one of {list(_REGISTRY)}") from None


@register_backbone("resnet18", channels=(128, 256, 512))
def resnet18() -> nn.Module:
    """torchvision ResNet-18 without avgpool/fc (the CPU demo's)."""
    from .resnet import ResNetBody

    return ResNetBody("resnet18")


@register_backbone("resnet50", channels=(512, 1024, 2048))
def resnet50() -> nn.Module:
    """torchvision ResNet-50 without avgpool/fc (the paper's)."""
    from .resnet import ResNetBody

    return ResNetBody("resnet50")


__all__ = ["Backbone", "backbone_names", "get_backbone", "register_backbone", "unregister_backbone"]
