"""The index CSV of a dataset (``data/index/<D>.csv``): its video records, written and read back.

Reading checks every dataset code against the registry, so this module sits above both
``records`` and ``registry`` (the registry's adapters build records).
"""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path

from mpfas.core.atomic import write_csv
from mpfas.core.rows import CsvLine, first_repeat, path_problem, read_csv_rows
from mpfas.data.records import LABELS, SPLITS, Label, VideoRecord
from mpfas.data.registry import dataset_codes

INDEX_COLUMNS = [f.name for f in fields(VideoRecord)]


def write_index(records: list[VideoRecord], path: Path) -> None:
    write_csv(path, ({**asdict(r), "label": r.label.value} for r in records), INDEX_COLUMNS)


def read_index(path: str | Path, dataset: str | None = None) -> list[VideoRecord]:
    """Read an index CSV, refusing unregistered datasets, labels or splits, paths that leave
    the dataset root and duplicated videos; ``dataset``, when given, is the only code allowed."""
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
