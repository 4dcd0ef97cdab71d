"""The backbone registry: one registered builder per HFN body, torchvision style.

A builder takes no arguments and returns a fresh ``nn.Module`` whose forward maps a
B x 3 x H x W batch to (C3, C4, C5) at strides 8, 16 and 32; ``channels`` gives their
channel counts, so the pyramid reads them without building anything. ``head`` names the
key prefixes of an ImageNet weights file that the body leaves out (its classifier), and
``bundled``, where an installed package ships the weights, returns that file's path
(``model.pretrained: bundled``). Every module of this package is imported and registers
its backbones: adding a backbone is one new file here.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

Builder = Callable[[], "nn.Module"]


@dataclass(frozen=True)
class Backbone:
    name: str
    channels: tuple[int, int, int]  # C3, C4, C5
    build: Builder
    head: tuple[str, ...] = ()  # key prefixes of an ImageNet file that are not the body's (ignored)
    bundled: Callable[[], Path] | None = None  # the weights file an installed package ships


_REGISTRY: dict[str, Backbone] = {}


def register_backbone(name: str, channels: tuple[int, int, int], head: tuple[str, ...] = (),
                      bundled: Callable[[], Path] | None = None) -> Callable[[Builder], Builder]:
    """Decorator: register ``fn`` as the builder of backbone ``name`` (a new name)."""
    def decorate(fn: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} is already registered")
        if len(channels) != 3 or not all(isinstance(c, int) and c > 0 for c in channels):
            raise ValueError(f"backbone {name!r}: channels {channels!r} must be three positive ints (C3, C4, C5)")
        _REGISTRY[name] = Backbone(name, tuple(channels), fn, tuple(head), bundled)
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


def check_backbone(name: str, pretrained: str = "") -> None:
    """``model.backbone`` names a registered backbone (the params parser knows no registry), and
    ``model.pretrained: bundled`` only one whose weights an installed package ships."""
    from mpfas.core.config import ConfigError

    if name not in _REGISTRY:
        raise ConfigError(f"model.backbone: {name!r} is not a registered backbone; use one of {list(_REGISTRY)}")
    if pretrained == "bundled" and _REGISTRY[name].bundled is None:
        shipped = [n for n, b in _REGISTRY.items() if b.bundled is not None]
        raise ConfigError(f"model.pretrained: 'bundled', but no installed package ships {name} weights (only "
                          f"{shipped}); set it to a local weights file, or 'random' on purpose")


# every module of this package registers its backbones: adding one is one new file
for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["Backbone", "backbone_names", "check_backbone", "get_backbone", "register_backbone", "unregister_backbone"]
