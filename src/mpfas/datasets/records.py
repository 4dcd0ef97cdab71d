"""The one record every stage agrees on: a video of a known dataset, split and label."""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, fields
from enum import Enum
from pathlib import Path

from ..atomic import write_csv


class Label(str, Enum):
    LIVE = "live"
    PRINT = "print"
    REPLAY = "replay"

    @property
    def is_live(self) -> bool:
        return self is Label.LIVE


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


INDEX_COLUMNS = [f.name for f in fields(VideoRecord)]


def write_index(records: list[VideoRecord], path: Path) -> None:
    write_csv(path, ({**asdict(r), "label": r.label.value} for r in records), INDEX_COLUMNS)


def read_index(path: Path) -> list[VideoRecord]:
    with Path(path).open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if rows and set(rows[0]) != set(INDEX_COLUMNS):
        raise ValueError(f"{path}: expected columns {INDEX_COLUMNS}, found {list(rows[0])}")
    return [
        VideoRecord(**{**row, "label": Label(row["label"]), "size": int(row["size"] or 0)})
        for row in rows
    ]
