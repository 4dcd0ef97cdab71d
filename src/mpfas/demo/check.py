"""Measure how often MTCNN finds a face in the demo videos, per domain and class.

Run ``python -m mpfas.demo.check data/raw`` (optionally ``--step N`` to test every
Nth frame). The demo is only useful if the align stage finds faces in nearly every
frame of every class, so this is the acceptance check for the renderer.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from mpfas.data import adapter_for, dataset_name, demo_codes


def read_frames(path: Path, step: int = 1) -> list[np.ndarray]:
    """Every ``step``-th frame of a video as uint8 RGB."""
    cap = cv2.VideoCapture(str(path))
    frames, i = [], 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if i % step == 0:
            frames.append(np.ascontiguousarray(frame[..., ::-1]))
        i += 1
    cap.release()
    return frames


def detection_rates(out_root: Path, codes: tuple[str, ...] | None = None, step: int = 1,
                    mtcnn=None) -> dict[tuple[str, str], tuple[int, int]]:
    """(code, label) -> (frames with a face, frames tested), MTCNN on CPU on RGB frames;
    ``codes`` defaults to every demo dataset."""
    if mtcnn is None:
        from facenet_pytorch import MTCNN
        mtcnn = MTCNN(keep_all=True, device="cpu", min_face_size=20)
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for code in demo_codes() if codes is None else codes:
        root = Path(out_root) / dataset_name(code)
        for rec in adapter_for(code).scan(root).records:
            frames = read_frames(root / rec.relpath, step)
            boxes, _ = mtcnn.detect(np.stack(frames))
            key = (code, rec.label.value)
            counts[key][0] += sum(b is not None and len(b) > 0 for b in boxes)
            counts[key][1] += len(frames)
    return {k: (v[0], v[1]) for k, v in sorted(counts.items())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", type=Path, help="demo root holding the dataset folders (data/raw)")
    parser.add_argument("--step", type=int, default=1, help="test every Nth frame")
    args = parser.parse_args(argv)
    import torch
    torch.set_num_threads(2)
    rates = detection_rates(args.root, step=args.step)
    print(f"{'domain':<6}{'class':<8}{'found':>7}{'frames':>8}{'rate':>8}")
    for (code, label), (found, total) in rates.items():
        print(f"{code:<6}{label:<8}{found:>7}{total:>8}{found / max(total, 1):>8.1%}")
    found = sum(v[0] for v in rates.values())
    total = sum(v[1] for v in rates.values())
    print(f"{'all':<14}{found:>7}{total:>8}{found / max(total, 1):>8.1%}")


if __name__ == "__main__":
    main()
