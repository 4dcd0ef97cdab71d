"""Frame sampling on H.264, the codec of most real datasets (PyAV's wheels encode it).

Long GOPs (one keyframe for the whole clip) and B-frames make a seek land mid-GOP and
decode out of order; a variable frame rate breaks any frame <-> time arithmetic. Both
decode modes (``extract.decode``) must give the same pictures as a plain front-to-back
decode at the same indices, and those pictures must be the encoded ones.

Phones record VFR with a keyframe every 0.5-2 s: there OpenCV's seek numbers the frame
after a keyframe by its time, and lands on the wrong picture without any error, while
the last frame (the count check) still comes out right (``vfr_gop*``: the middle of
three sampled frames was wrong before seeking was limited to constant-rate streams).
"""

from __future__ import annotations

import csv
import fractions
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from helpers import param_defaults as dflt
from mpfas.data import Label, VideoRecord
from mpfas.preprocess.extract import run_extract
from mpfas.preprocess.frames import _read_once, read_packets, read_sampled_frames

W, H = 320, 240
GOP = 250
K = 9  # sampled frames: most land between keyframes


def picture(i: int) -> np.ndarray:
    """Frame ``i``: its number, a background level and a red band that move with ``i``."""
    img = np.full((H, W, 3), 40 + (i * 7) % 150, np.uint8)
    cv2.putText(img, str(i), (30, 170), cv2.FONT_HERSHEY_SIMPLEX, 4, (255, 255, 255), 8)
    x = (i * 5) % (W - 10)
    img[:, x:x + 10] = (0, 0, 255)
    return img


def vfr_pts(n: int) -> list[int]:
    """Milliseconds: durations cycling 30-70 ms and a 0.5 s gap half way."""
    return [sum(30 + (j % 5) * 10 for j in range(i)) + (500 if i >= n // 2 else 0) for i in range(n)]


def thirds_pts(n: int) -> list[int]:
    """Milliseconds: a third of the clip at 20 fps, a third at 33, a third at 25 (phone-like rate changes)."""
    steps = [50] * (n // 3) + [30] * (n // 3) + [40] * (n - 2 * (n // 3))
    return [sum(steps[:i]) for i in range(n)]


def encode_h264(path: Path, n: int, pts: list[int] | None = None, gop: int = GOP) -> Path:
    """libx264, a keyframe every ``gop`` frames (default: one for the clip), 3 B-frames; VFR when ``pts``."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "bf": "3",
                          "preset": "veryfast", "crf": "20"}
        if pts is not None:
            stream.time_base = stream.codec_context.time_base = fractions.Fraction(1, 1000)
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(picture(i), format="bgr24")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], fractions.Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


def frame_types(path: Path) -> tuple[int, int]:
    """(keyframes, B-frames) as PyAV decodes them: proves the encoding is what the test needs."""
    with av.open(str(path)) as box:
        frames = list(box.decode(video=0))
    return sum(f.key_frame for f in frames), sum(f.pict_type == av.video.frame.PictureType.B for f in frames)


def full_decode(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    return frames


CLIPS = {  # name -> (frames, pts, GOP); .mkv/.avi VFR have no exact count: the seek mode must fall back
    "long_gop.mp4": (150, None, GOP),
    "long_gop.mov": (150, None, GOP),
    "gop15.mp4": (90, None, 15),
    "vfr.mp4": (90, vfr_pts(90), GOP),
    "vfr.mkv": (90, vfr_pts(90), GOP),
    "vfr_gop15.mp4": (90, thirds_pts(90), 15),
    "vfr_gop15.mov": (90, thirds_pts(90), 15),
    "vfr_gop30.mp4": (90, vfr_pts(90), 30),
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("h264")
    return {name: encode_h264(folder / name, n, pts, gop) for name, (n, pts, gop) in CLIPS.items()}


@pytest.fixture(scope="module")
def decoded(clips) -> dict[str, list[np.ndarray]]:
    return {name: full_decode(path) for name, path in clips.items()}


def shown(img: np.ndarray, i: int, n: int) -> int:
    """Which source frame near ``i`` the decoded ``img`` shows (lossy: the closest one)."""
    near = range(max(0, i - 3), min(n, i + 4))
    return min(near, key=lambda j: np.abs(img.astype(np.int16) - picture(j)).mean())


@pytest.mark.parametrize("name", sorted(CLIPS))
def test_clips_are_h264_with_the_gop_and_b_frames_asked_for(clips, name):
    n, _, gop = CLIPS[name]
    keys, b_frames = frame_types(clips[name])
    assert keys == -(-n // gop) and b_frames > n // 4, (keys, b_frames)
    if CLIPS[name][1] is not None:
        with av.open(str(clips[name])) as box:
            steps = np.diff([f.pts for f in box.decode(video=0)])
        assert len(set(steps.tolist())) > 2, steps  # really variable


@pytest.mark.parametrize("k", [3, K])  # 3: the default extract.frames_per_video
@pytest.mark.parametrize("decode", ["seek", "sequential"])
@pytest.mark.parametrize("name", sorted(CLIPS))
def test_sampled_frames_equal_a_full_decode(clips, decoded, name, decode, k):
    n, full = CLIPS[name][0], decoded[name]
    assert len(full) == n
    got = read_sampled_frames(clips[name], k, decode)
    assert got.decoded_count == n and len(got.indices) == k and got.indices[-1] == n - 1
    for i, img in zip(got.indices, got.images):
        assert np.array_equal(img, full[i]), f"{name} {decode}: frame {i} differs from a full decode"
        assert shown(img, i, n) == i, f"{name} {decode}: frame {i} shows source frame {shown(img, i, n)}"


def test_seek_mode_seeks_where_the_count_is_exact_and_the_rate_constant(clips):
    """Constant-rate mp4/mov clips take the seek path (not the fallback), so seeking itself is
    tested, also across keyframes; VFR clips and counts the container cannot state are decoded."""
    methods = {name: read_sampled_frames(path, K, "seek").method for name, path in clips.items()}
    assert methods == {"long_gop.mov": "seek", "long_gop.mp4": "seek", "gop15.mp4": "seek",
                       "vfr.mp4": "sequential", "vfr.mkv": "sequential", "vfr_gop15.mp4": "sequential",
                       "vfr_gop15.mov": "sequential", "vfr_gop30.mp4": "sequential"}


@pytest.mark.parametrize("name", ["vfr_gop15.mp4", "vfr.mkv", "long_gop.mov"])
def test_front_to_back_decodes_once_where_the_packets_give_the_count(clips, decoded, name):
    """The packet count lets one decode keep the sampled frames; a count that does not hold is refused."""
    n, full = CLIPS[name][0], decoded[name]
    assert read_packets(clips[name]) == (n, CLIPS[name][1] is None)
    indices, images = _read_once(clips[name], K, n)
    assert all(np.array_equal(img, full[i]) for i, img in zip(indices, images))
    assert _read_once(clips[name], K, n + 1) is None and _read_once(clips[name], K, n - 1) is None


@pytest.mark.parametrize("decode", ["seek", "sequential"])
def test_extract_stage_writes_the_full_decode_frames(tmp_path, clips, decoded, decode):
    """Through ``run_extract`` (PNG: lossless), the written files hold the full-decode pictures."""
    name = "long_gop.mp4"
    rec = VideoRecord("O", name, subject="s", split="train", label=Label.LIVE)
    cfg = dflt.extract(frames_per_video=K, max_failure_rate=0.0, decode=decode, image_ext="png")
    out = tmp_path / "frames"
    run_extract([rec], clips[name].parent, out, cfg, rel_to=tmp_path, dataset="O", progress=False)
    with (out / "frames.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    full = decoded[name]
    assert [int(r["frame"]) for r in rows] == read_sampled_frames(clips[name], K, "sequential").indices
    for r in rows:
        assert np.array_equal(cv2.imread(str(tmp_path / r["path"])), full[int(r["frame"])]), r["path"]


def set_rotation(path: Path, degrees: int) -> Path:
    """Write a display rotation into the track header's matrix, as phones do for a video held
    upright: the pixels stay landscape, players turn them."""
    import struct

    data = bytearray(path.read_bytes())
    at = data.find(b"tkhd")
    # version/flags, then v0: 5 x 4 bytes (times, track id, reserved, duration) or v1: 8+8+4+4+8,
    # then reserved 8, layer 2, alternate group 2, volume 2, reserved 2, and the 3 x 3 matrix
    at += 8 + (32 if data[at + 4] == 1 else 20) + 16
    cos, sin = {90: (0, 1), 180: (-1, 0), 270: (0, -1)}[degrees]
    fixed = [cos << 16, sin << 16, 0, -sin << 16, cos << 16, 0, 0, 0, 1 << 30]
    assert struct.unpack(">9i", data[at:at + 36]) == (1 << 16, 0, 0, 0, 1 << 16, 0, 0, 0, 1 << 30)
    data[at:at + 36] = struct.pack(">9i", *fixed)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("decode", ["seek", "sequential"])
@pytest.mark.parametrize("degrees", [90, 270])
def test_phone_video_with_a_rotation_is_extracted_upright(tmp_path, degrees, decode):
    """Phone videos (MSU-MFSD's Android, ROSE-Youtu) may store their frames sideways with a
    rotation in the header; MTCNN finds no sideways face, so frames must come out as shown."""
    path = set_rotation(encode_h264(tmp_path / f"rot{degrees}.mp4", 30, gop=10), degrees)
    got = read_sampled_frames(path, 5, decode)
    assert got.indices == [0, 7, 14, 22, 29]
    turn = -1 if degrees == 90 else 1  # np.rot90: k = -1 turns clockwise
    for i, img in zip(got.indices, got.images):
        assert img.shape == (W, H, 3)
        assert np.abs(img.astype(np.int16) - np.rot90(picture(i), turn)).mean() < 6, i
