"""CASIA-FASD: ``{train,test}_release/<subject>/<name>.avi``.

Subject numbers restart in each release, so the subject id carries the release.
"""

from __future__ import annotations

import re

from .base import DatasetAdapter
from .records import Label, VideoRecord

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
