"""ROSE-Youtu: ``{train,test}/<subject>/<type>_<...>.mp4`` (Li et al., IEEE TIFS 2018).

Only the folder and the type prefix carry the protocol: the split is the top folder,
the subject the numeric folder (the release spells test folders with an underscore,
``_13``; a plain ``13`` is read the same), the label the type. ``G`` is live; ``Ps``/``Pq``
printed paper (still / quivering) and ``Mc``/``Mf``/``Mu`` paper masks (cropped, full,
upper part) are print; ``Vl``/``Vm`` (video replay on a Lenovo LCD / a Mac screen) are
replay. What the name says after the type (talking, phone, glasses, background, ...) is
kept as ``capture``. The release has no development split: as for CASIA-FASD and
MSU-MFSD, source-val is the seeded subject-disjoint slice ``manifests`` draws from the
train and test subjects.

The release's own file list is ``rose_youtu_release.csv`` beside this file, carried over
from the official HFN+MP repository: ``data/data_list/ROSE-ALL.csv`` in
RizhaoCai/MetaPattern_FAS at commit 847ba96f6359dfc9fc45bf02595e8beb2df241c0 (3497
videos: 897 live, 1799 print, 801 replay; train subjects 2-7 and 9-12, test 13-18 and
20-23). It is what ``demo.size: full`` writes and what ``release.check_release`` compares
a real copy with, file by file.
"""

from __future__ import annotations

import csv
import re
from functools import cache
from importlib import resources
from typing import NamedTuple

import numpy as np

from mpfas.data.base import DatasetAdapter
from mpfas.data.demo_plan import Camera, Dealt, DemoPlan, Files, Place, VideoSpec
from mpfas.data.records import Label, VideoRecord
from mpfas.data.registry import DatasetSpec

_NAME = re.compile(r"^(train|test)/_?(\d+)/(G|Ps|Pq|Mc|Mf|Mu|Vl|Vm)_([^/]+)\.(?i:mp4)$")
# type prefix -> (label, attack)
TYPES = {
    "G": (Label.LIVE, ""),
    "Ps": (Label.PRINT, "paper_still"), "Pq": (Label.PRINT, "paper_quivering"),
    "Mc": (Label.PRINT, "mask_cropped"), "Mf": (Label.PRINT, "mask_full"), "Mu": (Label.PRINT, "mask_upper"),
    "Vl": (Label.REPLAY, "video_lenovo"), "Vm": (Label.REPLAY, "video_mac"),
}


class RoseYoutu(DatasetAdapter):
    code = "Y"
    name = "ROSE-Youtu"

    def parse(self, relpath: str) -> VideoRecord | None:
        m = _NAME.match(relpath)
        if not m:
            return None
        split, subject, kind, rest = m.groups()
        label, attack = TYPES[kind]
        return VideoRecord(
            dataset=self.code, relpath=relpath, subject=str(int(subject)), split=split,
            label=label, attack=attack, capture=rest,
        )


# ---------------------------------------------------------------- demo

# Names follow <type>_<T|NT>_<phone>_<g|wg>_<background>_<person>_<take>.mp4 (talking or
# not, phone, glasses or not); the adapter reads only the folder and the type. In the release
# the name's person number is not the folder's (train/9/..._E_15_153.mp4); the small demo
# writes the folder's. The release's subject folders (none is numbered 1, 8 or 19):
ROSE_SUBJECTS = {"train": (2, 3, 4, 5, 6, 7, 9, 10, 11, 12), "test": (13, 14, 15, 16, 17, 18, 20, 21, 22, 23)}
ROSE_PHONES = ("HS", "HW", "IP", "5s", "ZTE")  # Hasee, Huawei, iPad, iPhone 5s, ZTE
# type -> (label, medium, printer / screen style)
ROSE_TYPES = {
    "G": ("live", "live", ""),
    "Ps": ("print", "print", "photo"), "Pq": ("print", "print", "warped_photo"),
    "Mc": ("print", "print", "cut_photo"), "Mf": ("print", "print", "printer1"), "Mu": ("print", "print", "printer2"),
    "Vl": ("replay", "replay_video", "display1"), "Vm": ("replay", "replay_video", "display2"),
}
# front cameras of five phones, landscape 640x480 or 1280x720 (halved), cool cast, strong sharpening
_PHONES = {
    "HS": Camera((320, 240), gains=(0.96, 1.0, 1.1), noise=0.03, blur=0.9, jpeg=70, saturation=0.95),
    "HW": Camera((320, 240), gains=(1.0, 1.0, 1.06), noise=0.022, blur=0.8, jpeg=78, contrast=1.05),
    "IP": Camera((320, 240), gains=(0.98, 1.02, 1.04), noise=0.02, blur=0.8, jpeg=80, saturation=1.05),
    "5s": Camera((384, 216), gains=(1.02, 1.0, 1.0), noise=0.012, blur=0.5, jpeg=88, contrast=1.12,
                 saturation=1.12),
    "ZTE": Camera((384, 216), gains=(0.94, 1.0, 1.12), noise=0.018, blur=0.6, jpeg=84, gamma=1.05),
}
# a Youtu lab corner: pale blue-grey wall, a whiteboard, a dark pillar
_PLACE = Place((0.72, 0.76, 0.82), (0.6, 0.63, 0.7),
               ((0.05, 0.1, 0.4, 0.5, (0.95, 0.96, 0.97)), (0.85, 0.0, 0.95, 1.0, (0.25, 0.25, 0.28))),
               (0.6, -1.0), 0.18, 0.2)


def _name(kind: str, phone: str, subject: int, take: int) -> str:
    talk = ("NT", "T")[take % 2]
    glasses = ("wg", "g")[(take // 2) % 2]
    return f"{kind}_{talk}_{phone}_{glasses}_E_{subject}_{take}.mp4"


def _spec(split: str, subject: int, index: int, kind: str, phone: str, take: int) -> VideoSpec:
    label, medium, device = ROSE_TYPES[kind]
    folder = f"_{subject}" if split == "test" else str(subject)
    return VideoSpec("Y", f"{split}/{folder}/{_name(kind, phone, subject, take)}", index, label, medium,
                     device, phone)


def _small(dealt: Dealt, rng: np.random.Generator) -> Files:
    videos = []
    for i, split, k in dealt:
        ids = ROSE_SUBJECTS[split]
        subject = ids[k] if k < len(ids) else 100 + i
        phone = ROSE_PHONES[int(rng.integers(len(ROSE_PHONES)))]
        paper = ("Ps", "Pq")[int(rng.integers(2))]
        mask = ("Mc", "Mf", "Mu")[int(rng.integers(3))]
        screen = ("Vl", "Vm")[int(rng.integers(2))]
        videos += [_spec(split, subject, i, "G", phone, 1), _spec(split, subject, i, "G", phone, 2),
                   _spec(split, subject, i, paper, phone, 1), _spec(split, subject, i, mask, phone, 1),
                   _spec(split, subject, i, screen, phone, 1)]
    return videos, {}


class ReleaseFile(NamedTuple):
    """One row of the release's file list."""

    relpath: str   # as on disk, relative to the ROSE-Youtu root
    label: str     # live | print | replay
    faces: int     # frames where the authors' face detector found a face (0: none)


@cache
def release() -> tuple[ReleaseFile, ...]:
    """The release's 3497 files, sorted by path (``rose_youtu_release.csv``, see the module doc)."""
    text = resources.files("mpfas.data.datasets").joinpath("rose_youtu_release.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return tuple(ReleaseFile(r["relpath"], r["label"], int(r["faces"])) for r in rows)


def full_names() -> list[str]:
    """The relative path of every file of the release, sorted."""
    return [f.relpath for f in release()]


def _full() -> Files:
    """Every release file as a demo spec: the type is the name's first ``_`` field, the phone its
    third, the subject the folder number (the name's own subject field numbers people otherwise)."""
    index = {s: i for i, s in enumerate(s for ids in ROSE_SUBJECTS.values() for s in ids)}
    specs = []
    for relpath in full_names():
        _, folder, name = relpath.split("/")
        subject = int(folder.lstrip("_"))
        kind, _, phone = name.split("_")[:3]
        label, medium, device = ROSE_TYPES[kind]
        specs.append(VideoSpec("Y", relpath, index[subject], label, medium, device, phone))
    return specs, {}


SPEC = DatasetSpec(
    order=4, adapter=RoseYoutu, splits=("train", "test"),
    demo=DemoPlan(key=4, split_dirs=("train", "test"), small=_small, camera=_PHONES.__getitem__,
                  place=lambda capture: _PLACE, full=_full, full_subjects=20),
)
