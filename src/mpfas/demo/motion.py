"""Motion: smooth natural head motion for live faces, rigid hand jitter for media.

A pose is (dx, dy, angle, scale, yaw, pitch): translation as a fraction of the
frame, in-plane rotation in degrees, relative scale, and small out-of-plane tilts
(radians) used only for rigid media (paper, screens).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Poses:
    dx: np.ndarray
    dy: np.ndarray
    angle: np.ndarray
    scale: np.ndarray
    yaw: np.ndarray
    pitch: np.ndarray

    def __len__(self) -> int:
        return len(self.dx)


def _sines(rng: np.random.Generator, t: np.ndarray, amp: float, fmin: float, fmax: float) -> np.ndarray:
    out = np.zeros_like(t)
    for _ in range(2):
        f = rng.uniform(fmin, fmax)
        out += np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    return amp * out / 2


def head_motion(rng: np.random.Generator, n: int, fps: float, amount: float = 1.0) -> Poses:
    """Slow, smooth small translation, rotation and scale of a live head."""
    t = np.arange(n, dtype=np.float64) / fps
    zeros = np.zeros(n)
    return Poses(
        dx=_sines(rng, t, 0.02 * amount, 0.15, 0.6), dy=_sines(rng, t, 0.012 * amount, 0.15, 0.6),
        angle=_sines(rng, t, 3.0 * amount, 0.1, 0.5), scale=1 + _sines(rng, t, 0.02 * amount, 0.1, 0.4),
        yaw=zeros, pitch=zeros,
    )


def _jitter(rng: np.random.Generator, n: int, fps: float, amp: float) -> np.ndarray:
    """Hand tremor: low-passed random walk plus a faint 5-9 Hz tremor."""
    walk = np.cumsum(rng.normal(0, 1, n + 8))
    walk = np.convolve(walk, np.ones(5) / 5, mode="valid")[:n]
    walk = (walk - walk.mean()) / (walk.std() + 1e-9)
    t = np.arange(n) / fps
    tremor = np.sin(2 * np.pi * rng.uniform(5, 9) * t + rng.uniform(0, 2 * np.pi))
    return amp * (0.8 * walk + 0.3 * tremor)


def hand_motion(rng: np.random.Generator, n: int, fps: float, steadiness: float = 1.0) -> Poses:
    """Rigid jitter of a held medium; ``steadiness`` < 1 means a fixed support."""
    a = steadiness
    return Poses(
        dx=_jitter(rng, n, fps, 0.01 * a), dy=_jitter(rng, n, fps, 0.01 * a),
        angle=_jitter(rng, n, fps, 1.2 * a) + rng.uniform(-4, 4), scale=1 + _jitter(rng, n, fps, 0.01 * a),
        yaw=_jitter(rng, n, fps, 0.04 * a) + rng.uniform(-0.15, 0.15),
        pitch=_jitter(rng, n, fps, 0.04 * a) + rng.uniform(-0.12, 0.12),
    )


def static_poses(n: int) -> Poses:
    z = np.zeros(n)
    return Poses(dx=z, dy=z, angle=z, scale=np.ones(n), yaw=z, pitch=z)


def similarity(src_pt: tuple[float, float], dst_pt: tuple[float, float], scale: float,
               angle: float) -> np.ndarray:
    """2x3 matrix mapping src_pt to dst_pt with rotation (degrees) and scale about it."""
    m = cv2.getRotationMatrix2D((float(src_pt[0]), float(src_pt[1])), float(angle), float(scale))
    m[0, 2] += dst_pt[0] - src_pt[0]
    m[1, 2] += dst_pt[1] - src_pt[1]
    return m


def plane_homography(tex_size: tuple[int, int], center: tuple[float, float], width: float,
                     angle: float, yaw: float, pitch: float) -> np.ndarray:
    """3x3 homography placing a flat texture (w, h) as a tilted plane in the frame.

    ``width`` is the plane's width in frame pixels when facing the camera; the
    plane is rotated by yaw/pitch (radians) and seen by a pinhole at distance 2.5
    plane widths, then rotated in-plane by ``angle`` degrees about ``center``.
    """
    tw, th = tex_size
    half_w, half_h = width / 2, width * th / tw / 2
    corners = np.array([[-half_w, -half_h], [half_w, -half_h], [half_w, half_h], [-half_w, half_h]])
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    f = 2.5 * width
    pts = []
    a = np.deg2rad(angle)
    ca, sa = np.cos(a), np.sin(a)
    for x, y in corners:
        x1, z1 = x * cy, x * sy                        # yaw about the vertical axis
        y2, z2 = y * cp - z1 * sp, y * sp + z1 * cp    # pitch about the horizontal axis
        px, py = f * x1 / (f + z2), f * y2 / (f + z2)
        pts.append([center[0] + ca * px - sa * py, center[1] + sa * px + ca * py])
    src = np.float32([[0, 0], [tw, 0], [tw, th], [0, th]])
    return cv2.getPerspectiveTransform(src, np.float32(pts))
