"""Frame-accurate sampling on long-GOP 1080p H.264: OpenCV against PyAV, same frames, timed.

    python bench/seek.py            # OULU-NPU-like clips: 1920x1080, 30 fps, 5 s, 2 B-frames

For each clip (a keyframe every 2 s, and one keyframe for the whole clip) and each
``k`` sampled frames it times: the extract stage's reader (``read_sampled_frames``,
OpenCV; ``seek`` mode, which checks the rate from the packets first, and ``sequential``,
one decode front to back with the count from the packets), PyAV decoding front to back
once (the count from the packets too), and PyAV seeking to the keyframe before each
sampled frame's timestamp and decoding up to it. Every way's pictures are compared with
OpenCV's plain front-to-back decode (max absolute difference; 0 = the same pictures).
AVI stores no presentation timestamps (PyAV's packet pts there are decode order), so
seeking by timestamp cannot be frame-accurate in it with B-frames; the .mp4 clip shows
PyAV's seek where timestamps are real.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import av
import cv2
import numpy as np

from mpfas.core.sampling import even_indices
from mpfas.preprocess.frames import read_sampled_frames

sys.path.insert(0, str(Path(__file__).resolve().parent))
from profiles import PROFILES, write_video  # a sibling module of this script


def opencv_full(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    return frames


def pyav_sequential(path: Path, k: int) -> tuple[list[int], list[np.ndarray]]:
    """The count from the packets (demuxed, not decoded), then one front-to-back decode keeping ``k``."""
    with av.open(str(path)) as box:
        n = sum(1 for p in box.demux(box.streams.video[0]) if p.size)
    idx = even_indices(n, k)
    wanted, images = set(idx), []
    with av.open(str(path)) as box:
        stream = box.streams.video[0]
        stream.thread_type = "AUTO"  # frame threads, as OpenCV's FFmpeg backend uses
        for i, frame in enumerate(box.decode(stream)):
            if i in wanted:
                images.append(frame.to_ndarray(format="bgr24"))
    return idx, images


def pyav_seek(path: Path, k: int) -> tuple[list[int], list[np.ndarray]]:
    """Frame i is the i-th smallest packet timestamp; seek to the keyframe before it, decode up to it."""
    with av.open(str(path)) as box:
        stream = box.streams.video[0]
        stamps = sorted(p.pts for p in box.demux(stream) if p.size and p.pts is not None)
        idx = even_indices(len(stamps), k)
        images = []
        for i in idx:
            box.seek(stamps[i], stream=stream, backward=True, any_frame=False)
            for frame in box.decode(stream):
                if frame.pts is not None and frame.pts >= stamps[i]:
                    images.append(frame.to_ndarray(format="bgr24"))
                    break
    return idx, images


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=150, help="frames per clip (OULU-NPU: 150)")
    ap.add_argument("--k", default="3,9", help="sampled frames per video, comma-separated")
    ap.add_argument("--workdir", default="", help="keep the clips here (default: a temp dir)")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="mpfas-seek-") if not args.workdir else None
    work = Path(args.workdir or tmp.name)
    base = next(p for p in PROFILES if p.key == "O-1080p")
    clips = {"GOP 2 s, .avi": base, "one GOP, .avi": replace(base, gop_s=1000.0),
             "GOP 2 s, .mp4": replace(base, suffix=".mp4")}
    rows = ["| clip | k | way | seconds | frames equal a full OpenCV decode (max abs diff) |",
            "|---|---|---|---|---|"]
    for name, profile in clips.items():
        path = work / f"seek-{profile.gop_s:g}{profile.suffix}"
        if not path.is_file():
            print(f"writing {path.name} ({args.frames} frames, {name}) ...", flush=True)
            write_video(path, profile, seed=0, frames=args.frames)
        t_full, full = timed(opencv_full, path)
        rows.append(f"| {name} | all | OpenCV, decode every frame | {t_full:.2f} | - |")
        for k in (int(v) for v in args.k.split(",")):
            ways = {"OpenCV seek (extract.decode=seek)": (_cv, "seek"),
                    "OpenCV front to back (extract.decode=sequential)": (_cv, "sequential"),
                    "PyAV once front to back": (pyav_sequential,),
                    "PyAV seek + decode to the frame": (pyav_seek,)}
            for way, (fn, *extra) in ways.items():
                dt, (idx, images) = timed(fn, path, k, *extra)
                diff = max(int(np.abs(img.astype(np.int16) - full[i]).max()) for i, img in zip(idx, images))
                same = len(images) == len(idx) == k and idx == even_indices(len(full), k)
                rows.append(f"| {name} | {k} | {way} | {dt:.2f} | {'yes' if same and diff == 0 else 'no'} "
                            f"({diff}) |")
                print(rows[-1], flush=True)
    print("\n" + "\n".join(rows))
    if tmp is not None:
        tmp.cleanup()


def _cv(path: Path, k: int, mode: str) -> tuple[list[int], list[np.ndarray]]:
    got = read_sampled_frames(path, k, mode)  # type: ignore[arg-type]
    return got.indices, got.images


if __name__ == "__main__":
    main()
