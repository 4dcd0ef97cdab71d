"""``python -m mpfas predict`` on a synthesised demo: real MTCNN, real warp, a real (random) model.

The predictions must equal what the pipeline computes for the same video (extract +
align + score_frames); the demo, faces and checkpoints come from helpers.checkpoints.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from helpers import REPO
from helpers.checkpoints import (
    ALIGN,
    ASTRONAUT,
    EXTRACT,
    SIZE,
    TRAINED_ON,
    demo_root,
    demo_videos,
    make_checkpoint,
)
from mpfas.__main__ import main
from mpfas.models.inference import score_frames
from mpfas.serve.predict import CSV_COLUMNS, load_model

# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return demo_root(tmp_path_factory)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt", threshold=0.5)


@pytest.fixture(scope="module")
def project(tmp_path_factory, demo, checkpoint) -> Path:
    """A repo-like cwd: params.yaml (align at SIZE) and models/OCI-M/best.pt, the default model."""
    root = tmp_path_factory.mktemp("project")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["align"]["crop_size"] = SIZE
    params["extract"]["frames_per_video"] = EXTRACT.frames_per_video
    params["score"]["faces_per_video"] = 2
    params["data"]["protocols"] = ["OCI-M"]
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    (root / "models" / "OCI-M").mkdir(parents=True)
    (root / "models" / "OCI-M" / "best.pt").write_bytes(checkpoint.read_bytes())
    return root


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(args)
    out, err = capsys.readouterr()
    return rc, out, err


# ------------------------------------------------------------------ tests

def test_video_scores_equal_the_pipeline(project, demo, monkeypatch, capsys):
    """Per-face and video scores of `predict` on raw videos = extract + align + score_frames."""
    from mpfas.core.sampling import pick_evenly
    from mpfas.preprocess.align import run_align
    from mpfas.preprocess.extract import run_extract

    monkeypatch.chdir(project)
    videos = demo_videos(demo, "M")
    recs = [videos["live"][0], videos["replay"][0]]
    root = demo / "MSU-MFSD"
    run_extract(recs, root, "data/frames/M", EXTRACT, workers=1, progress=False)
    run_align(recs, "data/frames/M/frames.csv", "data/faces/M", ALIGN, progress=False)
    with open("data/faces/M/faces.csv", newline="") as fh:
        pipeline: dict[str, list[dict]] = {}
        for row in csv.DictReader(fh):
            pipeline.setdefault(row["video_id"], []).append(row)
    loaded = load_model("models/OCI-M/best.pt")

    rc, out, err = run_cli(["predict", *[str(root / r.relpath) for r in recs], "--no-progress"], capsys)
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["model"]["checkpoint"] == "models/OCI-M/best.pt"  # default: first of data.protocols
    assert doc["threshold"] == 0.5 and doc["threshold_source"].startswith("checkpoint")
    assert [i["input"] for i in doc["inputs"]] == [str(root / r.relpath) for r in recs]
    for rec, item in zip(recs, doc["inputs"]):
        rows = pipeline[rec.video_id]
        assert item["kind"] == "video" and item["status"] == "ok" and item["frames"] == EXTRACT.frames_per_video
        assert [f["frame"] for f in item["faces"]] == [int(r["frame"]) for r in rows]
        expected = score_frames(loaded.model, [r["path"] for r in rows], SIZE, 32, "cpu")
        got = np.array([f["score"] for f in item["faces"]])
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
        picked = pick_evenly([r["path"] for r in rows], 2)
        video = score_frames(loaded.model, picked, SIZE, 32, "cpu").mean()
        assert item["score"] == pytest.approx(video, abs=1e-6)
        assert item["score_frames"] == [int(r["frame"]) for r in rows if r["path"] in picked]
        assert item["decision"] == ("live" if item["score"] >= 0.5 else "spoof")
        for f, r in zip(item["faces"], rows):
            assert f["decision"] == ("live" if f["score"] >= 0.5 else "spoof")
            assert f["box"] == pytest.approx([float(r[k]) for k in ("x1", "y1", "x2", "y2")], abs=0.01)


def test_folder_images_csv_threshold_and_saved_faces(project, demo, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(project)
    folder = tmp_path / "inputs"
    (folder / "sub").mkdir(parents=True)
    cv2.imwrite(str(folder / "astronaut.png"), ASTRONAUT)
    video = demo_videos(demo, "C")["replay"][0]
    (folder / "sub" / "clip.avi").write_bytes((demo / "CASIA-FASD" / video.relpath).read_bytes())
    (folder / "notes.txt").write_text("not media: skipped when walking a folder")
    faces_dir = tmp_path / "crops"

    rc, out, err = run_cli(["predict", str(folder), "--format", "csv", "--threshold", "0",
                            "--save-faces", str(faces_dir)], capsys)
    assert rc == 0, err
    assert "predict" in err  # the progress bar goes to stderr, stdout stays CSV
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == CSV_COLUMNS
    assert Path(rows[0]["input"]).name == "astronaut.png"  # sorted walk, recursive
    by_input: dict[str, list[dict]] = {}
    for r in rows:
        by_input.setdefault(Path(r["input"]).name, []).append(r)
    assert set(by_input) == {"astronaut.png", "clip.avi"}
    image = by_input["astronaut.png"]
    assert len(image) == 1 and image[0]["kind"] == "image" and image[0]["frame"] == "0"
    assert image[0]["score"] == image[0]["face_score"]  # an image's score is its face's
    clip = by_input["clip.avi"]
    assert clip[0]["kind"] == "video" and 1 <= len(clip) <= EXTRACT.frames_per_video
    assert all(r["decision"] == r["face_decision"] == "live" and r["threshold"] == "0.000000" for r in rows)
    for r in rows:  # --save-faces keeps the aligned crops the scores came from
        crop = cv2.imread(r["face_path"])
        assert crop is not None and crop.shape == (SIZE, SIZE, 3)


def test_bad_inputs_fail_alone_and_name_the_file(project, demo, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(project)
    good = demo / "MSU-MFSD" / demo_videos(demo, "M")["live"][0].relpath
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(os.urandom(2048))
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 128, np.uint8))  # readable, but no face
    tiny = tmp_path / "tiny.png"
    cv2.imwrite(str(tiny), cv2.resize(ASTRONAUT, (12, 12)))  # below MTCNN's smallest face: no pyramid at all
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    missing = tmp_path / "missing.jpg"
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)

    rc, out, err = run_cli(["predict", str(broken), str(good), str(blank), str(tiny), str(missing), str(empty),
                            str(fifo), "--no-progress", "--threshold", "1.01"], capsys)
    assert rc == 1
    items = {Path(i["input"]).name: i for i in json.loads(out)["inputs"]}
    assert items[good.name]["status"] == "ok" and items[good.name]["faces"]  # the others still ran
    # a threshold above every score makes every decision spoof
    assert items[good.name]["decision"] == "spoof"
    assert {f["decision"] for f in items[good.name]["faces"]} == {"spoof"}
    for name, words in (("broken.mp4", "cannot read"), ("wall.png", "no face found"), ("tiny.png", "no face found"),
                        ("missing.jpg", "no such file"), ("empty_folder", "no image or video"),
                        ("pipe.mp4", "not a regular file")):
        assert items[name]["status"] == "error" and words in items[name]["error"]
        assert name in items[name]["error"]
        assert any(name in line and words in line for line in err.splitlines()), err
    assert err.count("error:") == 6


def test_bad_checkpoints_exit_2(project, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(project)
    image = tmp_path / "astronaut.png"
    cv2.imwrite(str(image), ASTRONAUT)
    # another architecture: resnet18 weights under a resnet50 model_config
    ckpt = torch.load("models/OCI-M/best.pt", weights_only=True)
    ckpt["model_config"]["backbone"] = "resnet50"
    other = tmp_path / "other.pt"
    torch.save(ckpt, other)
    foreign = tmp_path / "foreign.pt"
    torch.save({"conv1.weight": torch.zeros(4)}, foreign)
    for args, words in (([f"--model={tmp_path / 'nope.pt'}"], "checkpoint not found"),
                        (["--protocol", "ICM-O"], "models/ICM-O/best.pt: checkpoint not found"),
                        ([f"--model={other}"], "do not fit the architecture"),
                        ([f"--model={foreign}"], "not a training checkpoint")):
        rc, out, err = run_cli(["predict", str(image), *args], capsys)
        assert rc == 2 and out == ""
        assert words in err and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    with pytest.raises(SystemExit) as exc:  # argparse: bad usage is 2 too
        main(["predict", str(image), "--model", "a.pt", "--protocol", "OCI-M"])
    assert exc.value.code == 2


@pytest.mark.slow  # a fresh interpreter importing torch: ~5 s
def test_python_dash_m_entry_point(project, demo):
    """The real `python -m mpfas predict` process: JSON on stdout, exit code, no chatter on stdout."""
    image = project / "face.png"
    cv2.imwrite(str(image), ASTRONAUT)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, "-m", "mpfas", "predict", str(image), "--device", "cpu"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["inputs"][0]["status"] == "ok" and doc["inputs"][0]["kind"] == "image"
    assert 0.0 <= doc["inputs"][0]["score"] <= 1.0


# ------------------------------------------------------------------ the checkpoint's preprocessing

# a params.yaml made with other align/extract/score settings than the checkpoint's faces
OTHER = {"align": {"crop_size": 96, "padding": 0.2, "detect_max_side": 320, "min_face_size": 40},
         "extract": {"frames_per_video": 2}, "score": {"faces_per_video": 0}}


def _params_file(project: Path, path: Path, changes: dict) -> Path:
    params = yaml.safe_load((project / "params.yaml").read_text())
    for section, values in changes.items():
        params[section].update(values)
    path.write_text(yaml.safe_dump(params))
    return path


def _meta_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "mpfas.models.checkpoint"]


def test_predict_applies_the_checkpoints_preprocessing(project, demo, tmp_path, monkeypatch, capsys, caplog):
    """A params.yaml edited after training changes nothing: the faces are cut as the checkpoint's
    were (crop size, padding, detection, sampled frames, frames per video score); one warning
    names each differing key with both values."""
    monkeypatch.chdir(project)
    image = tmp_path / "astronaut.png"
    cv2.imwrite(str(image), ASTRONAUT)
    video = demo / "MSU-MFSD" / demo_videos(demo, "M")["live"][0].relpath
    other = _params_file(project, tmp_path / "other.yaml", OTHER)
    args = ["predict", str(image), str(video), "--no-progress"]

    rc, out, err = run_cli([*args, "--params", "params.yaml"], capsys)
    assert rc == 0, err
    assert _meta_warnings(caplog) == []  # params.yaml matches the checkpoint: nothing to say
    rc, other_out, err = run_cli([*args, "--params", str(other), "--save-faces", str(tmp_path / "crops")], capsys)
    assert rc == 0, err

    expected, got = json.loads(out), json.loads(other_out)
    for ref, item in zip(expected["inputs"], got["inputs"]):
        assert item["score"] == ref["score"] and item["score_frames"] == ref["score_frames"]
        assert item["frames"] == ref["frames"] and [f["box"] for f in item["faces"]] == [f["box"] for f in ref["faces"]]
    assert got["inputs"][1]["frames"] == EXTRACT.frames_per_video and len(got["inputs"][1]["score_frames"]) == 2
    assert all(cv2.imread(f["face_path"]).shape == (SIZE, SIZE, 3) for i in got["inputs"] for f in i["faces"])
    (warning,) = _meta_warnings(caplog)
    for key, ours, theirs in (("align.crop_size", SIZE, 96), ("align.padding", 0.37, 0.2),
                              ("align.detect_max_side", 640, 320), ("align.min_face_size", 20, 40),
                              ("extract.frames_per_video", 3, 2), ("score.faces_per_video", 2, 0)):
        assert f"{key} checkpoint {ours!r} vs params.yaml {theirs!r}" in warning, warning
    assert "align.select" not in warning and len(warning.splitlines()) == 1
    assert got["model"]["preprocess"] == TRAINED_ON.as_dict()


def test_checkpoint_without_schema_version_asks_to_retrain(project, tmp_path, monkeypatch, capsys):
    """A checkpoint written before checkpoints had a schema version (the dict training wrote then):
    predict refuses it with one line that names the file and says to re-train; nothing is guessed."""
    monkeypatch.chdir(project)
    old = make_checkpoint(tmp_path / "old.pt", preprocess=None)
    image = tmp_path / "astronaut.png"
    cv2.imwrite(str(image), ASTRONAUT)
    rc, out, err = run_cli(["predict", str(image), "--model", str(old)], capsys)
    assert rc == 2 and out == ""
    last = err.strip().splitlines()[-1]
    assert str(old) in last and "before checkpoints had a schema version" in last and "re-train" in last, err



def test_temp_faces_of_a_killed_predict_are_swept(tmp_path, monkeypatch):
    """A SIGKILLed predict cannot clean its temp folder; the next one removes it (and only
    folders of processes that are gone)."""
    import tempfile

    from mpfas.serve.predict import sweep_dead_temp

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    gone, alive = tmp_path / f"mpfas-predict-{dead}-x1", tmp_path / f"mpfas-predict-{os.getpid()}-x2"
    for folder in (gone, alive):
        (folder / "face.png").parent.mkdir()
        (folder / "face.png").write_bytes(b"x")
    assert sweep_dead_temp("mpfas-predict-") == [gone]
    assert not gone.exists() and alive.exists()
