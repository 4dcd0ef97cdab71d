"""Bench inputs shaped like the real datasets' videos: resolution, frame rate, length, codec.

The preprocessing cost of a video is set by its pixels, its frame count and its codec
(an H.264 seek decodes from the previous keyframe; an MJPEG frame decodes alone), not
by what it shows, so one slowly moving demo face on a demo background per video is
enough. Each :class:`Profile` states where its numbers come from:

- **O** OULU-NPU (Boulkenafet et al., FG 2017): 4950 videos of 55 subjects from six
  phones' front cameras, Full HD 1920x1080, 30 fps, about 5 s, distributed as .avi.
  Encoded here as H.264 in AVI (the phones recorded H.264).
- **C** CASIA-FASD (Zhang et al., ICB 2012): 600 .avi videos; low- and normal-quality
  USB cameras at 640x480 (400 videos), a Sony NEX-5 at 1280x720 (200), 25-30 fps,
  about 8 s; MJPEG.
- **I** Idiap Replay-Attack (Chingovska et al., BIOSIG 2012): 1200 videos (train,
  devel, test) from a MacBook webcam, 320x240, 25 fps, about 9 s, H.264 in .mov.
- **M** MSU-MFSD (Wen, Han and Jain, TIFS 2015): 280 videos, half from a MacBook Air
  webcam at 640x480 (.mov), half from a Nexus 5 front camera at 720x480 (.mp4),
  30 fps, about 9 s, H.264.
- **Y** ROSE-Youtu (Li et al., TIFS 2018): phone videos of about 10 s; this repository's
  full-size layout has 3497 of them; 1280x720, 30 fps, H.264 in .mp4.

H.264 is written with PyAV's libx264 at a phone-like GOP (``gop_s`` seconds between
keyframes, no scene-cut keyframes) with 2 B-frames, which is what makes frame-accurate
seeking non-trivial, at a bit rate typical of the capture device (``mbit``: our
assumption, not measured on the datasets; decoding cost grows with it); MJPEG with
OpenCV's writer at its default quality.
"""

from __future__ import annotations

import fractions
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass(frozen=True)
class Profile:
    """One kind of video of a dataset, and how many of the dataset's videos are like it."""

    key: str  # unique name, e.g. "C-720p"
    code: str  # dataset code: O, C, I, M, Y
    size: tuple[int, int]  # (w, h)
    fps: int
    seconds: float
    codec: str  # "h264" or "mjpeg"
    suffix: str  # container: ".avi", ".mov", ".mp4"
    videos: int  # the real dataset's videos of this kind
    mbit: float = 0.0  # H.264 target bit rate, Mbit/s (0: constant quality, CRF 18)
    gop_s: float = 2.0  # H.264 keyframe interval, seconds
    b_frames: int = 2

    @property
    def frames(self) -> int:
        return round(self.fps * self.seconds)


PROFILES = (
    Profile("O-1080p", "O", (1920, 1080), 30, 5.0, "h264", ".avi", 4950, mbit=12),
    Profile("C-480p", "C", (640, 480), 25, 8.0, "mjpeg", ".avi", 400),
    Profile("C-720p", "C", (1280, 720), 30, 8.0, "mjpeg", ".avi", 200),
    Profile("I-240p", "I", (320, 240), 25, 9.0, "h264", ".mov", 1200, mbit=1, gop_s=4.0),
    Profile("M-720x480", "M", (720, 480), 30, 9.0, "h264", ".mp4", 140, mbit=4),
    Profile("M-640x480", "M", (640, 480), 30, 9.0, "h264", ".mov", 140, mbit=3),
    Profile("Y-720p", "Y", (1280, 720), 30, 10.0, "h264", ".mp4", 3497, mbit=8),
)
DATASET_VIDEOS = {"O": 4950, "C": 600, "I": 1200, "M": 280, "Y": 3497}  # the real datasets' counts


def profiles(keys: str = "") -> list[Profile]:
    """The profiles named in the comma-separated ``keys`` (a dataset code picks all of its own)."""
    if not keys:
        return list(PROFILES)
    wanted = [k.strip() for k in keys.split(",") if k.strip()]
    out = [p for p in PROFILES if p.key in wanted or p.code in wanted]
    unknown = [k for k in wanted if not any(k in (p.key, p.code) for p in PROFILES)]
    if unknown:
        raise SystemExit(f"error: --profiles: unknown {unknown}; known: {[p.key for p in PROFILES]}")
    return out


def identity_for(seed: int, lfw: bool = False):
    """The demo identity of video ``seed``: the two photo-quality faces in turn; with ``lfw``,
    every other video one of the 25-px LFW faces instead.

    The LFW faces are upsampled 8-18x to fill a real-size frame, blurrier than any dataset's
    face, and MTCNN's landmarks on them move with the detection scale by itself (a 3 %
    downscale moved them by 7 % of the eye distance on some frames), so they are opt-in.
    """
    from mpfas.demo.faces import identity_pool

    pool = identity_pool()
    hires = [i for i in pool if i.source != "lfw"]
    if lfw and seed % 2:
        return pool[(seed * 37) % (len(pool) - len(hires))]
    return hires[(seed // 2 if lfw else seed) % len(hires)]


def scene_frames(size: tuple[int, int], n: int, fps: float, seed: int, lfw: bool = False):
    """``n`` BGR uint8 frames: a demo identity's portrait drifting slowly over a demo background.

    Only the portrait's bounding box is warped and blended per frame (a whole-frame float
    composite costs 0.4 s per 1080p frame); sensor noise is one fixed field, shifted per frame.
    """
    from mpfas.demo.faces import FACE_CENTER, make_portrait
    from mpfas.demo.motion import head_motion, similarity
    from mpfas.demo.render import FACE_FRACTION
    from mpfas.demo.scene import background, light_map, place_for

    w, h = size
    identity = identity_for(seed, lfw)
    rng = np.random.default_rng([seed, 15])
    place = place_for("O", "phone1_session1")
    bg = np.clip(background(place, size, rng) * light_map(place, size), 0, 1).astype(np.float32)
    portrait = make_portrait(identity, seed)
    poses = head_motion(rng, n, fps)
    grain = rng.normal(0, 4, (h + 8, w + 8, 3)).astype(np.float32) / 255
    ch, cw = portrait.rgb.shape[:2]
    corners = np.array([[0, 0, 1], [cw, 0, 1], [0, ch, 1], [cw, ch, 1]], np.float64).T
    for t in range(n):
        height = FACE_FRACTION * h * poses.scale[t]
        m = similarity(FACE_CENTER, (w * (0.5 + poses.dx[t]), h * (0.46 + poses.dy[t])), height / ch,
                       poses.angle[t])
        xy = m @ corners
        x0, y0 = (max(0, int(np.floor(v)) - 1) for v in xy.min(1))
        x1, y1 = min(w, int(np.ceil(xy[0].max())) + 1), min(h, int(np.ceil(xy[1].max())) + 1)
        m[:, 2] -= (x0, y0)
        interp = cv2.INTER_AREA if height < ch * 0.7 else cv2.INTER_LINEAR
        fg = cv2.warpAffine(portrait.rgb, m, (x1 - x0, y1 - y0), flags=interp, borderMode=cv2.BORDER_CONSTANT)
        a = cv2.warpAffine(portrait.alpha, m, (x1 - x0, y1 - y0), flags=interp,
                           borderMode=cv2.BORDER_CONSTANT)[..., None]
        dy, dx = t % 7, (3 * t) % 8
        frame = bg + grain[dy:dy + h, dx:dx + w]
        roi = frame[y0:y1, x0:x1]
        roi += a * (fg - roi)
        yield cv2.cvtColor(cv2.convertScaleAbs(frame, alpha=255.0), cv2.COLOR_RGB2BGR)


def write_video(path: Path, profile: Profile, seed: int, frames: int = 0, lfw: bool = False) -> Path:
    """One video of ``profile`` (``frames`` > 0 shortens it, for tests) at ``path`` (``lfw``: see
    :func:`identity_for`)."""
    n = frames or profile.frames
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".part" + path.suffix)
    if profile.codec == "mjpeg":
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), profile.fps, profile.size)
        if not writer.isOpened():
            raise RuntimeError(f"{path}: OpenCV cannot write MJPEG here")
        for img in scene_frames(profile.size, n, profile.fps, seed, lfw):
            writer.write(img)
        writer.release()
    elif profile.codec == "h264":
        import av

        gop = max(1, round(profile.gop_s * profile.fps))
        with av.open(str(tmp), "w") as out:
            stream = out.add_stream("libx264", rate=fractions.Fraction(profile.fps))
            stream.width, stream.height, stream.pix_fmt = *profile.size, "yuv420p"
            stream.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0",
                              "bf": str(profile.b_frames), "preset": "veryfast"}
            if profile.mbit > 0:
                stream.bit_rate = int(profile.mbit * 1e6)
            else:
                stream.options = {**stream.options, "crf": "18"}
            for img in scene_frames(profile.size, n, profile.fps, seed, lfw):
                out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")))
            out.mux(stream.encode())
    else:
        raise ValueError(f"profile {profile.key}: unknown codec {profile.codec!r}")
    tmp.replace(path)
    return path
