"""The extract stage on real video files written with OpenCV (no mocks)."""

from __future__ import annotations

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

from helpers import REPO
from helpers import param_defaults as dflt
from helpers.videos import make_video, read_csv, record, tree
from mpfas.core.sampling import even_indices
from mpfas.data import VideoRecord
from mpfas.preprocess.extract import ExtractError, run_extract
from mpfas.preprocess.frames import read_sampled_frames
from mpfas.preprocess.jobs import MARKER

# ---------------------------------------------------------------- frame sampling (rule: test_sampling.py)

@pytest.mark.parametrize("name,fourcc", [("v.avi", "MJPG"), ("v.mp4", "mp4v"), ("v.mov", "mp4v")])
def test_seek_gives_the_frames_a_full_decode_gives(tmp_path, name, fourcc):
    path = make_video(tmp_path / name, frames=17, fourcc=fourcc)
    seek = read_sampled_frames(path, 5, "seek")
    seq = read_sampled_frames(path, 5, "sequential")
    assert seek.method == "seek" and seq.method == "sequential"
    assert seek.indices == seq.indices == [0, 4, 8, 12, 16]
    assert seek.decoded_count == seq.decoded_count == 17
    for a, b in zip(seek.images, seq.images):
        assert np.array_equal(a, b)


def test_wrong_container_count_falls_back_to_decoding(tmp_path):
    full = make_video(tmp_path / "full.avi", frames=24)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])  # index still claims 24 frames
    got = read_sampled_frames(cut, 4)
    assert got.reported_count == 24
    assert 0 < got.decoded_count < 24
    assert got.truncated and got.method == "sequential"
    assert got.indices == even_indices(got.decoded_count, 4)


# ---------------------------------------------------------------- the stage

def _bad_inputs(root: Path) -> list[VideoRecord]:
    make_video(root / "ok/a.avi")
    make_video(root / "ok/b.mp4", fourcc="mp4v")
    (root / "bad").mkdir(parents=True)
    (root / "bad/zero.avi").write_bytes(b"")
    (root / "bad/text.avi").write_text("this is not a video\n" * 20)
    full = make_video(root / "tmp/full.mp4", fourcc="mp4v")
    (root / "bad/nomoov.mp4").write_bytes(full.read_bytes()[: full.stat().st_size // 2])  # moov atom lost
    full = make_video(root / "tmp/full.avi")
    (root / "bad/cut.avi").write_bytes(full.read_bytes()[: full.stat().st_size // 2])  # decodable head
    make_video(root / "odd/one_frame.avi", frames=1)
    make_video(root / "odd/noface.avi", face=False)
    make_video(root / "odd/big4k.avi", frames=2, size=(3840, 2160))
    rels = ["ok/a.avi", "ok/b.mp4", "bad/zero.avi", "bad/text.avi", "bad/nomoov.mp4", "bad/cut.avi",
            "odd/one_frame.avi", "odd/noface.avi", "odd/big4k.avi", "bad/missing.avi"]
    return [record(r) for r in rels]


def test_bad_inputs_are_listed_and_the_rate_is_enforced(tmp_path):
    root, out = tmp_path / "raw", tmp_path / "frames"
    records = _bad_inputs(root)
    cfg = dflt.extract(frames_per_video=4, max_failure_rate=0.5)
    summary = run_extract(records, root, out, cfg, 2, rel_to=tmp_path, dataset="O", progress=False)

    failures = read_csv(out / "failures.csv")
    by_video = {(f["video_id"], f["reason"]): f for f in failures}
    assert by_video[("O/bad/zero.avi", "empty_file")]["severity"] == "error"
    assert by_video[("O/bad/text.avi", "unreadable")]["severity"] == "error"
    assert by_video[("O/bad/nomoov.mp4", "unreadable")]["severity"] == "error"
    assert by_video[("O/bad/missing.avi", "missing")]["severity"] == "error"
    assert by_video[("O/bad/cut.avi", "truncated")]["severity"] == "warning"
    assert by_video[("O/odd/one_frame.avi", "few_frames")]["severity"] == "warning"
    assert all(str(tmp_path) not in f["detail"] for f in failures)  # no machine paths in the CSV
    assert summary.errors == 4 and summary.videos == 10
    assert summary.failure_rate == pytest.approx(0.4)

    frames = read_csv(out / "frames.csv")
    per_video: dict[str, list[int]] = {}
    for row in frames:
        per_video.setdefault(row["video_id"], []).append(int(row["frame"]))
        img = cv2.imread(str(tmp_path / row["path"]))
        assert img is not None, row["path"]
        assert not Path(row["path"]).is_absolute()
    assert per_video["O/ok/a.avi"] == [0, 8, 15, 23]
    assert per_video["O/odd/one_frame.avi"] == [0]
    assert per_video["O/odd/big4k.avi"] == [0, 1]
    assert cv2.imread(str(out / "odd/big4k/f00001.png")).shape == (2160, 3840, 3)
    assert len(per_video["O/bad/cut.avi"]) == 4
    assert not {"O/bad/zero.avi", "O/bad/text.avi", "O/bad/nomoov.mp4"} & set(per_video)

    strict = replace(cfg, max_failure_rate=0.05)
    with pytest.raises(ExtractError, match=r"extract O: 4 of 10 videos.*extract\.max_failure_rate=0\.05"):
        run_extract(records, root, out, strict, rel_to=tmp_path, dataset="O", progress=False)
    assert (out / "failures.csv").is_file()


def test_resume_skips_done_videos_and_redoes_changed_ones(tmp_path):
    root = tmp_path / "raw"
    records = [record(f"s/v{i}.avi") for i in range(4)]
    for r in records:
        make_video(root / r.relpath, frames=12)
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    cfg = dflt.extract(frames_per_video=3)

    first = run_extract(records, root, out_a, cfg, 2, rel_to=out_a, progress=False)
    assert (first.processed, first.skipped) == (4, 0)
    before = tree(out_a)
    again = run_extract(records, root, out_a, cfg, 2, rel_to=out_a, progress=False)
    assert (again.processed, again.skipped) == (0, 4)
    assert tree(out_a) == before

    # one worker, same bytes as two
    run_extract(records, root, out_b, cfg, 1, rel_to=out_b, progress=False)
    assert tree(out_b) == before

    # a param change redoes every video and leaves no frame of the old setting behind
    changed = run_extract(records, root, out_a, replace(cfg, frames_per_video=2), rel_to=out_a, progress=False)
    assert changed.processed == 4
    assert sorted(p.name for p in (out_a / "s/v0").iterdir()) == [MARKER, "f00000.png", "f00011.png"]

    # a replaced input video is redone; a video dropped from the index loses its folder
    make_video(root / "s/v1.avi", frames=6)
    shrunk = run_extract(records[:2], root, out_a, replace(cfg, frames_per_video=2), rel_to=out_a, progress=False)
    assert (shrunk.processed, shrunk.skipped, shrunk.removed) == (1, 1, 2)
    assert not (out_a / "s/v2").exists() and not (out_a / "s/v3").exists()
    assert [r["frame"] for r in read_csv(out_a / "frames.csv") if r["video_id"] == "O/s/v1.avi"] == ["0", "5"]


def test_image_ext_jpg_writes_real_jpegs_and_redoes_png_output(tmp_path):
    """``extract.image_ext: jpg``: JPEG files (lossy, close to the PNG pixels), listed with their
    checksums; switching from png redoes every video and leaves no PNG behind."""
    from mpfas.preprocess.jobs import checksum

    root, out = tmp_path / "raw", tmp_path / "frames"
    records = [record(f"s/v{i}.avi") for i in range(2)]
    for r in records:
        make_video(root / r.relpath, frames=9)
    cfg = dflt.extract(frames_per_video=3)
    run_extract(records, root, out, cfg, rel_to=tmp_path, progress=False)
    png = {r["path"]: cv2.imread(str(tmp_path / r["path"])) for r in read_csv(out / "frames.csv")}
    jpg = run_extract(records, root, out, replace(cfg, image_ext="jpg"), rel_to=tmp_path, progress=False)
    assert (jpg.processed, jpg.skipped, jpg.frames) == (2, 0, 6)
    rows = read_csv(out / "frames.csv")
    assert [r["path"] for r in rows] == [p.removesuffix(".png") + ".jpg" for p in png]
    assert not list(out.rglob("*.png"))
    for r in rows:
        blob = (tmp_path / r["path"]).read_bytes()
        assert blob[:3] == b"\xff\xd8\xff" and r["checksum"] == checksum(blob), r["path"]
        image, before = cv2.imread(str(tmp_path / r["path"])), png[r["path"].removesuffix(".jpg") + ".png"]
        error = np.abs(image.astype(int) - before).mean()
        assert 0 < error < 4, (r["path"], error)  # lossy, yet the same picture


_KILLABLE = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import mpfas.core.atomic as atomic
    from dataclasses import replace
    from mpfas.core.config import load_params
    from mpfas.data import read_index
    from mpfas.preprocess.extract import run_extract

    _write = atomic.write_bytes
    def slow_write(path, data):  # slow the run down so the kill lands in the middle of it
        time.sleep(0.05)
        return _write(path, data)
    atomic.write_bytes = slow_write
    cfg = replace(load_params('params.yaml').extract, frames_per_video=4)  # the repository's, run from its root
    root, out, index = map(Path, sys.argv[1:4])
    run_extract(read_index(index), root, out, cfg,
                rel_to=out.parent, progress=False)
""")


def test_sigkill_then_rerun_gives_identical_files(tmp_path):
    from mpfas.data import write_index

    root = tmp_path / "raw"
    records = [record(f"s/v{i:02d}.avi") for i in range(10)]
    for r in records:
        make_video(root / r.relpath, frames=16)
    index = tmp_path / "index.csv"
    write_index(records, index)
    cfg = dflt.extract(frames_per_video=4)

    clean = tmp_path / "clean" / "frames"
    run_extract(records, root, clean, cfg, rel_to=clean.parent, progress=False)

    killed = tmp_path / "killed" / "frames"
    proc = subprocess.Popen([sys.executable, "-c", _KILLABLE, str(root), str(killed), str(index)],
                            cwd=REPO, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(killed.rglob(MARKER))) < 3:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(killed.rglob(MARKER)))
    assert 3 <= done < len(records), "the kill should land halfway through the run"
    assert not (killed / "frames.csv").exists()
    # a temp file as a kill during a write would leave it
    (killed / "s/v00/.f00000.png.99999.tmp").write_bytes(b"half a png")

    resumed = run_extract(records, root, killed, cfg, rel_to=killed.parent, progress=False)
    assert resumed.skipped == done
    assert tree(killed) == tree(clean)
    assert not list(killed.rglob("*.tmp"))


def test_two_videos_that_would_share_a_folder_are_refused(tmp_path):
    from mpfas.core.errors import MpfasError

    with pytest.raises(MpfasError, match="would share the output folder 's/v'"):
        run_extract([record("s/v.avi"), record("s/v.mp4")], tmp_path, tmp_path / "out", dflt.extract(),
                    progress=False)


# ---------------------------------------------------------------- disk space, before any work

def _free_space(monkeypatch, free_bytes: float) -> None:
    """The disk's free space is an input of the check; set it as a machine would report it."""
    import shutil

    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=int(free_bytes)))


def test_frames_that_cannot_fit_stop_extract_before_any_work(tmp_path, monkeypatch):
    from mpfas.preprocess.disk import DiskSpaceError, check_free_space

    recs = [record(f"v{i}.avi") for i in range(4)]
    for i in range(2):
        make_video(tmp_path / "root" / f"v{i}.avi", frames=6, size=(640, 480))
    for i in range(2, 4):
        make_video(tmp_path / "root" / f"v{i}.avi", frames=6, size=(320, 240))
    videos = [tmp_path / "root" / r.relpath for r in recs]
    space = check_free_space(videos, 3, "png", tmp_path / "out", "extract O")
    assert space.frames == 12 and space.pixels == pytest.approx((640 * 480 + 320 * 240) / 2)
    need = space.bytes()
    assert need == pytest.approx(12 * space.pixels * 1.41) and space.bytes("jpg") < need / 5

    _free_space(monkeypatch, 0.4 * need)  # under even the low estimate (half)
    cfg = dflt.extract(frames_per_video=3)
    with pytest.raises(DiskSpaceError) as info:
        run_extract(recs, tmp_path / "root", tmp_path / "out", cfg, dataset="O", progress=False)
    msg = str(info.value)
    assert msg.startswith("extract O: 12 frames of about 0.19 Mpx take about") and "extract.image_ext: jpg" in msg
    assert not list((tmp_path / "out").rglob("*.png")) and not (tmp_path / "out" / "frames.csv").exists()


def test_frames_that_may_not_fit_warn_and_extract(tmp_path, monkeypatch, caplog):
    recs = [record(f"v{i}.avi") for i in range(2)]
    for r in recs:
        make_video(tmp_path / "root" / r.relpath, frames=6)
    need = 2 * 3 * 320 * 240 * 1.41
    _free_space(monkeypatch, 0.8 * need)  # between the low and the typical estimate
    summary = run_extract(recs, tmp_path / "root", tmp_path / "out", dflt.extract(frames_per_video=3),
                          dataset="O", progress=False)
    assert summary.frames == 6 and "it may not fit" in caplog.text
