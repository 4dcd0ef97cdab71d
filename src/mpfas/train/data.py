"""Per-domain, class-balanced training batches from a protocol manifest.

As in the official code, every source domain has one endless shuffled stream of live
frames and one of spoof frames; a domain batch is ``batch_live`` live + ``batch_spoof``
spoof frames. A video contributes ``train.faces_per_video`` faces (``mpfas.core.sampling.pick_evenly``: first and
last detected frame when 2). Horizontal flip (p = 0.5) is the official code's only
augmentation; ``color=True`` (``train.augment: color``) adds a generic photometric jitter
(``photometric_jitter``) so that the model sees more than the source cameras' colour
rendering.

All randomness comes from one seeded ``numpy`` generator owned by the sampler, and its
full state (generator plus stream positions) goes into ``last.pt``, so a resumed run
draws exactly the batches an uninterrupted run would have drawn.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mpfas.core.errors import MpfasError
from mpfas.core.sampling import pick_evenly
from mpfas.models.inference import FaceCache, to_unit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frame:
    path: str
    is_live: int


@dataclass
class DomainBatch:
    """One domain's balanced batch: ``rgb`` B x 3 x S x S in [0, 1], ``is_live`` B (int64)."""

    domain: str
    rgb: Tensor
    is_live: Tensor

    def to(self, device: torch.device, channels_last: bool | None = None) -> DomainBatch:
        """On ``device``, in the memory format ``inference.to_device`` gives ``channels_last``."""
        from mpfas.models.inference import to_device

        return DomainBatch(self.domain, to_device(self.rgb, device, channels_last), self.is_live.to(device))


def concat(batches: Sequence[DomainBatch]) -> DomainBatch:
    """Several domains' batches as one (the official code concatenates meta-train domains)."""
    return DomainBatch("+".join(b.domain for b in batches), torch.cat([b.rgb for b in batches]),
                       torch.cat([b.is_live for b in batches]))


class _Stream:
    """An endless shuffled pass over ``items``; reshuffles when exhausted."""

    def __init__(self, items: list[Frame]) -> None:
        self.items = items
        self.order: list[int] = []
        self.pos = 0

    def take(self, n: int, rng: np.random.Generator) -> list[Frame]:
        out = []
        for _ in range(n):
            if self.pos >= len(self.order):
                self.order = rng.permutation(len(self.items)).tolist()
                self.pos = 0
            out.append(self.items[self.order[self.pos]])
            self.pos += 1
        return out


@dataclass(frozen=True)
class Jitter:
    """Ranges of ``photometric_jitter`` (torchvision ``ColorJitter`` conventions)."""

    brightness: float = 0.4  # factor in [1 - b, 1 + b]
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.05  # shift in [-h, h] of a full turn
    gamma: float = 0.3  # exponent in [1 - g, 1 + g]
    blur_p: float = 0.3  # chance of a Gaussian blur with sigma in [0.1, 1.0]


def photometric_jitter(rgb: Tensor, rng: np.random.Generator, jitter: Jitter = Jitter()) -> Tensor:
    """``rgb`` (B x 3 x S x S in [0, 1]) with per-image random brightness, contrast,
    saturation, hue, gamma and sometimes blur (torchvision's ops), the factors drawn from
    ``rng`` so a resumed run draws the same. Generic camera-agnostic jitter."""
    n = len(rgb)

    def draw(r: float) -> np.ndarray:
        return rng.uniform(1 - r, 1 + r, n)

    bright, contrast, sat, gamma = (draw(r) for r in (jitter.brightness, jitter.contrast,
                                                    jitter.saturation, jitter.gamma))
    hue = rng.uniform(-jitter.hue, jitter.hue, n)
    blur = rng.random(n) < jitter.blur_p
    sigma = rng.uniform(0.1, 1.0, n)
    from torchvision.transforms.v2 import functional as tf  # here: torchvision costs 1.7 s to import

    out = []
    for i, img in enumerate(rgb):
        img = tf.adjust_brightness(img, float(bright[i]))
        img = tf.adjust_contrast(img, float(contrast[i]))
        img = tf.adjust_saturation(img, float(sat[i]))
        img = tf.adjust_hue(img, float(hue[i]))
        img = tf.adjust_gamma(img, float(gamma[i]))
        if blur[i]:
            img = tf.gaussian_blur(img, [5, 5], [float(sigma[i])] * 2)
        out.append(img)
    return torch.stack(out).clamp_(0.0, 1.0)


class DomainSampler:
    """Balanced live/spoof batches per source domain, seeded and resumable.

    ``rows`` are manifest rows (anything with ``domain``, ``is_live`` and ``faces``);
    only the ones passed in are used, so the caller chooses the role (source-train).
    """

    def __init__(self, rows: Sequence[Any], *, num_frames: int, batch_live: int, batch_spoof: int,
                 size: int, seed: int | Sequence[int], workers: int = 0, flip: bool = True,
                 color: bool = False, cache: FaceCache | None = None) -> None:
        self.batch_live, self.batch_spoof, self.size, self.flip = batch_live, batch_spoof, size, flip
        self.cache = cache if cache is not None else FaceCache(size)
        if self.cache.size != size:
            raise ValueError(f"face cache holds {self.cache.size} px faces, the sampler needs {size} px")
        self.color = color
        self.rng = np.random.default_rng(seed)
        self.streams: dict[tuple[str, int], _Stream] = {}
        per: dict[tuple[str, int], list[Frame]] = {}
        for row in rows:
            for path in pick_evenly(row.faces, num_frames):
                per.setdefault((row.domain, int(row.is_live)), []).append(Frame(path, int(row.is_live)))
        self.domains = sorted({d for d, _ in per})
        for domain in self.domains:
            for cls, name in ((1, "live"), (0, "spoof")):
                if not per.get((domain, cls)):
                    raise MpfasError(f"training data: domain {domain} has no {name} faces in source-train "
                                     "(check the manifest)")
                self.streams[(domain, cls)] = _Stream(per[(domain, cls)])
        self.pool = ThreadPoolExecutor(workers) if workers > 0 else None

    def frames(self, domain: str) -> int:
        return sum(len(self.streams[(domain, c)].items) for c in (0, 1))

    def batch(self, domain: str) -> DomainBatch:
        """The next balanced batch of ``domain`` (live first, then spoof)."""
        if domain not in self.domains:
            raise KeyError(f"no training data for domain {domain!r}; have {self.domains}")
        picked = (self.streams[(domain, 1)].take(self.batch_live, self.rng)
                  + self.streams[(domain, 0)].take(self.batch_spoof, self.rng))
        flips = self.rng.random(len(picked)) < 0.5 if self.flip else np.zeros(len(picked), bool)
        paths = [f.path for f in picked]
        pixels = list(self.pool.map(self.cache.pixels, paths)) if self.pool else [self.cache.pixels(p) for p in paths]
        rgb = torch.stack(pixels)  # uint8: stacked, flipped and scaled once per batch (a few kernels on a GPU)
        if flips.any():
            rows = torch.from_numpy(np.flatnonzero(flips)).to(rgb.device)
            rgb[rows] = rgb[rows].flip(-1)
        rgb = to_unit(rgb)
        if self.color:  # drawn after the flips: with color off, the batches stay the official ones
            rgb = photometric_jitter(rgb, self.rng)
        is_live = torch.tensor([f.is_live for f in picked], dtype=torch.int64)
        return DomainBatch(domain, rgb, is_live)

    def state_dict(self) -> dict[str, Any]:
        """Generator state and stream positions (plain Python types: loads with weights_only)."""
        return {
            "rng": self.rng.bit_generator.state,
            "streams": {f"{d}:{c}": {"order": s.order, "pos": s.pos} for (d, c), s in self.streams.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        for key, s in state["streams"].items():
            domain, cls = key.rsplit(":", 1)
            stream = self.streams[(domain, int(cls))]
            if s["order"] and max(s["order"]) >= len(stream.items):
                raise MpfasError("training data changed since the checkpoint (stream longer than data)")
            stream.order, stream.pos = list(s["order"]), int(s["pos"])

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
