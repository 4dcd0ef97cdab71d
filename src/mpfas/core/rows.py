"""Rows of the pipeline's CSV files, checked on every read, not only when written.

The index (``data/index/<D>.csv``), ``frames.csv``, ``faces.csv`` and the manifests are
written by stages, but a user may edit them by hand or restore an old copy. Each kind
has one reader, used by every stage that reads it; a bad row fails there with one
line naming the file, the line and the field (``data/manifests/OCI-M.csv line 14,
field is_live: '2' is not 0 or 1``) instead of skewing a result later.

Paths in rows must stay inside their root: relative, without ``..``, and with their
folder not reached through a symlink that leaves the root (a file itself may be a
link, as DVC's symlink cache makes them).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mpfas.core.errors import MpfasError

# What a reader needs; the writers (extract, align) may add columns.
FRAMES_NEEDS = ["video_id", "frame", "path"]
FACES_NEEDS = ["video_id", "frame", "path"]


class RowError(MpfasError, ValueError):
    """A CSV file or row breaks the rules of its kind (columns, vocabulary, duplicates, paths)."""

    @classmethod
    def at(cls, path: str | Path, line: int, field: str | None, message: str) -> RowError:
        where = f"{path} line {line}" + (f", field {field}" if field else "")
        return cls(f"{where}: {message}")


def one_of(allowed: Sequence[str]) -> str:
    """``a, b or c``: the allowed values as an error message lists them."""
    shown = [str(a) for a in allowed]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


def path_problem(value: str, root_name: str) -> str | None:
    """Why ``value`` is not a plain relative path below its root (lexically), else None."""
    p = PurePosixPath(value)
    if not value or not p.parts:
        return f"{value!r} names no file"
    if p.is_absolute() or Path(value).is_absolute():
        return f"{value!r} is outside {root_name}: it is absolute"
    if ".." in p.parts:
        return f"{value!r} is outside {root_name}: it climbs out with '..'"
    return None


def escapes(path: Path, root: Path) -> bool:
    """Whether ``path`` (after following symlinks) lies outside ``root``."""
    return not path.resolve().is_relative_to(root.resolve())


@dataclass(frozen=True)
class CsvLine:
    """One raw row and the line it ends on, with typed getters that fail naming the field."""

    path: Path
    line: int
    values: dict[str, str]
    error: type[RowError] = RowError

    def fail(self, field: str | None, message: str) -> RowError:
        return self.error.at(self.path, self.line, field, message)

    def text(self, field: str) -> str:
        value = self.values[field]
        if not value.strip():
            raise self.fail(field, "empty")
        return value

    def choice(self, field: str, allowed: Sequence[str]) -> str:
        value = self.values[field]
        if value not in allowed:
            raise self.fail(field, f"{value!r} is not {one_of(allowed)}")
        return value

    def integer(self, field: str, minimum: int = 0) -> int:
        value = self.values[field]
        try:
            number = int(value)
        except ValueError:
            raise self.fail(field, f"{value!r} is not a whole number") from None
        if number < minimum:
            raise self.fail(field, f"{number} is below {minimum}")
        return number

    def path_in(self, field: str, root: Path, value: str | None = None, *, base: Path = Path("."),
                kind: str = "") -> str:
        """``value`` (default: the field) as a path relative to ``base`` whose folder lies in ``root``
        (called "the ``kind`` root" in errors)."""
        value = self.values[field] if value is None else value
        root_name = f"the {kind + ' ' if kind else ''}root {root}"
        problem = path_problem(value, root_name)
        if problem is None and escapes((base / value).parent, root):
            problem = f"{value!r} is outside {root_name}: a symlinked folder leads out"
        if problem:
            raise self.fail(field, problem)
        return value


def read_csv_rows(path: str | Path, columns: Iterable[str], error: type[RowError] = RowError, *,
                  made_by: str = "", exact: bool = True) -> list[CsvLine]:
    """The rows of ``path`` with their line numbers; the header must hold ``columns``
    (exactly, or at least when ``exact`` is false) and every row one value per column."""
    path, columns = Path(path), list(columns)
    if not path.is_file():
        raise error(f"{path}: not found" + (f"; run the {made_by} stage first" if made_by else ""))
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        if (set(header) != set(columns)) if exact else not set(columns) <= set(header):
            raise error(f"{path}: expected columns {columns}, found {header}")
        rows = []
        for values in reader:
            if None in values or None in values.values():
                raise error.at(path, reader.line_num, None, f"{len(header)} columns in the header, "
                               "a different number of values in the row")
            rows.append(CsvLine(path, reader.line_num, values, error))
    return rows


def first_repeat(lines: Sequence[CsvLine], keys: Sequence[object], field: str, what: str) -> None:
    """Refuse the first row whose key an earlier row already has (a duplicated row)."""
    seen: dict[object, int] = {}
    for line, key in zip(lines, keys):
        earlier = seen.setdefault(key, line.line)
        if earlier != line.line:
            raise line.fail(field, f"{what} already listed on line {earlier}")


# ----------------------------------------------------------------- frames.csv and faces.csv

@dataclass(frozen=True)
class FrameEntry:
    """One row of the extract stage's ``frames.csv``."""

    video_id: str
    frame: int
    path: str
    checksum: str = ""


@dataclass(frozen=True)
class FaceEntry:
    """One row of the align stage's ``faces.csv`` (an aligned crop; the detection box is not needed)."""

    video_id: str
    frame: int
    path: str


def read_frames_csv(path: str | Path, rel_to: str | Path = ".") -> list[FrameEntry]:
    """Rows of ``frames.csv``; frame paths (relative to ``rel_to``) must lie in the file's folder."""
    path, rel_to = Path(path), Path(rel_to)
    lines = read_csv_rows(path, FRAMES_NEEDS, made_by="extract", exact=False)
    rows = [FrameEntry(line.text("video_id"), line.integer("frame"),
                       line.path_in("path", path.parent, base=rel_to, kind="frames"),
                       line.values.get("checksum") or "")
            for line in lines]
    first_repeat(lines, [(r.video_id, r.frame) for r in rows], "frame", "this video's frame")
    first_repeat(lines, [r.path for r in rows], "path", "this path")
    return rows


def read_faces_csv(path: str | Path, rel_to: str | Path = ".") -> list[FaceEntry]:
    """Rows of ``faces.csv``; face paths (relative to ``rel_to``) must lie in the file's folder."""
    path, rel_to = Path(path), Path(rel_to)
    lines = read_csv_rows(path, FACES_NEEDS, made_by="align", exact=False)
    rows = [FaceEntry(line.text("video_id"), line.integer("frame"),
                      line.path_in("path", path.parent, base=rel_to, kind="faces"))
            for line in lines]
    first_repeat(lines, [(r.video_id, r.frame) for r in rows], "frame", "this video's frame")
    first_repeat(lines, [r.path for r in rows], "path", "this path")
    return rows


def read_frames_index(path: str | Path, rel_to: str | Path = ".") -> dict[str, list[FrameEntry]]:
    """``frames.csv`` grouped by video id, frames in order."""
    per_video: dict[str, list[FrameEntry]] = defaultdict(list)
    for row in read_frames_csv(path, rel_to):
        per_video[row.video_id].append(row)
    return {vid: sorted(rows, key=lambda e: e.frame) for vid, rows in per_video.items()}
