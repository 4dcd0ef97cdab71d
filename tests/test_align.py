"""The align stage: MTCNN on real face frames, the 5-point warp, resume and failure handling."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from helpers import REPO
from helpers import param_defaults as dflt
from helpers.videos import make_video, read_csv, record, tree, two_extracted_videos
from mpfas.core.config import AlignConfig
from mpfas.data import Label, write_index
from mpfas.preprocess.align import FACES_COLUMNS, AlignError, detector_for, run_align
from mpfas.preprocess.detect import FaceDetector, box_iou
from mpfas.preprocess.extract import run_extract
from mpfas.preprocess.jobs import MARKER
from mpfas.preprocess.warp import EYE_CENTRE, alignment_matrix, similarity_transform, template_points, warp_face

CROP = 64  # small crops keep the tests fast; the warp is size-independent


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(max_side=640, min_face_size=20)


# ---------------------------------------------------------------- warp

def test_similarity_transform_recovers_a_known_one():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -5.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ rot.T + shift
    m = similarity_transform(src, dst)
    assert np.allclose(m[:, :2], rot) and np.allclose(m[:, 2], shift)
    mirrored = dst * np.array([-1, 1])  # a reflection is never returned
    assert np.linalg.det(similarity_transform(src, mirrored)[:, :2]) > 0


def test_alignment_puts_the_eyes_where_the_template_says():
    size, padding = 256, 0.37
    tpl = template_points(size, padding)
    # a tilted, shifted, scaled face in a frame
    angle = np.deg2rad(15)
    rot = 2.3 * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    landmarks = np.round(tpl @ rot.T + np.array([400.0, 130.0]))  # whole pixels: what the warp uses
    m = alignment_matrix(landmarks, size, padding)
    out = landmarks @ m[:, :2].T + m[:, 2]  # where the warp sends each landmark
    assert np.allclose(out[:2].mean(0), np.array(EYE_CENTRE) * size)
    # level and at the template's eye distance, up to the rounding (half a frame pixel = 0.22 crop px)
    assert abs(out[1, 1] - out[0, 1]) < 0.5
    assert abs((out[1, 0] - out[0, 0]) - (tpl[1, 0] - tpl[0, 0])) < 0.5
    assert 0.4 * size < out[2, 1] < out[3, 1] < size  # nose above mouth, inside the crop


def test_landmark_noise_of_another_cpu_leaves_the_face_byte_identical(detector):
    """MTCNN's last bits differ between CPUs; the warp sees whole-pixel landmarks, so such
    noise does not reach the aligned face (unless a landmark sits on a rounding boundary)."""
    astro = data.astronaut()
    (face,) = detector.detect([astro])
    crop = warp_face(astro, face.landmarks, 128, 0.37)
    for seed in range(5):
        noise = np.random.default_rng(seed).uniform(-1e-3, 1e-3, face.landmarks.shape)
        assert np.array_equal(warp_face(astro, face.landmarks + noise, 128, 0.37), crop), seed


def test_detections_map_back_to_full_resolution(detector):
    astro = data.astronaut()
    (ref,) = detector.detect([astro])  # 512 px: no downscaling
    assert ref is not None
    frame = np.full((2160, 3840, 3), 100, np.uint8)
    big = cv2.resize(astro, (1536, 1536), interpolation=cv2.INTER_CUBIC)  # x3
    frame[300:1836, 1200:2736] = big
    (face,) = detector.detect([frame])  # detected on 640x360, reported in 4K pixels
    expected = np.array(ref.box) * 3 + np.array([1200, 300, 1200, 300])
    assert box_iou(face.box, expected) > 0.85
    assert np.abs(face.landmarks - (ref.landmarks * 3 + [1200, 300])).max() < 20
    assert face.landmarks[0, 0] < face.landmarks[1, 0]  # left eye first


def test_batches_group_equal_sizes_and_match_single_calls(detector):
    astro = data.astronaut()
    frames = [astro, np.full((240, 320, 3), 80, np.uint8), astro[::-1].copy(), cv2.resize(astro, (300, 300))]
    together = detector.detect_all(frames)
    alone = [detector.detect_all([f])[0] for f in frames]
    assert [len(f) for f in together] == [len(f) for f in alone]
    assert together[1] == []
    for t, a in zip(together, alone):
        for ft, fa in zip(t, a):
            assert box_iou(ft.box, fa.box) > 0.99


def test_frames_smaller_than_the_smallest_face_have_none(detector):
    """MTCNN's image pyramid is empty below ``min_face_size`` (facenet-pytorch fails on it): such
    frames have no face, and the frames beside them in the batch are unaffected."""
    face = cv2.resize(data.astronaut()[20:240, 140:310], (170, 220))
    for size in ((12, 12), (19, 400)):
        assert detector.detect_all([np.zeros((*size, 3), np.uint8)] * 2) == [[], []]
    assert detector.detect([np.ascontiguousarray(face)])[0] is not None


def test_warp_output_is_the_crop_size(detector):
    astro = data.astronaut()
    (face,) = detector.detect([astro])
    crop = warp_face(astro, face.landmarks, 112, 0.37)
    assert crop.shape == (112, 112, 3) and crop.std() > 20


def test_mtcnn_runs_on_one_cpu_thread_and_restores_the_callers_count(detector, monkeypatch):
    # MTCNN's R-Net/O-Net resample every candidate box separately: hundreds of tiny ops a
    # frame. With torch's default (one thread per core) each op waits at an OpenMP barrier,
    # and on a busy 2-core machine the align stage of the full-size demo ran 2-10x slower.
    import torch

    from mpfas.preprocess.align import detector_for
    from mpfas.preprocess.detect import torch_threads

    seen: list[int] = []
    inner = detector.mtcnn.detect

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return inner(*args, **kwargs)

    monkeypatch.setattr(detector.mtcnn, "detect", spy)
    astro = data.astronaut()
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        (face,) = detector.detect([astro])
        assert face is not None and seen == [1]
        assert torch.get_num_threads() == 2  # the caller's setting is back
        keep = FaceDetector(max_side=640, min_face_size=20, threads=None)  # opt out: torch's own setting
        monkeypatch.setattr(keep.mtcnn, "detect", spy)
        keep.detect([astro])
        assert seen == [1, 2]
        with pytest.raises(RuntimeError), torch_threads(1):  # restored on an error too
            raise RuntimeError("boom")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert detector.threads == 1 and detector_for(dflt.align()).threads == 1  # the align stage's detector
    with pytest.raises(ValueError, match="threads"):
        FaceDetector(threads=0)


# ---------------------------------------------------------------- the stage

def _dataset(root: Path) -> list:
    make_video(root / "v/live.avi", frames=12)
    make_video(root / "v/print.mp4", frames=12, fourcc="mp4v")
    make_video(root / "v/replay.avi", frames=12, size=(480, 272))
    make_video(root / "v/noface.avi", frames=12, face=False)
    make_video(root / "v/one.avi", frames=1)
    make_video(root / "v/big4k.avi", frames=2, size=(3840, 2160))
    (root / "v/zero.avi").write_bytes(b"")
    labels = {"live": Label.LIVE, "print": Label.PRINT, "replay": Label.REPLAY, "noface": Label.LIVE,
              "one": Label.PRINT, "big4k": Label.REPLAY, "zero": Label.LIVE}
    exts = {"print": "mp4"}
    return [record(f"v/{n}.{exts.get(n, 'avi')}", lab) for n, lab in labels.items()]


def test_stage_writes_faces_failures_metrics_and_sheet(tmp_path, detector):
    root = tmp_path / "raw"
    records = _dataset(root)
    ecfg = dflt.extract(frames_per_video=3, max_failure_rate=0.5)
    run_extract(records, root, tmp_path / "frames", ecfg, rel_to=tmp_path, dataset="O", progress=False)
    cfg = dflt.align(crop_size=CROP, max_failed_videos={"O": 0.2})
    metrics, sheet = tmp_path / "metrics/align_O.json", tmp_path / "plots/faces_O.png"
    summary = run_align(records, tmp_path / "frames/frames.csv", tmp_path / "faces", cfg, rel_to=tmp_path,
                        metrics_path=metrics, sheet_path=sheet, detector=detector, dataset="O", progress=False)

    faces = read_csv(tmp_path / "faces/faces.csv")
    assert list(faces[0]) == FACES_COLUMNS
    by_video: dict[str, list[int]] = {}
    for row in faces:
        by_video.setdefault(row["video_id"], []).append(int(row["frame"]))
        crop = cv2.imread(str(tmp_path / row["path"]))
        assert crop.shape == (CROP, CROP, 3)
        assert float(row["prob"]) > 0.9 and float(row["x2"]) > float(row["x1"])
    assert by_video == {"O/v/live.avi": [0, 6, 11], "O/v/print.mp4": [0, 6, 11], "O/v/replay.avi": [0, 6, 11],
                        "O/v/one.avi": [0], "O/v/big4k.avi": [0, 1]}
    big = next(r for r in faces if r["video_id"] == "O/v/big4k.avi")
    assert float(big["x2"]) - float(big["x1"]) > 500  # box in 4K pixels, not detection pixels

    failures = read_csv(tmp_path / "faces/failures.csv")
    reasons = {(f["video_id"], f["frame"], f["severity"], f["reason"]) for f in failures}
    assert {("O/v/noface.avi", str(i), "error", "no_face") for i in (0, 6, 11)} <= reasons
    assert ("O/v/noface.avi", "", "error", "no_face_in_video") in reasons
    assert ("O/v/zero.avi", "", "warning", "no_frames") in reasons
    assert not any(f["reason"] == "no_face_in_video" and f["video_id"] != "O/v/noface.avi" for f in failures)

    m = json.loads(metrics.read_text())
    assert m["frames"] == 15 and m["faces"] == 12 and m["detection_rate"] == pytest.approx(0.8)
    assert (m["frames_without_face"], m["frames_without_face_rate"]) == (3, pytest.approx(0.2))
    # the zero-byte video has no frames: the extract stage's failure, not held against align
    assert (m["videos"], m["videos_with_faces"], m["videos_without_face"], m["videos_without_frames"]) == (7, 5, 1, 1)
    assert m["videos_without_face_rate"] == pytest.approx(1 / 6, abs=1e-6) and m["max_failed_videos"] == 0.2
    assert m["failures_by_reason"] == {"no_face": 3, "no_face_in_video": 1, "no_frames": 1}
    assert m["per_class"]["live"] == {"videos": 3, "videos_with_faces": 1, "frames": 6, "faces": 3,
                                      "detection_rate": 0.5}
    assert m["per_class"]["replay"]["faces"] == 5
    assert summary.videos_without_face == 1
    img = cv2.imread(str(sheet))
    assert img is not None and img.shape[0] > 3 * 96

    with pytest.raises(AlignError, match=r"align O \(OULU-NPU\): 1 of 6 videos have no face in any sampled "
                                         r"frame \(16\.7%\), more than align\.max_failed_videos\.O=0\.1; "
                                         r"see .*failures\.csv"):
        run_align(records, tmp_path / "frames/frames.csv", tmp_path / "faces",
                  replace(cfg, max_failed_videos={"O": 0.1}), rel_to=tmp_path, detector=detector, dataset="O",
                  progress=False)


def _frame_dataset(base: Path, code: str, plan: dict[str, list[bool]]) -> list:
    """Frames written straight to ``frames.csv`` (no video decoding): True is a real face, False a blank frame."""
    head = cv2.cvtColor(data.astronaut()[:300, 80:380], cv2.COLOR_RGB2BGR)  # small frames keep MTCNN quick
    face = cv2.resize(head, (128, 128), interpolation=cv2.INTER_AREA)
    blank = np.full((128, 128, 3), 90, np.uint8)
    records, lines = [], ["video_id,frame,path,checksum"]
    for i, (name, has_face) in enumerate(plan.items()):
        rec = record(f"v/{name}.avi", (Label.LIVE, Label.PRINT)[i % 2], dataset=code)
        records.append(rec)
        for f, yes in enumerate(has_face):
            rel = f"frames/{code}/v/{name}/f{f:05d}.png"
            (base / rel).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(base / rel), face if yes else blank)
            lines.append(f"{rec.video_id},{f},{rel},")
    (base / f"frames/{code}/frames.csv").write_text("\n".join(lines) + "\n")
    return records


def _align(base: Path, code: str, records: list, cfg: AlignConfig, detector) -> dict:
    run_align(records, base / f"frames/{code}/frames.csv", base / f"faces/{code}", cfg, rel_to=base,
              metrics_path=base / f"metrics/align_{code}.json", detector=detector, dataset=code, progress=False)
    return json.loads((base / f"metrics/align_{code}.json").read_text())


def test_worker_processes_write_the_faces_one_process_writes(tmp_path, detector):
    """``runtime.align_workers``: videos aligned in two spawned processes, each with its own MTCNN,
    give the same files, faces.csv and failures.csv as the stage's in-process detector."""
    root = tmp_path / "raw"
    records = _dataset(root)
    run_extract(records, root, tmp_path / "frames", dflt.extract(frames_per_video=3, max_failure_rate=0.5),
                rel_to=tmp_path, dataset="O", progress=False)
    cfg = dflt.align(crop_size=CROP, max_failed_videos={"O": 0.5})
    for name, kw in (("one", {"detector": detector}), ("two", {"workers": 2})):
        run_align(records, tmp_path / "frames/frames.csv", tmp_path / name, cfg, rel_to=tmp_path, dataset="O",
                  progress=False, **kw)
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*") if p.is_file())
    assert sum(p.suffix == ".png" for p in files) >= 10
    for rel in files:
        one, two = (tmp_path / "one" / rel).read_bytes(), (tmp_path / "two" / rel).read_bytes()
        if rel.name == "faces.csv":  # its paths name the output folder
            one = one.replace(b",one/", b",two/")
        assert one == two, rel


def test_frames_without_a_face_never_fail_the_stage(tmp_path, detector):
    """Two thirds of the frames have no face, yet every video has one: the stage passes even at a 0 limit."""
    records = _frame_dataset(tmp_path, "I", {n: [False, True, False] for n in "abc"})
    m = _align(tmp_path, "I", records, dflt.align(crop_size=CROP, max_failed_videos={"I": 0.0}), detector)
    assert (m["frames"], m["faces"], m["frames_without_face"]) == (9, 3, 6)
    assert m["frames_without_face_rate"] == pytest.approx(2 / 3, abs=1e-6)
    assert (m["videos_with_faces"], m["videos_without_face"], m["videos_without_face_rate"]) == (3, 0, 0.0)
    assert m["max_failed_videos"] == 0.0
    failures = read_csv(tmp_path / "faces/I/failures.csv")
    assert sorted((f["video_id"], f["frame"], f["reason"]) for f in failures) == [
        (f"I/v/{n}.avi", str(i), "no_face") for n in "abc" for i in (0, 2)]
    assert {r["video_id"]: r["frame"] for r in read_csv(tmp_path / "faces/I/faces.csv")} == {
        f"I/v/{n}.avi": "1" for n in "abc"}


def test_faceless_videos_fail_only_past_their_datasets_limit(tmp_path, detector):
    """One video in five without any face (20 %): under I's limit of 0.25, over O's of 0.1."""
    plan = {"a": [True], "b": [True], "c": [True, False], "d": [True], "e": [False, False]}
    cfg = dflt.align(crop_size=CROP, max_failed_videos={"O": 0.1, "I": 0.25})
    records = _frame_dataset(tmp_path, "I", plan)
    m = _align(tmp_path, "I", records, cfg, detector)
    assert (m["videos"], m["videos_with_faces"], m["videos_without_face"]) == (5, 4, 1)
    assert (m["videos_without_face_rate"], m["max_failed_videos"]) == (0.2, 0.25)
    failures = read_csv(tmp_path / "faces/I/failures.csv")
    video_level = [(f["video_id"], f["severity"], f["reason"]) for f in failures if not f["frame"]]
    assert video_level == [("I/v/e.avi", "error", "no_face_in_video")]
    assert "I/v/e.avi" not in {r["video_id"] for r in read_csv(tmp_path / "faces/I/faces.csv")}

    # a marker from an earlier version still carries its own video-level warning: reported once, renamed
    marker_path = tmp_path / "faces/I/v/e" / MARKER
    marker = json.loads(marker_path.read_text())
    marker["issues"].append({"frame": None, "reason": "no_face_video", "severity": "warning", "detail": "old"})
    marker_path.write_text(json.dumps(marker))
    again = _align(tmp_path, "I", records, cfg, None)  # everything resumed: no detector needed
    assert again["skipped"] == 5 and read_csv(tmp_path / "faces/I/failures.csv") == failures

    records = _frame_dataset(tmp_path, "O", plan)
    with pytest.raises(AlignError, match=r"align O \(OULU-NPU\): 1 of 5 videos .*\(20\.0%\), more than "
                                         r"align\.max_failed_videos\.O=0\.1; see .*faces/O/failures\.csv"):
        _align(tmp_path, "O", records, cfg, detector)
    m = json.loads((tmp_path / "metrics/align_O.json").read_text())  # written before the stage stops
    assert (m["videos_without_face"], m["max_failed_videos"]) == (1, 0.1)


def test_resume_and_param_change(tmp_path, detector):
    records = two_extracted_videos(tmp_path)
    cfg = dflt.align(crop_size=CROP)
    args = (records, tmp_path / "frames/frames.csv", tmp_path / "faces")
    first = run_align(*args, cfg, rel_to=tmp_path, detector=detector, progress=False)
    before = tree(tmp_path / "faces")
    again = run_align(*args, cfg, rel_to=tmp_path, detector=None, progress=False)  # no detector needed
    assert (first.processed, again.processed, again.skipped) == (2, 0, 2)
    assert tree(tmp_path / "faces") == before
    wider = run_align(*args, replace(cfg, padding=0.6), rel_to=tmp_path, detector=detector, progress=False)
    assert wider.processed == 2
    assert (tmp_path / "faces/s/a/f00000.png").read_bytes() != before["s/a/f00000.png"]
    # re-extracted frames (new checksums) redo the align of that video only
    root = tmp_path / "raw"
    make_video(root / "s/b.avi", frames=5)
    run_extract(records, root, tmp_path / "frames", dflt.extract(frames_per_video=2),
                rel_to=tmp_path, progress=False)
    redo = run_align(*args, replace(cfg, padding=0.6), rel_to=tmp_path, detector=detector, progress=False)
    assert (redo.processed, redo.skipped) == (1, 1)


_KILLABLE = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import torch
    import mpfas.core.atomic as atomic
    from dataclasses import replace
    from mpfas.core.config import load_params
    from mpfas.data import read_index
    from mpfas.preprocess.align import run_align

    torch.set_num_threads(1)
    _write = atomic.write_bytes
    def slow_write(path, data):  # slow the run down so the kill lands in the middle of it
        time.sleep(0.1)
        return _write(path, data)
    atomic.write_bytes = slow_write
    cfg = replace(load_params('params.yaml').align, crop_size=64)  # the repository's, run from its root
    base, index = map(Path, sys.argv[1:3])
    run_align(read_index(index), base / "frames/frames.csv", base / "faces", cfg,
              rel_to=base, progress=False)
""")


@pytest.mark.slow  # a killed align process and its rerun: ~6 s
def test_sigkill_then_rerun_gives_identical_files(tmp_path):
    import torch

    root = tmp_path / "raw"
    records = [record(f"s/v{i}.avi", Label.LIVE) for i in range(8)]
    for r in records:
        make_video(root / r.relpath, frames=6)
    index = tmp_path / "index.csv"
    write_index(records, index)
    ecfg = dflt.extract(frames_per_video=2)
    cfg = dflt.align(crop_size=CROP)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # same as the killed run: identical floats, identical PNGs
    try:
        bases = {}
        for name in ("clean", "killed"):
            base = bases[name] = tmp_path / name
            run_extract(records, root, base / "frames", ecfg, rel_to=base, progress=False)
        run_align(records, bases["clean"] / "frames/frames.csv", bases["clean"] / "faces", cfg,
                  rel_to=bases["clean"], progress=False)

        killed = bases["killed"]
        proc = subprocess.Popen([sys.executable, "-c", _KILLABLE, str(killed), str(index)], cwd=REPO,
                                start_new_session=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(list((killed / "faces").rglob(MARKER))) < 2:
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        done = len(list((killed / "faces").rglob(MARKER)))
        assert 2 <= done < len(records), "the kill should land halfway through the run"

        resumed = run_align(records, killed / "frames/frames.csv", killed / "faces", cfg, rel_to=killed,
                            progress=False)
    finally:
        torch.set_num_threads(threads)
    assert resumed.skipped == done
    assert tree(killed / "faces") == tree(bases["clean"] / "faces")
    assert not list(killed.rglob("*.tmp"))


# ---------------------------------------------------------------- align.select

def _two_faces() -> np.ndarray:
    """A large blurred, low-contrast face (MTCNN less sure) and a small sharp one."""
    face = data.astronaut()[20:240, 140:310]  # RGB
    canvas = np.full((360, 640, 3), 100, np.uint8)
    big = cv2.GaussianBlur(cv2.resize(face, (255, 330)), (31, 31), 0)
    canvas[15:345, 20:275] = (big.astype(np.float32) * 0.5 + 60).astype(np.uint8)
    canvas[100:255, 400:520] = cv2.resize(face, (120, 155))
    return canvas


def test_select_confident_picks_the_surest_face_not_the_largest():
    frame = _two_faces()
    largest = detector_for(dflt.align(select="largest"))
    faces = largest.detect_all([frame])[0]
    assert len(faces) == 2
    big, small = sorted(faces, key=lambda f: -f.area)
    assert big.prob < small.prob, "the test needs the larger face to be the less confident one"
    confident = detector_for(dflt.align(select="confident"))
    assert largest.detect([frame])[0].box == big.box
    assert confident.detect([frame])[0].box == pytest.approx(small.box, abs=1.0)
