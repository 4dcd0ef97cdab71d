"""Simulated cameras: what makes OULU look unlike CASIA, Idiap or MSU.

Each dataset's cameras are listed in its dataset file (its DemoPlan). A
:class:`Camera` turns a rendered scene (float RGB in [0, 1]) into the uint8
frame a real sensor would have written: exposure and white-balance cast,
vignetting, optical blur, shot and read noise, tone curve, saturation and a
JPEG round trip (on top of the container's own compression).
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from mpfas.data import dataset_spec
from mpfas.data.demo_plan import Camera

__all__ = ["Camera", "camera_for", "capture"]


def camera_for(code: str, capture: str, scale: float = 1.0) -> Camera:
    """The camera of domain ``code`` under capture condition ``capture`` (its DemoPlan's)."""
    plan = dataset_spec(code).demo
    if plan is None:
        raise ValueError(f"dataset {code!r} has no demo plan")
    return plan.camera(capture).scaled(scale)


@functools.lru_cache(maxsize=16)
def _gain_map(cam: Camera) -> np.ndarray:
    """Exposure x white balance x vignetting, per pixel (cached per camera)."""
    w, h = cam.size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    vignette = (1 - cam.vignette * r2 / 2)[..., None]
    return (vignette * cam.exposure * np.float32(cam.gains)[None, None]).astype(np.float32)


@functools.lru_cache(maxsize=16)
def _colour_matrix(cam: Camera) -> np.ndarray:
    """Saturation then contrast about mid grey, as one 3x4 affine colour transform."""
    s, c = cam.saturation, cam.contrast
    sat = s * np.eye(3) + (1 - s) / 3 * np.ones((3, 3))
    return np.hstack([c * sat, np.full((3, 1), 0.5 * (1 - c))]).astype(np.float32)


def capture(scene: np.ndarray, cam: Camera, rng: np.random.Generator) -> np.ndarray:
    """Sensor + ISP simulation: float RGB scene -> uint8 RGB frame of size cam.size."""
    h, w = scene.shape[:2]
    if (w, h) != cam.size:
        raise ValueError(f"scene is {w}x{h}, camera expects {cam.size}")
    img = cv2.multiply(scene.astype(np.float32, copy=False), _gain_map(cam))
    if cam.blur > 0:
        img = cv2.GaussianBlur(img, (0, 0), cam.blur)
    np.clip(img, 0, 1, out=img)
    sigma = cv2.sqrt(img + 0.25) * np.float32(cam.noise)  # shot noise grows with signal, read noise floor
    img += sigma * rng.standard_normal(img.shape, dtype=np.float32)
    np.clip(img, 0, 1, out=img)
    if cam.gamma != 1.0:
        img = cv2.pow(img, cam.gamma)
    img = cv2.transform(img, _colour_matrix(cam))
    np.clip(img, 0, 1, out=img)
    frame = cv2.convertScaleAbs(img, alpha=255.0)
    ok, buf = cv2.imencode(".jpg", frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, cam.jpeg])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()
