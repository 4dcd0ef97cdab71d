"""The one record every stage agrees on: a video of a known dataset, split and label."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from enum import Enum
from pathlib import Path

from ..atomic import write_csv
from ..rows import CsvLine, first_repeat, path_problem, read_csv_rows

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


INDEX_COLUMNS = [f.name for f in fields(VideoRecord)]


def write_index(records: list[VideoRecord], path: Path) -> None:
    write_csv(path, ({**asdict(r), "label": r.label.value} for r in records), INDEX_COLUMNS)


def read_index(path: str | Path, dataset: str | None = None) -> list[VideoRecord]:
    """Read an index CSV, refusing unregistered datasets, labels or splits, paths that leave
    the dataset root and duplicated videos; ``dataset``, when given, is the only code allowed."""
    from .registry import dataset_codes  # the registry's adapters build records: import it late

    path = Path(path)
    lines = read_csv_rows(path, INDEX_COLUMNS, made_by="raw")
    codes = (dataset,) if dataset else dataset_codes()
    records = [_record(line, codes) for line in lines]
    first_repeat(lines, [r.relpath for r in records], "relpath", "this video")
    return records


def _record(line: CsvLine, codes: tuple[str, ...]) -> VideoRecord:
    relpath = line.values["relpath"]
    problem = path_problem(relpath, "the dataset root")
    if problem:
        raise line.fail("relpath", problem)
    return VideoRecord(
        dataset=line.choice("dataset", codes), relpath=relpath, subject=line.text("subject"),
        split=line.choice("split", SPLITS), label=Label(line.choice("label", LABELS)),
        attack=line.values["attack"], capture=line.values["capture"],
        size=line.integer("size") if line.values["size"] else 0,
    )
