"""Every manifest in the split formats other FAS codebases read, with readers to check them.

For protocol ``P`` and role ``R`` (``source-train``, ``source-val``, ``target``) under ``out``:

* ``metapattern/P/R.csv`` — the official MetaPattern data list: ``path,label,faces,frames``,
  one row per video; ``path`` the video's folder of aligned faces (the official lists
  name one zip of faces per video), ``label`` 0 live / 1 print / 2 replay, ``faces`` the
  aligned faces, ``frames`` the frames they were looked for in.
* ``ssdg/P/R.json`` — SSDG-style: a list of ``{"photo_path", "photo_label",
  "photo_belong_to_video_ID"}``, one per face, ``photo_label`` 1 live / 0 spoof.
* ``plain/P/R.txt`` — ``path label`` per face, label 1 live / 0 spoof.
* ``mpfas/P.csv`` — this repository's manifest (all roles; columns in README).

Paths are as in the manifests: relative to the repository root (``data/faces/<D>/...``). ``README.md``
beside them states each convention, since the MetaPattern, SSDG and plain lists carry
no room for it without breaking their readers.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mpfas.core.atomic import write_text
from mpfas.core.rows import read_frames_csv
from mpfas.manifests.build import ROLES, ManifestRow, read_manifest, write_manifest

METAPATTERN_LABELS = {"live": 0, "print": 1, "replay": 2}
METAPATTERN_COLUMNS = ("path", "label", "faces", "frames")
FORMATS = ("metapattern", "ssdg", "plain", "mpfas")

README = """# Split lists written by `python -m mpfas export-splits`

Paths are as in the manifests, relative to the repository root (`data/faces/<D>/...`); `<P>` is a protocol of
`manifests.protocols`, `<R>` a role: `source-train` (training), `source-val` (a
subject-disjoint slice of the sources: checkpoint and threshold), `target` (the unseen domain).

| file | one row per | label convention |
|---|---|---|
| `metapattern/<P>/<R>.csv` | video: `path,label,faces,frames` (path: its face folder) | 0 live, 1 print, 2 replay |
| `ssdg/<P>/<R>.json` | face: `photo_path`, `photo_label`, `photo_belong_to_video_ID` | 1 live, 0 spoof (SSDG) |
| `plain/<P>/<R>.txt` | face: `path label` | 1 live, 0 spoof |
| `mpfas/<P>.csv` | video, every role (this repository's manifest) | `label` live/print/replay; `is_live` 1 live |

The MetaPattern columns and labels are the official data lists' (`data/data_list/*.csv`,
docs/method.md §4); a header row names the columns.

`frames` counts the frames extracted from the video (faces were looked for in these);
it equals `faces` when the export was run without `--frames`.
"""


@dataclass(frozen=True)
class VideoLine:
    """One row of a MetaPattern data list."""

    path: str
    label: int
    faces: int
    frames: int


@dataclass(frozen=True)
class FaceLine:
    """One face of an SSDG JSON or a plain list (``video`` is empty in a plain list)."""

    path: str
    label: int
    video: str = ""


def face_folder(row: ManifestRow) -> str:
    """The folder holding a video's aligned faces (its first face's parent)."""
    return PurePosixPath(row.faces[0]).parent.as_posix()


def metapattern_lines(rows: list[ManifestRow], frames_of: Mapping[str, int] | None = None) -> list[VideoLine]:
    return [VideoLine(face_folder(r), METAPATTERN_LABELS[r.label], len(r.faces),
                      (frames_of or {}).get(r.video_id, len(r.faces))) for r in rows]


def face_lines(rows: list[ManifestRow], with_video: bool) -> list[FaceLine]:
    return [FaceLine(face, r.is_live, r.video_id if with_video else "") for r in rows for face in r.faces]


def write_metapattern(lines: list[VideoLine], path: Path) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(METAPATTERN_COLUMNS)
    writer.writerows((x.path, x.label, x.faces, x.frames) for x in lines)
    write_text(path, buf.getvalue())


def read_metapattern(path: Path) -> list[VideoLine]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows or tuple(rows[0]) != METAPATTERN_COLUMNS:
        raise ValueError(f"{path}: header is not {','.join(METAPATTERN_COLUMNS)}")
    return [VideoLine(p, int(label), int(faces), int(frames)) for p, label, faces, frames in rows[1:]]


def write_ssdg(lines: list[FaceLine], path: Path) -> None:
    items = [{"photo_path": x.path, "photo_label": x.label, "photo_belong_to_video_ID": x.video} for x in lines]
    write_text(path, json.dumps(items, indent=1) + "\n")


def read_ssdg(path: Path) -> list[FaceLine]:
    return [FaceLine(d["photo_path"], int(d["photo_label"]), d["photo_belong_to_video_ID"])
            for d in json.loads(Path(path).read_text())]


def write_plain(lines: list[FaceLine], path: Path) -> None:
    if any(" " in x.path for x in lines):
        raise ValueError(f"{path}: a face path holds a space, which a `path label` list cannot carry")
    write_text(path, "".join(f"{x.path} {x.label}\n" for x in lines))


def read_plain(path: Path) -> list[FaceLine]:
    out = []
    for line in Path(path).read_text().splitlines():
        face, label = line.rsplit(" ", 1)
        out.append(FaceLine(face, int(label)))
    return out


def export_splits(manifests: Mapping[str, list[ManifestRow]], out: Path,
                  frames_of: Mapping[str, int] | None = None) -> list[Path]:
    """Write every protocol's rows in every format, plus the README; return the files written."""
    out = Path(out)
    written = [write_text(out / "README.md", README)]
    for name, rows in manifests.items():
        path = out / "mpfas" / f"{name}.csv"
        write_manifest(rows, path)
        written.append(path)
        for role in ROLES:
            part = [r for r in rows if r.role == role]
            files = {"metapattern": out / "metapattern" / name / f"{role}.csv",
                     "ssdg": out / "ssdg" / name / f"{role}.json", "plain": out / "plain" / name / f"{role}.txt"}
            write_metapattern(metapattern_lines(part, frames_of), files["metapattern"])
            write_ssdg(face_lines(part, with_video=True), files["ssdg"])
            write_plain(face_lines(part, with_video=False), files["plain"])
            written += files.values()
    return written


def read_manifests(folder: Path, faces_root: Path) -> dict[str, list[ManifestRow]]:
    """Every ``<P>.csv`` of the manifests stage's folder, checked by the one manifest reader."""
    paths = sorted(Path(folder).glob("*.csv"))
    if not paths:
        raise FileNotFoundError(f"{folder}: no manifests (<protocol>.csv); run `dvc repro manifests`")
    return {p.stem: read_manifest(p, faces_root) for p in paths}


def frame_counts(frames_root: Path, rel_to: Path = Path(".")) -> dict[str, int]:
    """Extracted frames per video id, from each ``<frames_root>/<D>/frames.csv`` there is."""
    counts: Counter = Counter()
    for path in sorted(Path(frames_root).glob("*/frames.csv")):
        counts.update(entry.video_id for entry in read_frames_csv(path, rel_to))
    return dict(counts)
