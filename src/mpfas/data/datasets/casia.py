"""CASIA-FASD: ``{train,test}_release/<subject>/<name>.avi``.

Subject numbers restart in each release, so the subject id carries the release.
"""

from __future__ import annotations

import re

import numpy as np

from mpfas.data.base import DatasetAdapter
from mpfas.data.demo_plan import Camera, Dealt, DemoPlan, Files, Place, VideoSpec
from mpfas.data.records import Label, VideoRecord
from mpfas.data.registry import DatasetSpec

_NAME = re.compile(r"^(train|test)_release/(\d+)/(\d|HR_\d)\.avi$")
# name -> (label, attack, quality); 1-8 come in low/normal pairs, HR_* is high quality
_VIDEOS = {
    "1": (Label.LIVE, "", "low"), "2": (Label.LIVE, "", "normal"), "HR_1": (Label.LIVE, "", "high"),
    "3": (Label.PRINT, "warped_photo", "low"), "4": (Label.PRINT, "warped_photo", "normal"),
    "HR_2": (Label.PRINT, "warped_photo", "high"),
    "5": (Label.PRINT, "cut_photo", "low"), "6": (Label.PRINT, "cut_photo", "normal"),
    "HR_3": (Label.PRINT, "cut_photo", "high"),
    "7": (Label.REPLAY, "video", "low"), "8": (Label.REPLAY, "video", "normal"),
    "HR_4": (Label.REPLAY, "video", "high"),
}


class CasiaFASD(DatasetAdapter):
    code = "C"
    name = "CASIA-FASD"

    def parse(self, relpath: str) -> VideoRecord | None:
        m = _NAME.match(relpath)
        if not m or m.group(3) not in _VIDEOS:
            return None
        split, subject, video = m.groups()
        label, attack, quality = _VIDEOS[video]
        return VideoRecord(
            dataset=self.code, relpath=relpath, subject=f"{split}-{int(subject)}", split=split,
            label=label, attack=attack, capture=quality,
        )


# ---------------------------------------------------------------- demo

# quality -> file names of (live, warped photo, cut photo, video replay)
CASIA_NAMES = {"low": ("1", "3", "5", "7"), "normal": ("2", "4", "6", "8"),
               "high": ("HR_1", "HR_2", "HR_3", "HR_4")}
CASIA_SUBJECTS = {"train": 20, "test": 30}
# an old low-quality USB camera, a newer one, and a Sony HR camera
_CAMERAS = {
    "low": Camera((320, 240), gains=(0.92, 1.06, 0.96), noise=0.045, blur=1.5, jpeg=45,
                  saturation=0.75, contrast=0.9, vignette=0.35),
    "normal": Camera((400, 304), gains=(0.95, 1.04, 0.98), noise=0.03, blur=1.1, jpeg=60,
                     saturation=0.85, vignette=0.3),
    "high": Camera((480, 272), gains=(0.98, 1.02, 1.0), noise=0.012, blur=0.6, jpeg=85, contrast=1.05),
}
# greenish wall with a bookshelf
_PLACE = Place((0.5, 0.6, 0.52), (0.4, 0.48, 0.42),
               ((0.7, 0.15, 0.98, 0.9, (0.35, 0.22, 0.12)), (0.72, 0.3, 0.96, 0.34, (0.6, 0.2, 0.15)),
                (0.72, 0.55, 0.96, 0.59, (0.2, 0.3, 0.6)), (0.02, 0.1, 0.2, 0.3, (0.9, 0.85, 0.6))),
               (1.0, -0.5), 0.2, 0.2)


def _small(dealt: Dealt, rng: np.random.Generator) -> Files:
    videos = []
    qualities = ("low", "normal", "high")
    for i, split, k in dealt:
        q = qualities[(i + int(rng.integers(3))) % 3]
        q2 = qualities[(qualities.index(q) + 1) % 3]
        live, warped, cut, replay = CASIA_NAMES[q]
        d = f"{split}_release/{k + 1}"
        videos += [
            VideoSpec("C", f"{d}/{live}.avi", i, "live", "live", "", q),
            VideoSpec("C", f"{d}/{CASIA_NAMES[q2][0]}.avi", i, "live", "live", "", q2),
            VideoSpec("C", f"{d}/{warped}.avi", i, "print", "print", "warped_photo", q),
            VideoSpec("C", f"{d}/{cut}.avi", i, "print", "print", "cut_photo", q),
            VideoSpec("C", f"{d}/{replay}.avi", i, "replay", "replay_video", "ipad", q),
        ]
    return videos, {}


def _full() -> Files:
    videos, subject = [], 0
    for split, n in CASIA_SUBJECTS.items():
        for k in range(1, n + 1):
            for quality, (live, warped, cut, replay) in CASIA_NAMES.items():
                d = f"{split}_release/{k}"
                videos += [
                    VideoSpec("C", f"{d}/{live}.avi", subject, "live", "live", "", quality),
                    VideoSpec("C", f"{d}/{warped}.avi", subject, "print", "print", "warped_photo", quality),
                    VideoSpec("C", f"{d}/{cut}.avi", subject, "print", "print", "cut_photo", quality),
                    VideoSpec("C", f"{d}/{replay}.avi", subject, "replay", "replay_video", "ipad", quality),
                ]
            subject += 1
    return videos, {}


SPEC = DatasetSpec(
    order=1, adapter=CasiaFASD, splits=("train", "test"),
    demo=DemoPlan(key=1, split_dirs=("train", "test"), small=_small, camera=_CAMERAS.__getitem__,
                  place=lambda capture: _PLACE, full=_full, full_subjects=50),
)
