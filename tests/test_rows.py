"""Hand-edited CSVs are checked on every read: index, frames.csv, faces.csv and manifests.

Each test breaks one row of a file the pipeline wrote, then reads it through the reader
the stage uses; the error must name the file, the line and the field, and nothing may
be deleted outside the stage's own folder.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import param_defaults as dflt
from helpers.records import CFG, make_videos
from helpers.stage_cmd import stage_argv
from mpfas.core.config import Protocol
from mpfas.core.errors import MpfasError
from mpfas.data import Label, VideoRecord, read_index, write_index
from mpfas.manifests.build import ManifestError, plan_manifest, read_faces_index, read_manifest, write_manifest
from mpfas.preprocess.align import read_frames_index
from mpfas.preprocess.extract import run_extract

REPO = Path(__file__).resolve().parents[1]
PROTOCOL = CFG.protocols["OCI-M"]


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def edit(path: Path, index: int, **values: str) -> int:
    """Change fields of data row ``index`` by hand, as a user would; return its line number."""
    rows = read_rows(path)
    rows[index].update(values)
    write_rows(path, rows)
    return index + 2  # the header is line 1


@pytest.fixture
def manifest(tmp_path, monkeypatch) -> Path:
    """A valid OCI-M manifest as the manifests stage writes it (faces under data/faces)."""
    monkeypatch.chdir(tmp_path)
    videos, faces = make_videos(4)
    path = tmp_path / "OCI-M.csv"
    write_manifest(plan_manifest("OCI-M", PROTOCOL, videos, faces, CFG).rows, path)
    assert len(read_manifest(path, "data/faces")) == 48
    return path


def move_to_end(path: Path, index: int, **values: str) -> int:
    """Edit data row ``index`` and move it last (hand edits reorder too); return its new line number."""
    rows = read_rows(path)
    row = {**rows.pop(index), **values}
    write_rows(path, [*rows, row])
    return len(rows) + 2


def first(path: Path, **match: str) -> int:
    return next(i for i, row in enumerate(read_rows(path)) if all(row[k] == v for k, v in match.items()))


# ------------------------------------------------------------------ manifests

def test_label_typo_in_a_manifest_is_refused(manifest):
    line = edit(manifest, first(manifest, label="print"), label="prnt")
    with pytest.raises(ManifestError,
                       match=f"OCI-M.csv line {line}, field label: 'prnt' is not live, print or replay$"):
        read_manifest(manifest, "data/faces")


def test_label_and_is_live_must_agree(manifest):
    line = edit(manifest, first(manifest, label="replay"), is_live="1")
    with pytest.raises(ManifestError,
                       match=f"OCI-M.csv line {line}, field is_live: 1 disagrees with label 'replay'"):
        read_manifest(manifest, "data/faces")


def test_is_live_2_is_an_error_not_a_dropped_video(manifest):
    line = edit(manifest, first(manifest, label="live"), is_live="2")
    with pytest.raises(ManifestError, match=f"OCI-M.csv line {line}, field is_live: '2' is not 0 or 1$"):
        read_manifest(manifest, "data/faces")


def test_duplicated_row_is_refused(manifest):
    rows = read_rows(manifest)
    write_rows(manifest, [*rows, rows[5]])
    with pytest.raises(ManifestError, match=f"OCI-M.csv line {len(rows) + 2}, field video_id: video "
                                            f"{rows[5]['video_id']} is listed twice \\(see line 7\\)"):
        read_manifest(manifest, "data/faces")


def test_subject_leaked_into_source_val_is_refused_on_read(manifest):
    train = read_rows(manifest)[first(manifest, role="source-train", domain="O")]
    line = move_to_end(manifest, first(manifest, role="source-val", domain="O"), subject=train["subject"])
    see = first(manifest, domain="O", subject=train["subject"]) + 2
    with pytest.raises(ManifestError, match=f"line {line}, field subject: subject {train['subject']} of domain O "
                                            f"is in both source-train and source-val \\(see line {see}\\)$"):
        read_manifest(manifest, "data/faces")


def test_source_video_moved_to_the_target_is_refused_on_read(manifest):
    index = first(manifest, role="source-train", domain="C")
    subject = read_rows(manifest)[index]["subject"]
    line = move_to_end(manifest, index, role="target")
    with pytest.raises(ManifestError, match=f"line {line}, field subject: subject {subject} of domain C is in "
                                            "both source-train and target"):
        read_manifest(manifest, "data/faces")


def test_protocol_domains_are_checked_on_read(manifest):
    """A whole subject moved from a source to the target leaks no subject, but the domain is wrong."""
    rows = read_rows(manifest)
    subject = rows[first(manifest, role="source-train", domain="O")]["subject"]
    for row in rows:
        if row["domain"] == "O" and row["subject"] == subject:
            row["role"] = "target"
    write_rows(manifest, rows)
    read_manifest(manifest, "data/faces")  # no protocol: nothing to hold the domain against
    line = first(manifest, domain="O", role="target") + 2
    with pytest.raises(ManifestError, match=f"line {line}, field domain: 'O' in role target, but the "
                                            "protocol's target is M"):
        read_manifest(manifest, "data/faces", protocol=PROTOCOL)


def test_face_path_through_a_symlink_out_of_the_root_is_refused(manifest, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "data/faces").mkdir(parents=True)
    (tmp_path / "data/faces/link").symlink_to(outside, target_is_directory=True)
    line = edit(manifest, 0, faces="data/faces/link/f0.png")
    with pytest.raises(ManifestError, match=f"line {line}, field faces: 'data/faces/link/f0.png' is outside "
                                            "the faces root data/faces: a symlinked folder leads out"):
        read_manifest(manifest, "data/faces")


@pytest.mark.slow  # runs stages/train.py in a fresh interpreter: ~7 s
def test_train_stage_refuses_a_hand_broken_manifest(tmp_path):
    """`python stages/train.py OCI-M` on a manifest with a leaked subject: exit 2, one line, no model."""
    from helpers.faces import make_workspace

    make_workspace(tmp_path)
    path = tmp_path / "data/manifests/OCI-M.csv"
    train = read_rows(path)[first(path, role="source-train", domain="I")]
    line = move_to_end(path, first(path, role="source-val", domain="I"), subject=train["subject"])
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}",
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, *stage_argv("train", "OCI-M")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    see = first(path, domain="I", subject=train["subject"]) + 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: data/manifests/OCI-M.csv line {line}, field subject: subject {train['subject']} of domain I "
        f"is in both source-train and source-val (see line {see})")
    assert not (tmp_path / "models/OCI-M/last.pt").exists()


# ------------------------------------------------------------------ index, frames.csv, faces.csv

def test_index_row_climbing_out_deletes_nothing_and_names_the_row(tmp_path):
    """An index row with `../` must not let extract reset a folder outside its output."""
    repo = tmp_path / "repo"
    sentinel = tmp_path / "victim/v/keep.txt"
    sentinel.parent.mkdir(parents=True)
    sentinel.write_text("keep")
    index = repo / "data/index/O.csv"
    write_index([VideoRecord("O", "s/a.avi", "1", "train", Label.LIVE),
                 VideoRecord("O", "s/b.avi", "1", "train", Label.PRINT)], index)
    line = edit(index, 1, relpath="../../../../victim/v.avi")  # data/frames/O/../../../../victim/v
    error = ""
    try:
        run_extract(read_index(index), repo / "data/raw/OULU-NPU", repo / "data/frames/O",
                    dflt.extract(frames_per_video=2), rel_to=repo, progress=False)
    except MpfasError as exc:
        error = str(exc)
    assert sentinel.read_text() == "keep"
    assert error == (f"{index} line {line}, field relpath: '../../../../victim/v.avi' is outside the dataset "
                     "root: it climbs out with '..'")


def test_symlinked_video_folder_out_of_the_output_deletes_nothing(tmp_path):
    sentinel = tmp_path / "victim/v/keep.txt"
    sentinel.parent.mkdir(parents=True)
    sentinel.write_text("keep")
    out = tmp_path / "frames/O"
    out.mkdir(parents=True)
    (out / "s").symlink_to(tmp_path / "victim", target_is_directory=True)
    with pytest.raises(MpfasError, match=r"O/s/v\.avi: 's/v' is outside the output folder .* a symlinked folder "
                                         r"leads out; remove that link from .*frames/O$"):
        run_extract([VideoRecord("O", "s/v.avi", "1", "train", Label.LIVE)], tmp_path / "raw", out,
                    dflt.extract(frames_per_video=2), rel_to=tmp_path, progress=False)
    assert sentinel.read_text() == "keep"


def test_index_label_typo_and_duplicate_name_the_row(tmp_path):
    index = tmp_path / "O.csv"
    records = [VideoRecord("O", f"s/{i}.avi", str(i), "train", Label.LIVE) for i in range(3)]
    write_index(records, index)
    edit(index, 1, label="lve")
    with pytest.raises(ValueError, match=r"O.csv line 3, field label: 'lve' is not live, print or replay$"):
        read_index(index)
    write_index(records + records[1:2], index)
    with pytest.raises(ValueError, match=r"O.csv line 5, field relpath: this video already listed on line 3$"):
        read_index(index)


def test_frames_csv_path_out_of_its_folder_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    frames = tmp_path / "data/frames/O/frames.csv"
    frames.parent.mkdir(parents=True)
    frames.write_text("video_id,frame,path,checksum\n"
                      "O/s/v.avi,0,data/frames/O/s/v/f00000.png,aa\n"
                      "O/s/v.avi,5,data/frames/O/../../../secret.png,bb\n")
    with pytest.raises(MpfasError, match=r"frames\.csv line 3, field path: "
                                         r"'data/frames/O/\.\./\.\./\.\./secret\.png' is outside the frames root"):
        read_frames_index(frames)


def test_faces_csv_duplicate_frame_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    faces = tmp_path / "data/faces/O/faces.csv"
    faces.parent.mkdir(parents=True)
    row = "O/s/v.avi,0,data/faces/O/s/v/f00000.png,0.99,1,2,3,4\n"
    faces.write_text("video_id,frame,path,prob,x1,y1,x2,y2\n" + row + row)
    with pytest.raises(MpfasError,
                       match=r"faces\.csv line 3, field frame: this video's frame already listed on line 2"):
        read_faces_index(faces)


def test_valid_rows_read_back_unchanged(tmp_path, monkeypatch):
    """The checks change no value: a written manifest and index read back equal."""
    monkeypatch.chdir(tmp_path)
    videos, faces = make_videos(4)
    rows = plan_manifest("OCI-M", PROTOCOL, videos, faces, CFG).rows
    write_manifest(rows, tmp_path / "m.csv")
    assert read_manifest(tmp_path / "m.csv", "data/faces", protocol=Protocol(["O", "C", "I"], "M")) == rows
    write_index(videos["I"], tmp_path / "I.csv")
    assert read_index(tmp_path / "I.csv", "I") == videos["I"]
