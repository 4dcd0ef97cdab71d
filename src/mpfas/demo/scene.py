"""Places: each domain's backgrounds and lighting, drawn procedurally.

Each dataset's places are listed in its dataset file (its DemoPlan). A
:class:`Place` is a wall gradient with a few soft rectangles (windows, doors,
shelves, posters) and a light map; the same place is reused by every video
filmed there, as in the real datasets.
"""

from __future__ import annotations

import cv2
import numpy as np

from mpfas.data import dataset_spec
from mpfas.data.demo_plan import Place, Rect

__all__ = ["Place", "Rect", "background", "light_map", "paste_portrait", "place_for", "shade_portrait"]


def place_for(code: str, capture: str) -> Place:
    """The place of domain ``code`` under capture condition ``capture`` (its DemoPlan's)."""
    plan = dataset_spec(code).demo
    if plan is None:
        raise ValueError(f"dataset {code!r} has no demo plan")
    return plan.place(capture)


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
    from mpfas.demo.motion import similarity

    h, w = bg.shape[:2]
    m = similarity(anchor, center, height / rgb.shape[0], angle)
    interp = cv2.INTER_AREA if height < rgb.shape[0] * 0.7 else cv2.INTER_LINEAR
    fg = cv2.warpAffine(rgb, m, (w, h), flags=interp, borderMode=cv2.BORDER_CONSTANT)
    a = cv2.warpAffine(alpha, m, (w, h), flags=interp, borderMode=cv2.BORDER_CONSTANT)[..., None]
    return a * fg + (1 - a) * bg
