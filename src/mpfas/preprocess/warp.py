"""5-point similarity warp of a face to the mean-face template.

As in the official pipeline's MTCNN alignment: rotation and scale come from the
least-squares similarity between the five landmarks (eyes, nose tip, mouth corners)
and a mean-face template widened by ``padding`` on every side; the translation then
puts the midpoint of the eyes at (0.5 W, 0.4 H) of the crop.

The landmarks are rounded to whole frame pixels first. MTCNN's float results differ in
their last bits from one CPU to another (vector units, thread counts), and unrounded they
made the aligned faces, and so every trained model, differ byte for byte between machines
given the same frames. Whole pixels absorb such differences except at a rounding
boundary; the cost is at most half a frame pixel of alignment.
"""

from __future__ import annotations

import cv2
import numpy as np

# Mean 5-point face in a unit box: left eye, right eye, nose tip, left and right
# mouth corners ("left" = image left). Values as used by the MTCNN alignment of
# the official HFN+MP preprocessing.
MEAN_FACE_5PT = np.array([
    [0.224152, 0.2119465],
    [0.75610125, 0.2119465],
    [0.490127, 0.628106],
    [0.254149, 0.780233],
    [0.726104, 0.780233],
], dtype=np.float64)

EYE_CENTRE = (0.5, 0.4)  # where the midpoint of the eyes lands, as a fraction of (W, H)


def template_points(size: int, padding: float) -> np.ndarray:
    """The template in crop pixels: the unit box grown by ``padding`` per side, scaled to ``size``."""
    return (MEAN_FACE_5PT + padding) / (1 + 2 * padding) * size


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares 2-D similarity (rotation, uniform scale, translation) mapping src to dst.

    Umeyama (1991) closed form; returns a 2x3 matrix for ``cv2.warpAffine``. A
    reflection is never returned.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two matching (N>=2, 2) point sets, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    var_s = (s_c ** 2).sum() / len(src)
    if var_s <= 1e-12:
        raise ValueError("source points coincide; no similarity transform")
    cov = d_c.T @ s_c / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.array([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rot = u @ np.diag(d) @ vt
    scale = float((sig * d).sum() / var_s)
    out = np.empty((2, 3))
    out[:, :2] = scale * rot
    out[:, 2] = mu_d - scale * rot @ mu_s
    return out


def alignment_matrix(landmarks: np.ndarray, size: int, padding: float) -> np.ndarray:
    """2x3 matrix taking a frame to the aligned ``size`` x ``size`` crop."""
    landmarks = np.round(np.asarray(landmarks, dtype=np.float64).reshape(5, 2))  # CPU-independent (module doc)
    m = similarity_transform(landmarks, template_points(size, padding))
    eyes = landmarks[:2].mean(0)
    m[:, 2] = np.array(EYE_CENTRE) * size - m[:, :2] @ eyes
    return m


def warp_face(image: np.ndarray, landmarks: np.ndarray, size: int, padding: float) -> np.ndarray:
    """The aligned face crop (same channel order as ``image``); outside the frame is black."""
    m = alignment_matrix(landmarks, size, padding)
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0)
