"""OULU-NPU: ``{Train,Dev,Test}_files/<phone>_<session>_<user>_<file>.avi``."""

from __future__ import annotations

import re

from .base import DatasetAdapter
from .records import Label, VideoRecord

_NAME = re.compile(r"^(Train|Dev|Test)_files/(\d)_(\d)_(\d+)_(\d)\.avi$")
# file 1 live; 2, 3 print (two printers); 4, 5 replay (two displays)
_FILES = {
    "1": (Label.LIVE, ""),
    "2": (Label.PRINT, "printer1"),
    "3": (Label.PRINT, "printer2"),
    "4": (Label.REPLAY, "display1"),
    "5": (Label.REPLAY, "display2"),
}


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
