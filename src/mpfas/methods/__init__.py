"""Training methods as a registry: ``model.method`` picks one, each lives in its own folder.

A method is what differs between two FAS papers run on the same faces, manifests, selection
and seeds: its network and its training step. Everything else (sampling, validation, checkpoint
selection, checkpoints, tracking, evaluation, serving) is shared and calls a method only
through :class:`Method` and the model contract below. Adding one is one new folder here whose
``__init__`` calls :func:`register_method`.

The model contract (``Method.build`` returns such a module):

* ``model(rgb)`` takes a B x 3 x S x S RGB batch in [0, 1] (S = ``model.input_size``) and
  returns an output with ``logits`` (B x 2, index 1 = live);
* ``model.frame_score(out)`` gives each frame's liveness in [0, 1] (higher = live), computed
  in fp32 whatever the forward pass ran in;
* ``model.export_names`` / ``model.export_outputs(out)``: the tensors an ONNX graph returns,
  ``score`` first;
* ``model.backbone``, ``model.input_size``, ``model.pretrained_sha256`` and
  ``model.backbone_bodies()`` (the modules an ImageNet file loads into).

A trainer (``Method.trainer(model, params, sources)``) owns the optimisers and takes one step:
``step(it, domains, draw, device, sync) -> loss stats`` (always with ``loss``, the total it
minimises, which the loss plot draws for every method), with ``learning_rates()``,
``roles(domains)`` (how the step used the shuffled domains, for the log) and
``state_dict``/``load_state_dict`` for ``last.pt``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from mpfas.core.config import ConfigError, ModelConfig, Params
from mpfas.core.selection import OracleRule
from mpfas.models.backbones import check_backbone


class Trainer(Protocol):
    def step(self, it: int, domains: Sequence[str], draw: Callable[[str], Any], device: torch.device,
             sync: Callable[..., None] | None = None) -> dict[str, float]: ...

    def learning_rates(self) -> dict[str, float]: ...

    def roles(self, domains: Sequence[str]) -> str: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class Method:
    name: str
    title: str  # the paper, as the report names it
    build: Callable[[ModelConfig], nn.Module]  # the network, ImageNet weights loaded
    trainer: Callable[[nn.Module, Params, Sequence[str]], Trainer]  # model, params, the protocol's sources
    oracle: OracleRule


_REGISTRY: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    if method.name in _REGISTRY:
        raise ValueError(f"method {method.name!r} is already registered")
    _REGISTRY[method.name] = method
    return method


def method_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get_method(name: str) -> Method:
    """The registered method ``name``; ConfigError naming ``model.method`` otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"model.method: {name!r} is not a registered method; use one of {list(_REGISTRY)}") \
            from None


def check_model(cfg: ModelConfig) -> None:
    """``model.method`` and ``model.backbone`` are registered (and ``bundled`` weights exist):
    what the params parser, which knows no registry, cannot check before a stage's work."""
    get_method(cfg.method)
    check_backbone(cfg.backbone, cfg.pretrained)


def build_model(cfg: ModelConfig) -> nn.Module:
    """The network ``cfg`` describes (``cfg.method``'s), with its ImageNet weights loaded."""
    return get_method(cfg.method).build(cfg)


# every subpackage registers its method: adding one is one new folder
for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["Method", "OracleRule", "Trainer", "build_model", "check_model", "get_method", "method_names",
           "register_method"]
