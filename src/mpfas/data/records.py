"""The one record every stage agrees on: a video of a known dataset, split and label."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

SPLITS = ("train", "dev", "test")  # what the dataset adapters name their official splits


class Label(str, Enum):
    LIVE = "live"
    PRINT = "print"
    REPLAY = "replay"

    @property
    def is_live(self) -> bool:
        return self is Label.LIVE


LABELS = tuple(label.value for label in Label)


@dataclass(frozen=True)
class VideoRecord:
    """A video parsed from a dataset's original file name.

    ``relpath`` is POSIX and relative to the dataset root, so records never carry
    machine paths. ``attack`` and ``capture`` keep what the name says beyond the
    label (e.g. ``warped_photo`` or ``hand``; the phone, session or lighting).
    """

    dataset: str
    relpath: str
    subject: str
    split: str
    label: Label
    attack: str = ""
    capture: str = ""
    size: int = 0

    @property
    def video_id(self) -> str:
        return f"{self.dataset}/{self.relpath}"
