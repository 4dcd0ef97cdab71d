"""Atomic file writes: write a temp file next to the target, then ``os.replace`` it.

A process killed at any moment leaves either the old file or the new one, never a
half-written one. Temp files end in :data:`TEMP_SUFFIX` (git-ignored) and carry the
writer's pid, so concurrent writers never share one; :func:`remove_temp_files`
sweeps those a killed run left behind.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

TEMP_SUFFIX = ".tmp"


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> Path:
    """Strict, stable JSON (sorted keys, 2-space indent, trailing newline): same data, same bytes.

    Non-finite floats are written as null (:func:`json_safe`): JSON has no NaN or infinity, and
    DVC would refuse the file. A threshold of +inf ("reject everything": the best a worse-than-chance
    model can do) thus reads null.
    """
    return write_text(path, json.dumps(json_safe(obj), indent=2, sort_keys=True, allow_nan=False) + "\n")


def json_safe(obj: Any) -> Any:
    """Non-finite floats -> None, numpy scalars -> Python, recursively."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_csv(path: str | Path, rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> Path:
    """CSV with a header row; ``rows`` are mappings keyed by ``columns``."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return write_text(path, buf.getvalue())


def encode_image(image: np.ndarray, ext: str) -> bytes:
    """Encode a BGR (OpenCV order) uint8 image as ``png`` or ``jpg`` bytes."""
    import cv2

    ext = ext.lower().lstrip(".")
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext in ("jpg", "jpeg") else []
    ok, buf = cv2.imencode(f".{ext}", image, params)
    if not ok:
        raise ValueError(f"could not encode a {image.shape} image as {ext}")
    return buf.tobytes()


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write a BGR uint8 image atomically; the format follows the file extension."""
    path = Path(path)
    return write_bytes(path, encode_image(image, path.suffix))


def remove_temp_files(folder: str | Path) -> int:
    """Delete temp files (``.*.tmp``) under ``folder`` that a killed run left; return how many."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    n = 0
    for tmp in folder.rglob(f".*{TEMP_SUFFIX}"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            n += 1
    return n
