"""What a dataset tells the synthetic demo: its files, cameras and places.

Plain data only (no rendering): each dataset file builds a :class:`DemoPlan` from
these types, and ``mpfas.demo`` renders whatever the registered plans describe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

Rect = tuple[float, float, float, float, tuple[float, float, float]]  # x0, y0, x1, y1 (fractions), RGB
Dealt = list[tuple[int, str, int]]  # (subject index, split folder, number within that split)
Files = tuple[list["VideoSpec"], dict[str, str]]  # video specs, side files (relative path -> text)


@dataclass(frozen=True)
class VideoSpec:
    """One demo video: where it goes and how it is rendered."""

    code: str
    relpath: str        # relative to the dataset root, POSIX
    subject: int        # index into the domain's identities
    label: str          # live | print | replay
    medium: str         # live | print | replay_video | replay_photo
    device: str         # printer / screen style key ("" for live)
    capture: str        # camera + place key (see DemoPlan.camera, DemoPlan.place)
    support: str = "hand"  # hand | fixed


@dataclass(frozen=True)
class Camera:
    size: tuple[int, int]            # (width, height) before demo.scale
    gains: tuple[float, float, float] = (1.0, 1.0, 1.0)  # white balance cast, RGB
    exposure: float = 1.0
    gamma: float = 1.0               # >1 darkens mid-tones
    contrast: float = 1.0
    saturation: float = 1.0
    blur: float = 0.8                # Gaussian sigma in pixels at scale 1
    noise: float = 0.02              # noise std at mid grey
    jpeg: int = 85                   # quality of an extra JPEG round trip
    vignette: float = 0.2            # relative fall-off at the corners

    def scaled(self, scale: float) -> Camera:
        """Frame size times ``scale``, rounded to a multiple of 8 (codec friendly)."""
        w, h = (max(64, round(v * scale / 8) * 8) for v in self.size)
        return replace(self, size=(w, h), blur=self.blur * min(1.0, max(scale, 0.5)))


@dataclass(frozen=True)
class Place:
    top: tuple[float, float, float]
    bottom: tuple[float, float, float]
    rects: tuple[Rect, ...] = ()
    light_dir: tuple[float, float] = (0.0, -1.0)   # where the main light comes from (x, y)
    light_strength: float = 0.15                   # relative brightness change across the frame
    face_light: float = 0.15                       # side shading on the subject


@dataclass(frozen=True)
class DemoPlan:
    """How the demo draws one dataset.

    ``key`` numbers the dataset's random streams (O 0, C 1, I 2, M 3): it, not the
    registration order, fixes the pixels, so adding a dataset changes no other one.
    ``small`` lays out ``demo.size: small`` from the subjects dealt over ``split_dirs``
    (the official split folders) and a generator; ``full`` lists every official file
    (None: only the small demo), with ``full_subjects`` identities: the release that
    ``release.check_release`` compares a real copy with, file by file.
    ``camera`` and ``place`` map a spec's ``capture`` to the simulated camera and background.
    """

    key: int
    split_dirs: tuple[str, ...]
    small: Callable[[Dealt, np.random.Generator], Files]
    camera: Callable[[str], Camera]
    place: Callable[[str], Place]
    full: Callable[[], Files] | None = None
    full_subjects: int = 0


def deal(split_dirs: tuple[str, ...], subjects: int) -> Dealt:
    """Subjects round-robin over the split folders: (index, split, number within split)."""
    counts = {s: 0 for s in split_dirs}
    out = []
    for i in range(subjects):
        split = split_dirs[i % len(split_dirs)]
        out.append((i, split, counts[split]))
        counts[split] += 1
    return out
