"""MSU-MFSD: ``scene01/{real,attack}/*.{mp4,mov}``, split by the dataset's subject lists."""

from __future__ import annotations

import re
from pathlib import Path

from .base import DatasetAdapter, DatasetError
from .records import Label, VideoRecord

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
