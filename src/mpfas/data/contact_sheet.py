"""Contact sheets of the raw videos: one labelled frame per dataset x class."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mpfas.core.atomic import write_image
from mpfas.data.records import Label, VideoRecord
from mpfas.data.registry import dataset_name

CELL_W, CELL_H, LABEL_H = 256, 192, 22
CLASSES = (Label.LIVE, Label.PRINT, Label.REPLAY)


def middle_frame(path: Path) -> np.ndarray:
    """The middle frame of a video as uint8 RGB."""
    cap = cv2.VideoCapture(str(path))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.set(cv2.CAP_PROP_POS_FRAMES, max(n // 2, 0))
    ok, frame = cap.read()
    cap.release()
    if not ok:
        raise RuntimeError(f"{path}: cannot read a frame")
    return frame[..., ::-1]


def _fit(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    k = min(CELL_W / w, CELL_H / h)
    small = cv2.resize(img, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
    cell = np.full((CELL_H, CELL_W, 3), 24, np.uint8)
    y, x = (CELL_H - small.shape[0]) // 2, (CELL_W - small.shape[1]) // 2
    cell[y:y + small.shape[0], x:x + small.shape[1]] = small
    return cell


def dataset_sheet(records: dict[str, list[VideoRecord]], roots: dict[str, Path], png_path: Path) -> None:
    """One row per dataset, one column per class (live, print, replay): a labelled PNG.

    Works for the demo and for the real datasets alike, from the video index.
    """
    rows = []
    for code, recs_of_code in records.items():
        cells = []
        for label in CLASSES:
            recs = sorted((r for r in recs_of_code if r.label is label), key=lambda r: r.relpath)
            if not recs:
                raise RuntimeError(f"{roots[code]}: no {label.value} video for the contact sheet")
            rec = recs[len(recs) // 2]
            cell = np.full((CELL_H + LABEL_H, CELL_W, 3), 255, np.uint8)
            cell[LABEL_H:] = _fit(middle_frame(roots[code] / rec.relpath))
            text = f"{code} {dataset_name(code)}: {label.value}" + (f" ({rec.attack})" if rec.attack else "")
            cv2.putText(cell, text[:48], (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (0, 0, 0), 1, cv2.LINE_AA)
            cells.append(cell)
        rows.append(np.hstack(cells))
    write_image(Path(png_path), np.vstack(rows)[..., ::-1])
