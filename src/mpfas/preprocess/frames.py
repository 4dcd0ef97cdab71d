"""Deterministic frame sampling from a video.

Frames are taken evenly over the video, first and last included
(:func:`mpfas.core.sampling.even_indices`). Container frame
counts are sometimes wrong (truncated files, broken indexes), so the count is
checked by decoding: with ``decode="seek"`` the sampled frames are read by seeking
and the count is accepted only if frame ``n-1`` decodes and frame ``n`` does not;
otherwise (and with ``decode="sequential"``) the video is decoded front to back: once,
keeping the sampled frames of the packet count, when exactly that many frames decode;
else once to count the frames and once to keep the sampled ones.

Seeking is used only on a constant frame rate: OpenCV numbers the frames after the
keyframe it seeks to by their timestamps, so on a variable-rate video (phones record
them) with more than one keyframe it returns the wrong picture without an error, and
the count check can still pass. The rate and the packet count are read from the
packets (PyAV demuxes them without decoding, a few ms per video); a variable rate, or
packets that cannot be read, means decoding front to back.

An image (an ``image`` dataset's sample, e.g. CelebA-Spoof) is a one-frame video: it is
read with ``cv2.imread``, since ``VideoCapture`` reports a meaningless frame count for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from mpfas.core.sampling import even_indices
from mpfas.data.base import IMAGE_EXTENSIONS

DecodeMode = Literal["seek", "sequential"]


class VideoReadError(Exception):
    """A video cannot be used at all; ``reason`` is a short machine-readable tag."""

    def __init__(self, reason: str, detail: str, path: Path | str = "") -> None:
        super().__init__(f"{path}: {reason}: {detail}" if path else f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail  # no machine path in it: it goes into failures.csv


@dataclass
class SampledFrames:
    """The frames kept from one video (BGR uint8, OpenCV order) and how they were found."""

    indices: list[int]
    images: list[np.ndarray]
    decoded_count: int  # frames that actually decode
    reported_count: int  # what the container claims (<= 0: unknown)
    method: str  # "seek", "sequential" or "image" (one frame)

    @property
    def truncated(self) -> bool:
        """Fewer frames decode than the container announces: the file is probably cut short."""
        return self.reported_count > 0 and self.decoded_count < self.reported_count


def read_sampled_frames(path: str | Path, k: int, decode: DecodeMode = "seek") -> SampledFrames:
    """Decode ``k`` evenly spaced frames of the video at ``path``.

    Raises :class:`VideoReadError` with reason ``missing``, ``empty_file`` or
    ``unreadable`` when no frame at all can be had.
    """
    path = Path(path)
    if not path.is_file():
        raise VideoReadError("missing", "the file does not exist", path)
    if path.stat().st_size == 0:
        raise VideoReadError("empty_file", "the file is 0 bytes", path)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return _read_image(path, k)
    cap = _open(path)
    try:
        reported = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        packets, constant = read_packets(path)
        if decode == "seek" and reported > 0 and constant:
            got = _read_by_seeking(cap, reported, k)
            if got is not None:
                return SampledFrames(*got, decoded_count=reported, reported_count=reported, method="seek")
    finally:
        cap.release()
    if packets > 0:
        got = _read_once(path, k, packets)
        if got is not None:
            return SampledFrames(*got, decoded_count=packets, reported_count=reported, method="sequential")
    return _read_sequentially(path, k, reported)


def _read_image(path: Path, k: int) -> SampledFrames:
    """An image as a one-frame video (frame 0)."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise VideoReadError("unreadable", "no image decoder could read it", path)
    indices = even_indices(1, k)
    return SampledFrames(indices, [img] * len(indices), decoded_count=1, reported_count=1, method="image")


def _open(path: Path) -> cv2.VideoCapture:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        raise VideoReadError("unreadable", "no video decoder could open it", path)
    return cap


def read_packets(path: Path) -> tuple[int, bool]:
    """The first video stream's packets, not decoded: how many carry a timestamped frame, and
    whether those timestamps are evenly spaced (within one tick); ``(0, False)`` when they cannot
    be read. Empty packets (dropped frames in AVI) do not count."""
    import av  # only where videos are read

    try:
        with av.open(str(path)) as box:
            stream = box.streams.video[0]
            stamps = sorted(p.pts if p.pts is not None else p.dts for p in box.demux(stream)
                            if p.size and (p.pts is not None or p.dts is not None))
    except (av.FFmpegError, IndexError, OSError):
        return 0, False
    if len(stamps) < 3:
        return len(stamps), len(stamps) > 0
    steps = np.diff(np.asarray(stamps, dtype=np.int64))
    return len(stamps), bool(steps.min() > 0 and steps.max() - steps.min() <= 1)


def _read_once(path: Path, k: int, n: int) -> tuple[list[int], list[np.ndarray]] | None:
    """One front-to-back decode keeping the sampled frames of ``n``; None unless exactly ``n`` decode."""
    indices = even_indices(n, k)
    wanted = set(indices)
    images: list[np.ndarray] = []
    cap = _open(path)
    try:
        count = 0
        while cap.grab():
            if count in wanted:
                ok, img = cap.retrieve()
                if not ok or img is None:
                    return None
                images.append(img)
            count += 1
    finally:
        cap.release()
    if count != n or len(images) != len(indices):
        return None
    return indices, images


def _read_by_seeking(cap: cv2.VideoCapture, n: int, k: int) -> tuple[list[int], list[np.ndarray]] | None:
    """Seek to each sampled frame; None if the container's count ``n`` does not hold."""
    indices = even_indices(n, k)
    images = []
    for i in indices:
        if not cap.set(cv2.CAP_PROP_POS_FRAMES, i):
            return None
        ok, img = cap.read()
        if not ok or img is None:
            return None
        images.append(img)
    if indices[-1] != n - 1:  # only when k == 1: check the last frame exists too
        cap.set(cv2.CAP_PROP_POS_FRAMES, n - 1)
        ok, _ = cap.read()
        if not ok:
            return None
    ok, _ = cap.read()  # one past the announced end must not decode
    if ok:
        return None
    return indices, images


def _read_sequentially(path: Path, k: int, reported: int) -> SampledFrames:
    cap = _open(path)
    try:
        n = 0
        while cap.grab():
            n += 1
    finally:
        cap.release()
    if n == 0:
        raise VideoReadError("unreadable", "it opens but no frame decodes", path)
    indices = even_indices(n, k)
    wanted = set(indices)
    images: list[np.ndarray] = []
    cap = _open(path)
    try:
        for i in range(indices[-1] + 1):
            if not cap.grab():
                break
            if i in wanted:
                ok, img = cap.retrieve()
                if not ok or img is None:
                    break
                images.append(img)
    finally:
        cap.release()
    if len(images) != len(indices):  # second decode disagrees with the first: do not guess
        raise VideoReadError("unreadable", f"decoding is not repeatable ({n} frames, then fewer)", path)
    return SampledFrames(indices, images, decoded_count=n, reported_count=reported, method="sequential")
