"""Per-domain simulated cameras: what makes OULU look unlike CASIA, Idiap or MSU.

A :class:`Camera` turns a rendered scene (float RGB in [0, 1]) into the uint8
frame a real sensor would have written: exposure and white-balance cast,
vignetting, optical blur, shot and read noise, tone curve, saturation and a
JPEG round trip (on top of the container's own compression).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import cv2
import numpy as np


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
        w, h = (max(64, int(round(v * scale / 8)) * 8) for v in self.size)
        return replace(self, size=(w, h), blur=self.blur * min(1.0, max(scale, 0.5)))


# OULU-NPU: six phones' front cameras (portrait), three sessions.
_OULU_PHONES = {
    1: Camera((272, 480), gains=(1.08, 1.0, 0.88), noise=0.018, blur=0.7, jpeg=82, saturation=1.1),
    2: Camera((272, 480), gains=(1.02, 1.0, 0.95), noise=0.014, blur=0.6, jpeg=88, contrast=1.08),
    3: Camera((272, 480), gains=(1.1, 1.02, 0.85), noise=0.024, blur=0.9, jpeg=78, saturation=1.15),
    4: Camera((272, 480), gains=(1.0, 1.03, 0.98), noise=0.02, blur=0.8, jpeg=84, gamma=1.05),
    5: Camera((272, 480), gains=(1.06, 0.98, 0.9), noise=0.016, blur=0.7, jpeg=86, contrast=1.1),
    6: Camera((272, 480), gains=(1.12, 1.0, 0.84), noise=0.026, blur=1.0, jpeg=76, saturation=1.05),
}
# CASIA-FASD: an old low-quality USB camera, a newer one, and a Sony HR camera.
_CASIA = {
    "low": Camera((320, 240), gains=(0.92, 1.06, 0.96), noise=0.045, blur=1.5, jpeg=45,
                  saturation=0.75, contrast=0.9, vignette=0.35),
    "normal": Camera((400, 304), gains=(0.95, 1.04, 0.98), noise=0.03, blur=1.1, jpeg=60,
                     saturation=0.85, vignette=0.3),
    "high": Camera((480, 272), gains=(0.98, 1.02, 1.0), noise=0.012, blur=0.6, jpeg=85, contrast=1.05),
}
# Replay-Attack: one MacBook webcam, 320x240, strong compression, yellow cast.
_IDIAP = {
    "controlled": Camera((320, 240), gains=(1.12, 1.03, 0.78), noise=0.03, blur=1.0, jpeg=55,
                         saturation=0.7, vignette=0.25),
    "adverse": Camera((320, 240), gains=(1.1, 1.02, 0.82), exposure=0.75, noise=0.045, blur=1.2,
                      jpeg=50, saturation=0.65, gamma=1.1, vignette=0.3),
}
# MSU-MFSD: MacBook Air webcam (mov) and a Google Nexus 5 (mp4).
_MSU = {
    "laptop": Camera((320, 240), gains=(0.94, 1.0, 1.12), noise=0.03, blur=1.0, jpeg=65,
                     saturation=0.9, contrast=0.95),
    "android": Camera((360, 240), gains=(0.97, 1.0, 1.08), noise=0.015, blur=0.7, jpeg=85,
                      saturation=1.1, contrast=1.1),
}


def camera_for(code: str, capture: str, scale: float = 1.0) -> Camera:
    """The camera of domain ``code`` under capture condition ``capture`` (see layout)."""
    if code == "O":
        phone = int(capture.split("_")[0].removeprefix("phone"))
        session = int(capture.split("_")[1].removeprefix("session"))
        cam = replace(_OULU_PHONES[phone], exposure=(1.0, 0.85, 0.75)[session - 1])
    elif code == "C":
        cam = _CASIA[capture]
    elif code == "I":
        cam = _IDIAP[capture]
    elif code == "M":
        cam = _MSU[capture]
    else:
        raise ValueError(f"unknown dataset code {code!r}")
    return cam.scaled(scale)


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
