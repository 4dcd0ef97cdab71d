"""Idiap Replay-Attack: ``{train,devel,test}/{real,attack/{fixed,hand}}/*.mov``; ``enroll/`` unused."""

from __future__ import annotations

import re

from .base import DatasetAdapter
from .records import Label, VideoRecord

_SPLITS = {"train": "train", "devel": "dev", "test": "test"}
_REAL = re.compile(
    r"^(train|devel|test)/real/client(\d+)_session\d+_webcam_authenticate_(adverse|controlled)_\d+\.mov$"
)
_ATTACK = re.compile(
    r"^(train|devel|test)/attack/(fixed|hand)/attack_(print|highdef|mobile)_client(\d+)_session\d+_"
    r"\w*?(photo|video)_(adverse|controlled)\.mov$"
)


class ReplayAttack(DatasetAdapter):
    code = "I"
    name = "Replay-Attack"
    skip_dirs = ("enroll",)

    def parse(self, relpath: str) -> VideoRecord | None:
        if m := _REAL.match(relpath):
            split, client, light = m.groups()
            return VideoRecord(
                dataset=self.code, relpath=relpath, subject=str(int(client)), split=_SPLITS[split],
                label=Label.LIVE, capture=light,
            )
        if m := _ATTACK.match(relpath):
            split, support, device, client, medium, light = m.groups()
            # attack_print_* is a paper print; highdef/mobile show a photo or video on a screen
            label = Label.PRINT if device == "print" else Label.REPLAY
            return VideoRecord(
                dataset=self.code, relpath=relpath, subject=str(int(client)), split=_SPLITS[split],
                label=label, attack=f"{support}_{device}_{medium}", capture=light,
            )
        return None
