"""Places: each domain's backgrounds and lighting, drawn procedurally.

A :class:`Place` is a wall gradient with a few soft rectangles (windows, doors,
shelves, posters) and a light map; the same place is reused by every video
filmed there, as in the real datasets.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

Rect = tuple[float, float, float, float, tuple[float, float, float]]  # x0, y0, x1, y1 (fractions), RGB


@dataclass(frozen=True)
class Place:
    top: tuple[float, float, float]
    bottom: tuple[float, float, float]
    rects: tuple[Rect, ...] = ()
    light_dir: tuple[float, float] = (0.0, -1.0)   # where the main light comes from (x, y)
    light_strength: float = 0.15                   # relative brightness change across the frame
    face_light: float = 0.15                       # side shading on the subject


_PLACES: dict[str, Place] = {
    # OULU-NPU sessions: open office with window, meeting room lit from a side, dim hall
    "O1": Place((0.82, 0.82, 0.8), (0.7, 0.7, 0.68),
                ((0.0, 0.05, 0.3, 0.55, (1.0, 1.0, 0.98)), (0.55, 0.6, 1.0, 1.0, (0.45, 0.4, 0.35))),
                (-1.0, -0.5), 0.2, 0.15),
    "O2": Place((0.72, 0.6, 0.45), (0.55, 0.45, 0.35),
                ((0.65, 0.1, 0.95, 0.45, (0.35, 0.25, 0.2)), (0.05, 0.7, 0.4, 1.0, (0.3, 0.22, 0.15))),
                (-1.0, 0.0), 0.35, 0.3),
    "O3": Place((0.45, 0.5, 0.58), (0.3, 0.33, 0.38),
                ((0.3, 0.0, 0.7, 0.06, (1.0, 1.0, 1.0)), (0.0, 0.3, 0.15, 1.0, (0.25, 0.27, 0.3))),
                (0.0, -1.0), 0.3, 0.1),
    # CASIA-FASD: greenish wall with a bookshelf
    "C": Place((0.5, 0.6, 0.52), (0.4, 0.48, 0.42),
               ((0.7, 0.15, 0.98, 0.9, (0.35, 0.22, 0.12)), (0.72, 0.3, 0.96, 0.34, (0.6, 0.2, 0.15)),
                (0.72, 0.55, 0.96, 0.59, (0.2, 0.3, 0.6)), (0.02, 0.1, 0.2, 0.3, (0.9, 0.85, 0.6))),
               (1.0, -0.5), 0.2, 0.2),
    # Replay-Attack: uniform office wall (controlled); dark room with a bright window (adverse)
    "Icontrolled": Place((0.85, 0.8, 0.7), (0.78, 0.72, 0.62), ((0.0, 0.85, 1.0, 1.0, (0.5, 0.45, 0.4)),),
                         (0.0, -1.0), 0.1, 0.08),
    "Iadverse": Place((0.3, 0.3, 0.33), (0.22, 0.22, 0.24),
                      ((0.55, 0.05, 0.95, 0.6, (1.0, 1.0, 1.0)), (0.0, 0.65, 0.35, 1.0, (0.2, 0.15, 0.1))),
                      (1.0, -0.3), 0.45, 0.35),
    # MSU-MFSD: off-white lab wall with a grey panel and a door frame
    "M": Place((0.88, 0.89, 0.9), (0.8, 0.81, 0.83),
               ((0.0, 0.0, 0.22, 1.0, (0.6, 0.62, 0.65)), (0.8, 0.2, 0.84, 1.0, (0.5, 0.45, 0.4))),
               (0.5, -1.0), 0.12, 0.12),
}


def place_for(code: str, capture: str) -> Place:
    if code == "O":
        return _PLACES["O" + capture.split("_session")[1]]
    if code == "I":
        return _PLACES["I" + capture]
    return _PLACES[code]


def background(place: Place, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Static float RGB background of ``size`` (w, h) with mild texture."""
    w, h = size
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img = (1 - t) * np.float32(place.top) + t * np.float32(place.bottom)
    img = np.broadcast_to(img, (h, w, 3)).copy()
    for x0, y0, x1, y1, rgb in place.rects:
        mask = np.zeros((h, w), np.float32)
        mask[int(y0 * h):int(y1 * h), int(x0 * w):int(x1 * w)] = 1
        mask = cv2.GaussianBlur(mask, (0, 0), 1.0 + 0.004 * w)[..., None]
        img = mask * np.float32(rgb) + (1 - mask) * img
    low = cv2.resize(rng.normal(0, 1, (6, 8)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(img * (1 + 0.04 * low[..., None]), 0, 1)


def light_map(place: Place, size: tuple[int, int]) -> np.ndarray:
    """Multiplicative light over the frame (H x W x 1): brighter towards the light."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = place.light_dir
    norm = max(np.hypot(dx, dy), 1e-6)
    proj = ((xx / w - 0.5) * dx + (yy / h - 0.5) * dy) / norm
    return (1 + place.light_strength * proj)[..., None]


def shade_portrait(rgb: np.ndarray, place: Place) -> np.ndarray:
    """Side lighting on a portrait (canvas coordinates), from the place's light."""
    w = rgb.shape[1]
    x = np.linspace(-1, 1, w, dtype=np.float32)[None, :, None]
    side = np.sign(place.light_dir[0]) if place.light_dir[0] else 0.0
    return np.clip(rgb * (1 + place.face_light * side * x), 0, 1)


def paste_portrait(bg: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, anchor: tuple[float, float],
                   center: tuple[float, float], height: float, angle: float) -> np.ndarray:
    """Composite a portrait over ``bg``: canvas point ``anchor`` lands on ``center``.

    ``height`` is the canvas height in output pixels; ``angle`` is in degrees.
    """
    from .motion import similarity

    h, w = bg.shape[:2]
    m = similarity(anchor, center, height / rgb.shape[0], angle)
    interp = cv2.INTER_AREA if height < rgb.shape[0] * 0.7 else cv2.INTER_LINEAR
    fg = cv2.warpAffine(rgb, m, (w, h), flags=interp, borderMode=cv2.BORDER_CONSTANT)
    a = cv2.warpAffine(alpha, m, (w, h), flags=interp, borderMode=cv2.BORDER_CONSTANT)[..., None]
    return a * fg + (1 - a) * bg
