"""Identities for the demo: real face photos shipped inside installed packages.

Every identity becomes a :class:`Portrait`: a head-and-shoulders RGB image with an
alpha mask on a fixed canvas, eyes at fixed positions, so the scene, print and
replay renderers can place any identity the same way. Sources: scikit-image's
``lfw_subset`` (the first 100 of its 200 images are 25x25 grayscale faces),
``astronaut`` and matplotlib's ``grace_hopper``: 102 identities.

The small demo gives every domain its own identities. ``demo.size: full`` needs
55 + 50 + 50 + 35 + 20 = 210, more than the pool, so :func:`reuse_identities` deals
the domains consecutive runs of one seeded permutation of the pool, wrapping
around: identities stay distinct within a domain (so its splits never share a
face) and none appears in more than three domains (the first six of OULU-NPU's
also in ROSE-Youtu, the last domain dealt). Unlike the real datasets, the
full demo's domains then share people; what still differs between domains is
the cameras, places and attack devices.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

CANVAS_W, CANVAS_H = 240, 300
EYES = ((96.0, 110.0), (144.0, 110.0))  # left, right eye centre on the canvas
FACE_CENTER = (120.0, 132.0)
LFW_FACES = 100
HIRES = ("astronaut", "grace_hopper")
# eye centres (x, y) measured once with MTCNN on the original images
_HIRES_EYES = {"astronaut": ((205.0, 101.7), (246.8, 103.7)),
               "grace_hopper": ((221.7, 192.2), (309.8, 186.1))}
_HAIR = ((0.07, 0.05, 0.04), (0.22, 0.14, 0.08), (0.42, 0.31, 0.18), (0.55, 0.53, 0.5),
         (0.13, 0.1, 0.08), (0.3, 0.2, 0.12))
_SHIRT = ((0.15, 0.2, 0.4), (0.5, 0.1, 0.12), (0.85, 0.85, 0.82), (0.2, 0.35, 0.2),
          (0.12, 0.12, 0.13), (0.45, 0.4, 0.35), (0.3, 0.45, 0.6))


@dataclass(frozen=True)
class Identity:
    source: str  # "lfw", "astronaut" or "grace_hopper"
    index: int = 0

    @property
    def name(self) -> str:
        return f"lfw-{self.index:03d}" if self.source == "lfw" else self.source


@dataclass
class Portrait:
    """Head and shoulders on a CANVAS_W x CANVAS_H canvas, float32 RGB in [0, 1]."""

    rgb: np.ndarray
    alpha: np.ndarray
    eyes: tuple[tuple[float, float], tuple[float, float]] = EYES


def identity_pool() -> list[Identity]:
    return [Identity("lfw", i) for i in range(LFW_FACES)] + [Identity(s) for s in HIRES]


def assign_identities(seed: int, subjects: int, codes: tuple[str, ...]) -> dict[str, list[Identity]]:
    """Disjoint identities per domain (no image is used in two domains)."""
    pool = identity_pool()
    need = subjects * len(codes)
    if need > len(pool):
        raise ValueError(f"demo.subjects: {subjects} per domain needs {need} identities; "
                         f"only {len(pool)} face photos ship with the packages "
                         f"(max {len(pool) // len(codes)} per domain)")
    order = np.random.default_rng([seed, 7]).permutation(len(pool))
    return {code: [pool[j] for j in order[i * subjects:(i + 1) * subjects]]
            for i, code in enumerate(codes)}


def reuse_identities(seed: int, counts: dict[str, int]) -> dict[str, list[Identity]]:
    """``counts[code]`` distinct identities per domain; domains share only when the pool runs out."""
    pool = identity_pool()
    if max(counts.values()) > len(pool) or sum(counts.values()) > 3 * len(pool):
        raise ValueError(f"the demo needs {counts} identities; only {len(pool)} face photos ship with the packages")
    order = np.random.default_rng([seed, 7]).permutation(len(pool))
    out, start = {}, 0
    for code, n in counts.items():
        out[code] = [pool[order[(start + k) % len(pool)]] for k in range(n)]
        start += n
    return out


@functools.lru_cache(maxsize=1)
def _lfw() -> np.ndarray:
    from skimage import data
    return data.lfw_subset()[:LFW_FACES].astype(np.float32)


@functools.lru_cache(maxsize=2)
def _hires(name: str) -> np.ndarray:
    if name == "astronaut":
        from skimage import data
        img = data.astronaut()
    else:
        import matplotlib.cbook as cbook
        import matplotlib.image as mimage
        img = mimage.imread(cbook.get_sample_data("grace_hopper.jpg"))
    return img[..., :3].astype(np.float32) / 255.0


def _ellipse(shape: tuple[int, int], center: tuple[float, float], axes: tuple[float, float]) -> np.ndarray:
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    return (((xx - center[0]) / axes[0]) ** 2 + ((yy - center[1]) / axes[1]) ** 2 <= 1).astype(np.float32)


def _feather(mask: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(mask, (0, 0), sigma)


def _body(rng: np.random.Generator, skin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Neck and shirt layer (behind the face) with soft shading."""
    shape = (CANVAS_H, CANVAS_W)
    rgb = np.zeros((*shape, 3), np.float32)
    torso = _ellipse(shape, (120, 335), (140, 95))
    neck = np.zeros(shape, np.float32)
    neck[165:262, 92:148] = 1
    neck = _feather(neck, 3)
    shirt = np.array(_SHIRT[rng.integers(len(_SHIRT))], np.float32)
    yy = np.linspace(0, 1, CANVAS_H, dtype=np.float32)[:, None, None]
    xx = np.linspace(-1, 1, CANVAS_W, dtype=np.float32)[None, :, None]
    shade = 1.05 - 0.25 * np.abs(xx) - 0.1 * yy
    rgb[:] = shirt * shade
    neck_rgb = skin * 0.85 * (1 - 0.35 * np.clip((215 - np.arange(CANVAS_H)) / 40, 0, 1))[:, None, None]
    rgb = neck[..., None] * neck_rgb + (1 - neck[..., None]) * rgb
    alpha = np.maximum(torso, neck)
    return rgb, _feather(alpha, 2.0)


def _lfw_portrait(index: int, rng: np.random.Generator) -> Portrait:
    gray = _lfw()[index]
    lo, hi = np.percentile(gray, [2, 98])
    gray = 0.1 + 0.82 * np.clip((gray - lo) / max(hi - lo, 1e-3), 0, 1)  # keep highlights soft
    side = 140
    big = cv2.resize(gray, (side, side), interpolation=cv2.INTER_CUBIC)
    big = np.clip(cv2.GaussianBlur(big, (0, 0), 1.6), 0, 1)
    # colourise: warm skin-like tone curve, a little variation per identity
    tint = np.array([1.0, 0.84, 0.74], np.float32) * rng.uniform(0.92, 1.05, 3).astype(np.float32)
    gam = np.array([0.93, 1.0, 1.08], np.float32)
    face = np.clip(big[..., None] ** gam * tint, 0, 1)
    # fine skin texture so upsampled faces are not unnaturally smooth
    grain = cv2.GaussianBlur(rng.normal(0, 1, (side, side)).astype(np.float32), (0, 0), 0.8)
    face = np.clip(face * (1 + 0.03 * grain[..., None]), 0, 1)
    # a faint blush on cheeks and lips
    blush = _feather(_ellipse((side, side), (0.5 * side, 0.78 * side), (0.16 * side, 0.06 * side)), 4)
    face[..., 0] = np.clip(face[..., 0] + 0.06 * blush, 0, 1)
    face[..., 2] = np.clip(face[..., 2] - 0.03 * blush, 0, 1)

    shape = (CANVAS_H, CANVAS_W)
    skin = face[side // 2 - 15:side // 2 + 15, side // 2 - 15:side // 2 + 15].reshape(-1, 3).mean(0)
    rgb, alpha = _body(rng, skin)
    # hair: a textured ellipse behind the face
    hair_col = np.array(_HAIR[rng.integers(len(_HAIR))], np.float32)
    streaks = cv2.GaussianBlur(rng.normal(0, 1, shape).astype(np.float32), (0, 0), sigmaX=1.0, sigmaY=6.0)
    hair_rgb = np.clip(hair_col * (1 + 0.25 * streaks[..., None]), 0, 1)
    hair = _ellipse(shape, (120, 110), (74 + rng.uniform(-4, 6), 64 + rng.uniform(-4, 6)))
    hair[int(rng.uniform(125, 150)):] = 0  # hair covers the crown and temples, not the cheeks
    hair = _feather(hair, 3)
    rgb = hair[..., None] * hair_rgb + (1 - hair[..., None]) * rgb
    alpha = np.maximum(alpha, hair)
    # the face crop itself, under a feathered oval
    x0, y0 = 50, 60
    layer = np.zeros_like(rgb)
    layer[y0:y0 + side, x0:x0 + side] = face
    rect = np.zeros(shape, np.float32)
    rect[y0 + 2:y0 + side - 2, x0 + 2:x0 + side - 2] = 1
    oval = _feather(_ellipse(shape, (120, 128), (64, 71)), 5) * _feather(rect, 2)
    rgb = oval[..., None] * layer + (1 - oval[..., None]) * rgb
    alpha = np.maximum(alpha, oval)
    return Portrait(rgb=np.clip(rgb, 0, 1).astype(np.float32), alpha=alpha.astype(np.float32))


def _hires_portrait(name: str, rng: np.random.Generator) -> Portrait:
    img = _hires(name)
    (lx, ly), (rx, ry) = _HIRES_EYES[name]
    src = np.float32([[lx, ly], [rx, ry]])
    dst = np.float32(EYES)
    m, _ = cv2.estimateAffinePartial2D(src, dst)
    if m is None:  # two points always give a similarity; keep the error explicit anyway
        raise RuntimeError(f"cannot align demo face {name}")
    rgb = cv2.warpAffine(img, m, (CANVAS_W, CANVAS_H), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
    shape = (CANVAS_H, CANVAS_W)
    head = _ellipse(shape, (120, 122), (74, 96))
    neck = np.zeros(shape, np.float32)
    neck[180:260, 85:155] = 1
    torso = _ellipse(shape, (120, 345), (135, 105))
    alpha = _feather(np.maximum(np.maximum(head, neck), torso), 3)
    return Portrait(rgb=np.clip(rgb, 0, 1).astype(np.float32), alpha=alpha.astype(np.float32))


@functools.lru_cache(maxsize=8)
def make_portrait(identity: Identity, seed: int = 0) -> Portrait:
    """Portrait of one identity; ``seed`` only varies colours (hair, shirt, skin tint).

    Cached (read-only for callers): consecutive videos of a subject, dozens per
    subject in the full demo, reuse it instead of rebuilding it.
    """
    rng = np.random.default_rng([seed, 11, identity.index, len(identity.source)])
    if identity.source == "lfw":
        return _lfw_portrait(identity.index, rng)
    if identity.source in HIRES:
        return _hires_portrait(identity.source, rng)
    raise ValueError(f"unknown demo face source {identity.source!r}")
