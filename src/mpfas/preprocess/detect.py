"""MTCNN face detection: batched, on downscaled copies, mapped back to full resolution.

facenet-pytorch's MTCNN wants RGB uint8 frames and batches only equal-sized ones;
its ``forward`` crashes in batch mode when a frame has no face, so only
``detect(..., landmarks=True)`` is used and the warp is done in :mod:`.warp`.
Detecting on a copy whose longest side is ``max_side`` cuts the image pyramid's
cost roughly with the pixel count; FAS faces are large, so little is lost.

On CPU, MTCNN runs with one torch intra-op thread (``FaceDetector(threads=1)``): its
R-Net and O-Net stages resample every candidate box separately, hundreds of tiny ops
per frame, and splitting each over OpenMP threads only adds a barrier per op. On a
busy machine every barrier waits for a descheduled thread: with torch's default (one
thread per core) on a 2-core machine under a load of 4, a 3-frame video took 0.9-5 s
instead of 0.35-0.5 s (real-size 1920 x 1080 frames: 7-28 s instead of 2.4 s), which
turned the align stage of the full-size demo (7030 videos) from minutes into hours.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import torch

Select = Literal["largest", "confident"]


@dataclass(frozen=True)
class Face:
    """One detection in full-resolution frame pixels."""

    box: tuple[float, float, float, float]  # x1, y1, x2, y2
    prob: float
    landmarks: np.ndarray  # (5, 2): left eye, right eye, nose, left and right mouth corner

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)


def select_main(faces: Sequence[Face], how: Select = "largest") -> Face | None:
    """The face a FAS video is about: the largest box, or the most confident detection."""
    if not faces:
        return None
    if how == "largest":
        return max(faces, key=lambda f: (f.area, f.prob))
    if how == "confident":
        return max(faces, key=lambda f: (f.prob, f.area))
    raise ValueError(f"align.select: {how!r} is not one of ['largest', 'confident']")


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads, then restore the previous count
    (``None``: leave torch's setting alone)."""
    old = torch.get_num_threads()
    if n is None or n == old:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


class FaceDetector:
    """facenet-pytorch MTCNN (weights ship with the package) with batching and downscaling.

    ``max_side`` <= 0 disables downscaling (detect at full resolution). ``threads`` is the
    torch intra-op thread count while MTCNN runs on CPU (default 1, see the module
    docstring; ``None`` keeps torch's setting); the caller's count is restored afterwards.
    """

    def __init__(self, max_side: int = 640, min_face_size: int = 20, select: Select = "largest",
                 device: str | torch.device = "cpu", batch_size: int = 16,
                 thresholds: Sequence[float] = (0.6, 0.7, 0.7), factor: float = 0.709,
                 threads: int | None = 1) -> None:
        from facenet_pytorch import MTCNN  # heavy import, only where detection happens

        if threads is not None and threads < 1:
            raise ValueError(f"threads: {threads} must be >= 1 (or None to keep torch's setting)")
        self.device = torch.device(device)
        self.threads = threads if self.device.type == "cpu" else None
        self.max_side = max_side
        self.select = select
        self.batch_size = batch_size
        self.min_face_size = min_face_size
        self.mtcnn = MTCNN(min_face_size=min_face_size, thresholds=list(thresholds), factor=factor,
                           keep_all=True, device=self.device)
        self.mtcnn.eval()

    def detect_all(self, frames: Sequence[np.ndarray]) -> list[list[Face]]:
        """Every face in every RGB uint8 frame, in full-resolution coordinates."""
        by_shape: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, frame in enumerate(frames):
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise ValueError(f"frame {i}: expected an H x W x 3 uint8 RGB image, got {frame.shape} {frame.dtype}")
            by_shape[frame.shape].append(i)
        out: list[list[Face]] = [[] for _ in frames]
        with torch_threads(self.threads):
            for shape, idxs in by_shape.items():
                for start in range(0, len(idxs), self.batch_size):
                    chunk = idxs[start:start + self.batch_size]
                    for i, faces in zip(chunk, self._detect_batch([frames[i] for i in chunk], shape)):
                        out[i] = faces
        return out

    def detect(self, frames: Sequence[np.ndarray]) -> list[Face | None]:
        """The main face of every frame (None where there is none)."""
        return [select_main(faces, self.select) for faces in self.detect_all(frames)]

    def _detect_batch(self, frames: list[np.ndarray], shape: tuple[int, ...]) -> list[list[Face]]:
        h, w = shape[:2]
        scale = self.max_side / max(h, w) if self.max_side > 0 else 1.0
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            small = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]
            sx, sy = size[0] / w, size[1] / h
        else:
            small, sx, sy = frames, 1.0, 1.0
        if min(small[0].shape[:2]) < self.min_face_size:  # smaller than the smallest face MTCNN looks for
            return [[] for _ in frames]  # (its image pyramid would be empty: facenet-pytorch fails on it)
        boxes, probs, points = self.mtcnn.detect(np.stack(small), landmarks=True)
        back = np.array([1 / sx, 1 / sy])
        result: list[list[Face]] = []
        for b, p, pts in zip(boxes, probs, points):
            if b is None:
                result.append([])
                continue
            b = np.asarray(b, dtype=np.float64).reshape(-1, 4) * np.tile(back, 2)
            pts = np.asarray(pts, dtype=np.float64).reshape(-1, 5, 2) * back
            result.append([Face(tuple(float(v) for v in bb), float(pp), ll)
                           for bb, pp, ll in zip(b, np.asarray(p, dtype=np.float64), pts)])
        return result
