"""OULU-NPU: ``{Train,Dev,Test}_files/<phone>_<session>_<user>_<file>.avi``."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

from mpfas.data.base import DatasetAdapter
from mpfas.data.demo_plan import Camera, Dealt, DemoPlan, Files, Place, VideoSpec
from mpfas.data.records import Label, VideoRecord
from mpfas.data.registry import DatasetSpec

_NAME = re.compile(r"^(Train|Dev|Test)_files/(\d)_(\d)_(\d+)_(\d)\.avi$")
# file 1 live; 2, 3 print (two printers); 4, 5 replay (two displays)
_FILES = {
    "1": (Label.LIVE, ""),
    "2": (Label.PRINT, "printer1"),
    "3": (Label.PRINT, "printer2"),
    "4": (Label.REPLAY, "display1"),
    "5": (Label.REPLAY, "display2"),
}


@dataclass(frozen=True)
class OuluName:
    """What an OULU-NPU file name says: the phone (1-6), session (1-3), user (1-55) and file (1-5)."""

    phone: int
    session: int
    user: int
    file: int


def oulu_name(relpath: str) -> OuluName | None:
    """Parse ``<Split>_files/<phone>_<session>_<user>_<file>.avi``; None for any other name."""
    m = _NAME.match(relpath)
    if not m or m.group(5) not in _FILES:
        return None
    return OuluName(*(int(g) for g in m.groups()[1:]))


class OuluNPU(DatasetAdapter):
    code = "O"
    name = "OULU-NPU"

    def parse(self, relpath: str) -> VideoRecord | None:
        m = _NAME.match(relpath)
        if not m or m.group(5) not in _FILES:
            return None
        split, phone, session, user, file_id = m.groups()
        label, attack = _FILES[file_id]
        return VideoRecord(
            dataset=self.code, relpath=relpath, subject=str(int(user)), split=split.lower(),
            label=label, attack=attack, capture=f"phone{phone}_session{session}",
        )


# ---------------------------------------------------------------- demo

# file number -> (label, medium, printer / display)
OULU_FILES = {1: ("live", "live", ""), 2: ("print", "print", "printer1"), 3: ("print", "print", "printer2"),
              4: ("replay", "replay_video", "display1"), 5: ("replay", "replay_video", "display2")}
_FIRST_USER = {"Train": 1, "Dev": 21, "Test": 36}
OULU_USERS = {"Train": range(1, 21), "Dev": range(21, 36), "Test": range(36, 56)}
# six phones' front cameras (portrait), three sessions
_PHONES = {
    1: Camera((272, 480), gains=(1.08, 1.0, 0.88), noise=0.018, blur=0.7, jpeg=82, saturation=1.1),
    2: Camera((272, 480), gains=(1.02, 1.0, 0.95), noise=0.014, blur=0.6, jpeg=88, contrast=1.08),
    3: Camera((272, 480), gains=(1.1, 1.02, 0.85), noise=0.024, blur=0.9, jpeg=78, saturation=1.15),
    4: Camera((272, 480), gains=(1.0, 1.03, 0.98), noise=0.02, blur=0.8, jpeg=84, gamma=1.05),
    5: Camera((272, 480), gains=(1.06, 0.98, 0.9), noise=0.016, blur=0.7, jpeg=86, contrast=1.1),
    6: Camera((272, 480), gains=(1.12, 1.0, 0.84), noise=0.026, blur=1.0, jpeg=76, saturation=1.05),
}
# sessions: open office with window, meeting room lit from a side, dim hall
_SESSIONS = {
    "1": Place((0.82, 0.82, 0.8), (0.7, 0.7, 0.68),
               ((0.0, 0.05, 0.3, 0.55, (1.0, 1.0, 0.98)), (0.55, 0.6, 1.0, 1.0, (0.45, 0.4, 0.35))),
               (-1.0, -0.5), 0.2, 0.15),
    "2": Place((0.72, 0.6, 0.45), (0.55, 0.45, 0.35),
               ((0.65, 0.1, 0.95, 0.45, (0.35, 0.25, 0.2)), (0.05, 0.7, 0.4, 1.0, (0.3, 0.22, 0.15))),
               (-1.0, 0.0), 0.35, 0.3),
    "3": Place((0.45, 0.5, 0.58), (0.3, 0.33, 0.38),
               ((0.3, 0.0, 0.7, 0.06, (1.0, 1.0, 1.0)), (0.0, 0.3, 0.15, 1.0, (0.25, 0.27, 0.3))),
               (0.0, -1.0), 0.3, 0.1),
}


def _small(dealt: Dealt, rng: np.random.Generator) -> Files:
    videos = []
    for i, split, k in dealt:
        user = _FIRST_USER[split] + k
        phone, session = int(rng.integers(1, 7)), int(rng.integers(1, 4))
        cap = f"phone{phone}_session{session}"
        for f, (label, medium, device) in OULU_FILES.items():
            videos.append(VideoSpec("O", f"{split}_files/{phone}_{session}_{user:02d}_{f}.avi", i, label,
                                    medium, device, cap))
    return videos, {}


def _full() -> Files:
    videos = []
    for split, users in OULU_USERS.items():
        for user in users:
            for phone in range(1, 7):
                for session in range(1, 4):
                    for f, (label, medium, device) in OULU_FILES.items():
                        videos.append(VideoSpec("O", f"{split}_files/{phone}_{session}_{user:02d}_{f}.avi",
                                                user - 1, label, medium, device, f"phone{phone}_session{session}"))
    return videos, {}


def _camera(capture: str) -> Camera:
    phone = int(capture.split("_")[0].removeprefix("phone"))
    session = int(capture.split("_")[1].removeprefix("session"))
    return replace(_PHONES[phone], exposure=(1.0, 0.85, 0.75)[session - 1])


def _place(capture: str) -> Place:
    return _SESSIONS[capture.split("_session")[1]]


SPEC = DatasetSpec(
    order=0, adapter=OuluNPU, splits=("train", "dev", "test"),
    demo=DemoPlan(key=0, split_dirs=("Train", "Dev", "Test"), small=_small, camera=_camera, place=_place,
                  full=_full, full_subjects=55),
)
