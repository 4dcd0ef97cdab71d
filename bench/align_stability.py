"""How often another floating-point path changes an aligned face, with and without rounded landmarks.

    python bench/align_stability.py [--frames data/frames] [--limit 200]

MTCNN's float results differ between CPUs (vector width, oneDNN kernels), which made the
aligned faces, and every model trained on them, differ byte for byte from one machine to
another. With one machine at hand, the script stands in a second float path for the
second CPU: the same detector with PyTorch's oneDNN (mkldnn) convolutions switched off,
which sums in another order. For each sampled frame it detects the landmarks both ways and
warps the face from each set, once from the raw landmarks and once from whole-pixel ones
(what ``mpfas.preprocess.warp`` now does). It prints the share of faces that come out byte
for byte the same, the largest landmark difference, and the ratio of differing faces
(rounded / raw) measured in this run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from mpfas.preprocess.detect import FaceDetector
from mpfas.preprocess.warp import EYE_CENTRE, alignment_matrix, similarity_transform, template_points

SIZE, PADDING = 256, 0.37  # align's defaults


def _warp(img: np.ndarray, landmarks: np.ndarray, rounded: bool) -> np.ndarray:
    """The 256 px aligned face from whole-pixel landmarks (the warp module's rule) or from the
    raw ones (the rule before it)."""
    m = alignment_matrix(landmarks, SIZE, PADDING) if rounded else _raw_matrix(landmarks)
    return cv2.warpAffine(img, m, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def _raw_matrix(landmarks: np.ndarray) -> np.ndarray:
    m = similarity_transform(landmarks, template_points(SIZE, PADDING))
    m[:, 2] = np.array(EYE_CENTRE) * SIZE - m[:, :2] @ landmarks[:2].mean(0)
    return m


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=Path, default=Path("data/frames"))
    ap.add_argument("--limit", type=int, default=200, help="frames to try (evenly over the tree)")
    args = ap.parse_args(argv)
    paths = sorted(p for p in args.frames.rglob("*") if p.suffix.lower() in (".png", ".jpg"))
    if not paths:
        ap.error(f"{args.frames}: no extracted frames (run `dvc repro -s extract` first)")
    paths = [paths[i] for i in np.linspace(0, len(paths) - 1, min(args.limit, len(paths))).astype(int)]
    detector = FaceDetector()
    same = {True: 0, False: 0}
    faces, worst = 0, 0.0
    for path in paths:
        img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        with torch.backends.mkldnn.flags(enabled=True):
            a = detector.detect([img])[0]
        with torch.backends.mkldnn.flags(enabled=False):
            b = detector.detect([img])[0]
        if a is None or b is None:
            continue
        faces += 1
        worst = max(worst, float(np.abs(a.landmarks - b.landmarks).max()))
        for rounded in (False, True):
            same[rounded] += np.array_equal(_warp(img, a.landmarks, rounded), _warp(img, b.landmarks, rounded))
    if not faces:
        print("no frame had a face both ways")
        return 1
    raw, rounded = faces - same[False], faces - same[True]
    print(f"{faces} faces from {len(paths)} frames; largest landmark difference between the two float paths: "
          f"{worst:.2e} px")
    print(f"faces that differ: raw landmarks {raw} ({raw / faces:.1%}), whole-pixel landmarks {rounded} "
          f"({rounded / faces:.1%}); ratio rounded / raw: {rounded / raw if raw else float('nan'):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
