"""MSU-MFSD: ``scene01/{real,attack}/*.{mp4,mov}``, split by the dataset's subject lists."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mpfas.data.base import DatasetAdapter, DatasetError
from mpfas.data.demo_plan import Camera, Dealt, DemoPlan, Files, Place, VideoSpec
from mpfas.data.records import Label, VideoRecord
from mpfas.data.registry import DatasetSpec

_REAL = re.compile(r"^scene01/real/real_client(\d+)_(android|laptop)_SD_scene01\.(mp4|mov)$")
_ATTACK = re.compile(
    r"^scene01/attack/attack_client(\d+)_(android|laptop)_SD_(ipad_video|iphone_video|printed_photo)"
    r"_scene01\.(mp4|mov)$"
)
SUBJECT_LISTS = {"train": "train_sub_list.txt", "test": "test_sub_list.txt"}


def read_subject_list(path: Path) -> set[int]:
    return {int(tok) for tok in path.read_text().split() if tok.strip()}


class MsuMFSD(DatasetAdapter):
    code = "M"
    name = "MSU-MFSD"

    def __init__(self) -> None:
        self.split_of: dict[int, str] = {}

    def prepare(self, root: Path) -> None:
        self.split_of = {}
        for split, fname in SUBJECT_LISTS.items():
            found = sorted(root.rglob(fname))
            if not found:
                raise DatasetError(f"{self.name} ({self.code}): {fname} not found under {root}; "
                                   "the official split needs both subject lists")
            for client in read_subject_list(found[0]):
                self.split_of[client] = split

    def parse(self, relpath: str) -> VideoRecord | None:
        if m := _REAL.match(relpath):
            client, camera, _ = m.groups()
            label, attack = Label.LIVE, ""
        elif m := _ATTACK.match(relpath):
            client, camera, kind, _ = m.groups()
            label = Label.PRINT if kind == "printed_photo" else Label.REPLAY
            attack = kind
        else:
            return None
        cid = int(client)
        if cid not in self.split_of:
            return None  # a client in neither subject list is not part of the protocol
        return VideoRecord(
            dataset=self.code, relpath=relpath, subject=str(cid), split=self.split_of[cid],
            label=label, attack=attack, capture=camera,
        )


# ---------------------------------------------------------------- demo

# the dataset's own subject lists (the small demo uses their first ids, full all of them)
MSU_TRAIN = (2, 3, 5, 6, 7, 8, 9, 11, 12, 21, 22, 34, 53, 54, 55)
MSU_TEST = (1, 13, 14, 23, 24, 26, 28, 29, 30, 32, 33, 35, 36, 37, 39, 42, 48, 49, 50, 51)
# attack kind in the file name -> (label, medium, printer / screen)
MSU_ATTACKS = {"printed_photo": ("print", "print", "photo"), "ipad_video": ("replay", "replay_video", "ipad"),
               "iphone_video": ("replay", "replay_video", "iphone")}
MSU_CAMERAS = {"android": "mp4", "laptop": "mov"}  # camera -> container
# MacBook Air webcam (mov) and a Google Nexus 5 (mp4)
_CAMERAS = {
    "laptop": Camera((320, 240), gains=(0.94, 1.0, 1.12), noise=0.03, blur=1.0, jpeg=65,
                     saturation=0.9, contrast=0.95),
    "android": Camera((360, 240), gains=(0.97, 1.0, 1.08), noise=0.015, blur=0.7, jpeg=85,
                      saturation=1.1, contrast=1.1),
}
# off-white lab wall with a grey panel and a door frame
_PLACE = Place((0.88, 0.89, 0.9), (0.8, 0.81, 0.83),
               ((0.0, 0.0, 0.22, 1.0, (0.6, 0.62, 0.65)), (0.8, 0.2, 0.84, 1.0, (0.5, 0.45, 0.4))),
               (0.5, -1.0), 0.12, 0.12)


def _lists(train: list[int] | tuple[int, ...], test: list[int] | tuple[int, ...]) -> dict[str, str]:
    return {SUBJECT_LISTS["train"]: "".join(f"{c:03d}\n" for c in train),
            SUBJECT_LISTS["test"]: "".join(f"{c:03d}\n" for c in test)}


def _small(dealt: Dealt, rng: np.random.Generator) -> Files:
    videos = []
    ids = {"train": list(MSU_TRAIN), "test": list(MSU_TEST)}
    used: dict[str, list[int]] = {"train": [], "test": []}
    for i, split, k in dealt:
        cid = ids[split][k] if k < len(ids[split]) else 100 + i
        used[split].append(cid)
        client = f"client{cid:03d}"
        for cam, ext in MSU_CAMERAS.items():
            videos.append(VideoSpec("M", f"scene01/real/real_{client}_{cam}_SD_scene01.{ext}", i,
                                    "live", "live", "", cam))
        for kind, (label, medium, device) in MSU_ATTACKS.items():
            cam = ("android", "laptop")[int(rng.integers(2))]
            videos.append(VideoSpec("M", f"scene01/attack/attack_{client}_{cam}_SD_{kind}_scene01."
                                    f"{MSU_CAMERAS[cam]}", i, label, medium, device, cam))
    return videos, _lists(used["train"], used["test"])


def _full() -> Files:
    videos = []
    for i, cid in enumerate(MSU_TRAIN + MSU_TEST):
        client = f"client{cid:03d}"
        for cam, ext in MSU_CAMERAS.items():
            videos.append(VideoSpec("M", f"scene01/real/real_{client}_{cam}_SD_scene01.{ext}", i,
                                    "live", "live", "", cam))
            for kind, (label, medium, device) in MSU_ATTACKS.items():
                videos.append(VideoSpec("M", f"scene01/attack/attack_{client}_{cam}_SD_{kind}_scene01.{ext}",
                                        i, label, medium, device, cam))
    return videos, _lists(MSU_TRAIN, MSU_TEST)


SPEC = DatasetSpec(
    order=3, adapter=MsuMFSD, splits=("train", "test"),
    demo=DemoPlan(key=3, split_dirs=("train", "test"), small=_small, camera=_CAMERAS.__getitem__,
                  place=lambda capture: _PLACE, full=_full, full_subjects=35),
)
