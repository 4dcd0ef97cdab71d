"""One labelled frame per domain x class, to see at a glance what the demo looks like."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ..config import DATASET_CODES, DATASET_NAMES
from ..datasets import Label, adapter_for

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


def contact_sheet(out_root: Path, png_path: Path) -> None:
    """4 rows (O, C, I, M) x 3 columns (live, print, replay), labelled, as a PNG."""
    out_root, png_path = Path(out_root), Path(png_path)
    rows = []
    for code in DATASET_CODES:
        root = out_root / DATASET_NAMES[code]
        records = adapter_for(code).scan(root).records
        cells = []
        for label in CLASSES:
            recs = sorted((r for r in records if r.label is label), key=lambda r: r.relpath)
            if not recs:
                raise RuntimeError(f"{root}: no {label.value} video for the contact sheet")
            rec = recs[len(recs) // 2]
            cell = np.full((CELL_H + LABEL_H, CELL_W, 3), 255, np.uint8)
            cell[LABEL_H:] = _fit(middle_frame(root / rec.relpath))
            text = f"{code} {DATASET_NAMES[code]}: {label.value}" + (f" ({rec.attack})" if rec.attack else "")
            cv2.putText(cell, text[:48], (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (0, 0, 0), 1, cv2.LINE_AA)
            cells.append(cell)
        rows.append(np.hstack(cells))
    sheet = np.vstack(rows)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = png_path.with_name(png_path.stem + ".tmp.png")
    if not cv2.imwrite(str(tmp), sheet[..., ::-1]):
        raise RuntimeError(f"{png_path}: cannot write PNG")
    os.replace(tmp, png_path)
