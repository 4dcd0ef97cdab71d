"""Loading local torchvision ImageNet weights into both HFN streams.

Nothing may be downloaded at run time, so the user supplies the file torchvision
would have fetched (e.g. ``resnet50-0676ba61.pth``). It is read with
``weights_only=True``: a weights file must never be able to run code.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from mpfas.models.hfn import MetaPatternFAS

# Blocks per stage and block type -> torchvision name, to say what a wrong file is.
_KNOWN_RESNETS = {
    ((2, 2, 2, 2), "basic"): "resnet18",
    ((3, 4, 6, 3), "basic"): "resnet34",
    ((3, 4, 6, 3), "bottleneck"): "resnet50 (or a resnext50/wide_resnet50)",
    ((3, 4, 23, 3), "bottleneck"): "resnet101",
    ((3, 8, 36, 3), "bottleneck"): "resnet152",
}


def load_pretrained(model: MetaPatternFAS, path: str | Path) -> None:
    """Load a torchvision ResNet state dict into the backbone of every HFN stream.

    ``fc.*`` is ignored and a ``module.`` prefix (DataParallel) is stripped. BatchNorm
    ``num_batches_tracked`` counters may be absent (older torchvision files). Anything
    else that does not match ``model.backbone`` raises ValueError naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"model.pretrained: weights file {str(path)!r} not found (relative paths are read "
            "from the current directory, the repo root when run by DVC)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).split("WeightsUnpickler error:")[-1].strip().split(". Please")[0]
        raise ValueError(
            f"{path}: refused by torch.load(weights_only=True): the file holds Python objects, "
            f"not just tensors ({reason}). Save a plain state dict: torch.save(net.state_dict(), ...)"
        ) from exc
    except Exception as exc:  # truncated file, not a torch file at all, ...
        raise ValueError(f"{path}: not a readable PyTorch weights file: {exc}") from exc
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(
            f"{path}: expected a torchvision {model.backbone} state dict (name -> tensor), "
            f"got {type(state).__name__}"
        )
    state = {k.removeprefix("module."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}

    body = model.hfn.rgb_stream.body
    expected = body.state_dict()
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
        raise ValueError(
            f"{path}: not a torchvision {model.backbone} state dict (model.backbone is "
            f"{model.backbone!r}; the file looks like {_describe(state)}): " + "; ".join(problems)
        )
    for stream in model.hfn.streams:
        stream.body.load_state_dict(state, strict=False)  # only BN counters can be absent here
    model.pretrained_path = str(path)


def _describe(state: Mapping[str, torch.Tensor]) -> str:
    """Best guess of which torchvision ResNet a state dict came from."""
    blocks = []
    for stage in range(1, 5):
        ids = {int(m.group(1)) for k in state if (m := re.match(rf"layer{stage}\.(\d+)\.", k))}
        blocks.append(max(ids) + 1 if ids else 0)
    kind = "bottleneck" if any(k.endswith(".conv3.weight") for k in state) else "basic"
    if not any(blocks):
        return "no ResNet at all"
    return _KNOWN_RESNETS.get((tuple(blocks), kind), f"a ResNet with {kind} blocks {tuple(blocks)}")
