"""Real video files for the preprocessing tests: the astronaut's face drifting over a plain
background, written with OpenCV, and the records and file trees the stages see."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
from skimage import data

from helpers import param_defaults as dflt
from mpfas.data import Label, VideoRecord
from mpfas.preprocess.extract import run_extract

_FACE = cv2.cvtColor(data.astronaut()[20:240, 140:310], cv2.COLOR_RGB2BGR)  # a real face (BGR)


def make_video(path: Path, frames: int = 24, size: tuple[int, int] = (320, 240), fourcc: str = "MJPG",
               face: bool = True, fps: int = 12) -> Path:
    """A real video: the astronaut's face drifting slightly over a plain background."""
    w, h = size
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened(), f"cannot write {path}"
    fh, fw = _FACE.shape[:2]
    s = 0.8 * h / fh
    sprite = cv2.resize(_FACE, (int(fw * s), int(fh * s)), interpolation=cv2.INTER_AREA)
    for i in range(frames):
        img = np.full((h, w, 3), (70, 90, 110), np.uint8)
        cv2.putText(img, str(i), (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
        if face:
            y = (h - sprite.shape[0]) // 2
            x = (w - sprite.shape[1]) // 2 + round(0.03 * w * np.sin(i / 3))
            img[y:y + sprite.shape[0], x:x + sprite.shape[1]] = sprite
        writer.write(img)
    writer.release()
    return path


def record(rel: str, label: Label = Label.LIVE, dataset: str = "O") -> VideoRecord:
    return VideoRecord(dataset, rel, subject=rel.split("/")[-1], split="train", label=label)


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path, with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}



def two_extracted_videos(tmp_path: Path) -> list:
    """A live and a print video of the demo's face, two frames each extracted under tmp_path."""
    root = tmp_path / "raw"
    records = [record("s/a.avi", Label.LIVE), record("s/b.avi", Label.PRINT)]
    for r in records:
        make_video(root / r.relpath, frames=8)
    run_extract(records, root, tmp_path / "frames", dflt.extract(frames_per_video=2),
                rel_to=tmp_path, progress=False)
    return records

