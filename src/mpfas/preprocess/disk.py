"""Will the sampled frames fit on the disk? Asked before extract decodes anything.

Frames are kept at full resolution, so their size follows the videos' resolution: at the real
datasets' sizes PNG frames take about 60 GB (OULU-NPU's 1080p 43.5 GB; docs/benchmarks.md, "Disk at the real
datasets' sizes"). A stage that fills the disk half way loses no file (every write is atomic and
a rerun resumes) but wastes hours; this check fails first when even a low estimate does not fit.

Bytes per pixel, measured by ``bench/preprocess.py`` on the dataset profiles (2026-11-29): PNG
1.41 (2.93 MB per 1080p frame), JPEG 0.24. The low estimate is half of that (flatter scenes
compress better), the typical one the measured value.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2

from mpfas.core.errors import MpfasError

log = logging.getLogger(__name__)

BYTES_PER_PIXEL = {"png": 1.41, "jpg": 0.24}
LOW = 0.5  # the low estimate's share of the typical one
PROBES = 24  # videos opened to learn the resolution, spread over the list


class DiskSpaceError(MpfasError):
    """The frames cannot fit in the free space of the output folder's disk."""


@dataclass(frozen=True)
class FrameSpace:
    """Estimated bytes of ``frames`` frames at ``pixels`` per frame (mean of the probed videos)."""

    frames: int
    pixels: float
    image_ext: str

    def bytes(self, ext: str | None = None) -> float:
        return self.frames * self.pixels * BYTES_PER_PIXEL[ext or self.image_ext]


def mean_pixels(videos: Sequence[str | Path]) -> float:
    """Mean frame area of up to ``PROBES`` videos spread over ``videos`` (unreadable ones skipped)."""
    if not videos:
        return 0.0
    step = max(1, len(videos) // PROBES)
    areas = []
    for path in list(videos)[::step][:PROBES]:
        cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        if cap.isOpened():
            area = cap.get(cv2.CAP_PROP_FRAME_WIDTH) * cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
            if area > 0:
                areas.append(area)
        cap.release()
    if not areas:  # images, or nothing opens: let extract report them one by one
        return 0.0
    return sum(areas) / len(areas)


def check_free_space(videos: Sequence[str | Path], frames_per_video: int, image_ext: str, out_dir: Path,
                     label: str) -> FrameSpace:
    """Fail before any work when the frames of ``videos`` cannot fit under ``out_dir``; warn when
    they probably will not. Returns the estimate."""
    space = FrameSpace(len(videos) * frames_per_video, mean_pixels(videos), image_ext)
    need = space.bytes()
    if need <= 0:
        return space
    probe = Path(out_dir)
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    gb = 1e9
    account = (f"{label}: {space.frames} frames of about {space.pixels / 1e6:.2f} Mpx take about {need / gb:.1f} GB "
               f"as {image_ext} (at least {LOW * need / gb:.1f} GB), and {free / gb:.1f} GB are free under {probe}")
    alternative = "" if image_ext == "jpg" else f"; extract.image_ext: jpg needs about {space.bytes('jpg') / gb:.1f} GB"
    if LOW * need > free:
        raise DiskSpaceError(f"{account}. Free some space or point the outputs elsewhere{alternative}")
    if need > free:
        log.warning("%s: it may not fit%s", account, alternative)
    return space
