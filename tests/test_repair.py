"""Damaged intermediate files are remade or named, never trusted.

* extract and align verify the content checksums their per-video markers record, remake
  frames and faces found missing or corrupt (byte-identical, counted in the metrics),
  and fail naming the file when it cannot be remade;
* extract redoes a video whose content changed under the same size;
* a corrupt or missing face stops training with one line naming it;
* end to end: ``dvc repro`` repairs damage without retraining, and retrains from iteration 0
  after ``align.padding`` changes the faces under the same file names.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from helpers import param_defaults as dflt
from helpers.faces import picked_face, train_workspace
from helpers.pipeline_copy import TINY, copy_repo, dvc
from helpers.videos import make_video, read_csv, record, tree, two_extracted_videos
from mpfas.core.config import ExtractConfig
from mpfas.core.errors import MpfasError
from mpfas.models.inference import FaceReadError, load_face
from mpfas.preprocess.align import AlignError, run_align
from mpfas.preprocess.detect import FaceDetector
from mpfas.preprocess.extract import ExtractError, run_extract

CROP = 64


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# ---------------------------------------------------------------- extract

def _extracted(tmp_path: Path, n: int = 3, fourcc: str = "MJPG") -> tuple[list, Path, Path, ExtractConfig]:
    root, out = tmp_path / "raw", tmp_path / "frames"
    records = [record(f"s/v{i}.avi") for i in range(n)]
    for r in records:
        make_video(root / r.relpath, frames=12, size=(160, 120), fourcc=fourcc)
    cfg = dflt.extract(frames_per_video=3)
    first = run_extract(records, root, out, cfg, rel_to=tmp_path, progress=False)
    assert (first.processed, first.repaired) == (n, 0)
    return records, root, out, cfg


def test_extract_remakes_corrupt_and_missing_frames(tmp_path):
    records, root, out, cfg = _extracted(tmp_path)
    before = tree(out)
    _truncate(out / "s/v0/f00006.png")
    (out / "s/v1/f00011.png").unlink()

    again = run_extract(records, root, out, cfg, 2, rel_to=tmp_path, progress=False).as_dict()
    assert tree(out) == before
    assert (again["skipped"], again["processed"], again["repaired"], again["repaired_files"]) == (1, 2, 2, 2)
    clean = run_extract(records, root, out, cfg, rel_to=tmp_path, progress=False)
    assert (clean.skipped, clean.repaired) == (3, 0)


def test_extract_redoes_a_video_whose_content_changed_under_the_same_size(tmp_path):
    records, root, out, cfg = _extracted(tmp_path, n=2, fourcc="IYUV")  # uncompressed: size fixed by frames
    video = root / records[1].relpath
    size, old = video.stat().st_size, (out / "s/v1/f00000.png").read_bytes()
    make_video(video, frames=12, size=(160, 120), fourcc="IYUV", face=False)
    assert video.stat().st_size == size

    again = run_extract(records, root, out, cfg, rel_to=tmp_path, progress=False)
    assert (out / "s/v1/f00000.png").read_bytes() != old
    assert (again.skipped, again.processed, again.repaired) == (1, 1, 0)


def test_extract_keeps_intact_frames_of_a_lost_video_but_cannot_remake_them(tmp_path):
    records, root, out, cfg = _extracted(tmp_path, n=2)
    before = tree(out)
    (root / records[0].relpath).unlink()
    kept = run_extract(records, root, out, cfg, rel_to=tmp_path, progress=False)
    assert (kept.skipped, kept.errors) == (2, 0) and tree(out) == before

    _truncate(out / "s/v0/f00011.png")
    with pytest.raises(ExtractError) as err:
        run_extract(records, root, out, cfg, rel_to=tmp_path, progress=False)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{out / 's/v0/f00011.png'}: missing or corrupt")
    assert str(root / records[0].relpath) in message


# ---------------------------------------------------------------- align

@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(max_side=640, min_face_size=20)


def _aligned(tmp_path: Path, detector: FaceDetector) -> tuple[list, dict]:
    records = two_extracted_videos(tmp_path)
    return records, _align(tmp_path, records, detector)


def _align(base: Path, records: list, detector: FaceDetector | None) -> dict:
    run_align(records, base / "frames/frames.csv", base / "faces", dflt.align(crop_size=CROP), rel_to=base,
              metrics_path=base / "metrics/align_O.json", detector=detector, dataset="O", progress=False)
    return json.loads((base / "metrics/align_O.json").read_text())


def test_align_remakes_corrupt_and_missing_faces(tmp_path, detector):
    records, first = _aligned(tmp_path, detector)
    assert (first["processed"], first["repaired"], first["faces"]) == (2, 0, 4)
    before = tree(tmp_path / "faces")
    _truncate(tmp_path / "faces/s/a/f00000.png")
    (tmp_path / "faces/s/b/f00007.png").unlink()

    again = _align(tmp_path, records, detector)
    assert tree(tmp_path / "faces") == before
    assert (again["skipped"], again["processed"], again["repaired"], again["repaired_files"]) == (0, 2, 2, 2)
    clean = _align(tmp_path, records, None)  # nothing to redo: no detector needed
    assert (clean["skipped"], clean["repaired"]) == (2, 0)


def test_align_refuses_a_frame_unlike_its_recorded_checksum(tmp_path, detector):
    records, _ = _aligned(tmp_path, detector)
    frame = tmp_path / "frames/s/a/f00007.png"
    _truncate(frame)
    (tmp_path / "faces/s/a/f00000.png").unlink()  # the video must be redone from its frames

    with pytest.raises(AlignError) as err:
        _align(tmp_path, records, detector)
    assert str(err.value).startswith(f"{frame}: missing, or unlike the checksum frames.csv records")
    assert "\n" not in str(err.value)
    assert [r["video_id"] for r in read_csv(tmp_path / "frames/frames.csv")].count("O/s/a.avi") == 2


def test_align_refuses_a_frames_csv_that_lost_whole_rows(tmp_path, detector):
    """Cut at a line boundary, frames.csv still parses; align must not take the missing frames as
    'no frames' and delete those faces."""
    records, _ = _aligned(tmp_path, detector)
    faces = tree(tmp_path / "faces")
    frames_csv = tmp_path / "frames/frames.csv"
    lines = frames_csv.read_text().splitlines(keepends=True)
    frames_csv.write_text("".join(lines[:-2]))  # the last video loses both its frames
    with pytest.raises(AlignError) as err:
        _align(tmp_path, records, detector)
    assert str(err.value).startswith(f"{frames_csv}: lists 0 of the 2 frames extract wrote for O/s/b.avi")
    assert "\n" not in str(err.value)
    assert tree(tmp_path / "faces") == faces  # nothing deleted


# ---------------------------------------------------------------- training

def test_a_corrupt_face_is_named_in_one_line(workspace):
    root = workspace
    face = picked_face(root, "source-val")  # validation (at iteration 2) scores it
    _truncate(face)
    with pytest.raises(FaceReadError) as err:
        load_face(face, 32)
    assert str(err.value).startswith(f"{face}: not a readable image") and "\n" not in str(err.value)

    with pytest.raises(MpfasError, match=f"^{face.relative_to(root)}: not a readable image"):
        train_workspace(root)

    gone = picked_face(root)
    gone.unlink()  # a face training would read is missing: refused before any iteration
    with pytest.raises(FileNotFoundError, match=f"^{gone.relative_to(root)}: aligned face not found"):
        train_workspace(root)
    gone.mkdir()  # a folder where the manifest names a face
    with pytest.raises(FaceReadError, match=f"^{gone.relative_to(root)}: not a readable face file"):
        train_workspace(root)


# ---------------------------------------------------------------- end to end

def _model(repo: Path) -> dict[str, torch.Tensor]:
    return torch.load(repo / "models/OCI-M/best.pt", weights_only=True)["model"]


def _metrics(repo: Path, name: str) -> dict:
    return json.loads((repo / f"metrics/{name}.json").read_text())


@pytest.mark.heavy
@pytest.mark.slow  # the real pipeline up to train@OCI-M, three times: ~3 min on 2 cores
def test_dvc_repro_repairs_damage_and_retrains_after_a_padding_change(tmp_path):
    repo = copy_repo(tmp_path, TINY)
    first = dvc(repo, "repro", "train@OCI-M")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert _metrics(repo, "train_OCI-M")["resumed_from"] == 0
    model = _model(repo)

    # damage a frame and a face as a bad restore would: the re-run remakes both, and nothing else
    frame = next((repo / "data/frames/O").rglob("f*.png"))
    face = next((repo / "data/faces/C").rglob("f*.png"))
    originals = {frame: frame.read_bytes(), face: face.read_bytes()}
    _truncate(frame)
    face.unlink()
    repaired = dvc(repo, "repro", "train@OCI-M")
    assert repaired.returncode == 0, repaired.stdout[-3000:] + repaired.stderr[-3000:]
    assert {p: p.read_bytes() for p in originals} == originals
    assert (_metrics(repo, "extract_O")["repaired"], _metrics(repo, "extract_O")["repaired_files"]) == (1, 1)
    assert (_metrics(repo, "align/C")["repaired"], _metrics(repo, "align/C")["repaired_files"]) == (1, 1)
    assert "Running stage 'train@OCI-M'" not in repaired.stdout  # same faces: nothing to retrain

    # other faces under the same file names: train starts over instead of resuming at the end
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["align"]["padding"] = 0.5
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = dvc(repo, "repro", "train@OCI-M")
    assert changed.returncode == 0, changed.stdout[-3000:] + changed.stderr[-3000:]
    assert face.read_bytes() != originals[face]
    assert _metrics(repo, "train_OCI-M")["resumed_from"] == 0
    retrained = _model(repo)
    assert any(not torch.equal(model[k], retrained[k]) for k in model)
