"""Faults and bad inputs across the pipeline (issue 7).

* ``dvc repro`` SIGKILLed (whole process group) during extract, align, train (before and
  after its first checkpoint) and evaluate, then rerun to completion: compared with a
  never-interrupted copy with the same params (which is also the determinism check).
* Bad inputs the unit suites do not cover: rotated and variable-frame-rate MP4s (real
  files: OpenCV writes the video, the ``tkhd`` matrix / ``stts`` table are then edited),
  truncated and foreign-pickle checkpoints given to evaluate and predict, and an MLflow
  store that cannot be written.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from helpers import param_defaults as dflt
from helpers.foreign_pickle import save_foreign
from helpers.kills import in_stage, kill_when, stages_in_log, temp_files
from helpers.pipeline_copy import REPO, TINY, copy_repo, dvc, env
from helpers.stage_cmd import stage_argv
from mpfas.preprocess.jobs import MARKER

PROTOCOL = "OCI-M"
# a few more iterations, a checkpoint each, validation every 2: a kill can land after the
# first checkpoint and after the first best.pt
FAULT_PARAMS = copy.deepcopy(TINY)
FAULT_PARAMS["train"].update({"iterations": 4, "eval_every": 2})
FAULT_PARAMS["runtime"].update({"checkpoint_every": 1})
# metrics fields that legitimately differ between two runs of the same params: ids, timing,
# and resume bookkeeping (videos done by this attempt vs kept from a killed one)
RUN_SPECIFIC = {"run_id", "seconds_per_iteration", "resumed_from", "processed", "skipped"}


# ---------------------------------------------------------------- helpers

def _done(folder: Path) -> list[Path]:
    """Video folders that hold a finished-video marker (what a rerun must skip)."""
    return sorted(p.parent for p in folder.rglob(MARKER)) if folder.is_dir() else []


def _plant_temp(folder: Path, name: str) -> Path:
    """A stale temp file, named as ``atomic`` names them, where only the sweep can remove it
    (a finished video's folder, or the models folder): the rerun must delete it."""
    path = folder / f".{name}.999999.tmp"
    path.write_bytes(b"half a write")
    return path


def _any_file(folder: Path, pattern: str) -> bool:
    return folder.is_dir() and next(folder.rglob(pattern), None) is not None


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _json(repo: Path, rel: str) -> dict:
    return json.loads((repo / rel).read_text())


def _drop(obj, keys=RUN_SPECIFIC):
    if isinstance(obj, dict):
        return {k: _drop(v, keys) for k, v in obj.items() if k not in keys}
    if isinstance(obj, list):
        return [_drop(v, keys) for v in obj]
    return obj


def _runs(repo: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{(repo / 'mlflow.db').as_posix()}")
    exps = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(exps, filter_string=f"tags.protocol = '{PROTOCOL}'")


# ---------------------------------------------------------------- the two copies

@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Never interrupted."""
    repo = tmp_path_factory.mktemp("ref")
    copy_repo(repo, FAULT_PARAMS)
    result = dvc(repo, "repro")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return repo


@pytest.fixture(scope="module")
def recovered(tmp_path_factory):
    """SIGKILLed during each stage in turn, then ``dvc repro`` to completion."""
    repo = tmp_path_factory.mktemp("killed")
    copy_repo(repo, FAULT_PARAMS)
    models = repo / "models" / PROTOCOL
    kills: dict[str, dict] = {}

    planted: dict[str, Path] = {}

    def left() -> list[str]:  # planted temp files that the reruns so far left behind
        return [p.as_posix() for p in planted.values() if p.exists()]

    def plant(kill: str, folder: Path, name: str) -> None:  # and list the temp files before the sweep
        planted[kill] = _plant_temp(folder, name)
        kills[kill].update(planted=planted[kill].relative_to(repo).as_posix(), temp_before=temp_files(repo))

    frames, faces = repo / "data/frames/O", repo / "data/faces"
    kills["extract"] = kill_when(repo, "extract", lambda: _any_file(frames, MARKER), poll=0.02)
    kills["extract"]["done"] = len(_done(frames))
    plant("extract", _done(frames)[0], "f00000.png")
    kills["align"] = kill_when(repo, "align", lambda: _any_file(faces, MARKER), poll=0.05)
    kills["align"]["left"] = left()
    aligning = faces / kills["align"]["stage"].split("@")[-1]
    kills["align"]["done"] = len(_done(aligning))
    plant("align", _done(aligning)[0], "f00000.png")
    # after the MLflow run started, before any last.pt: the retry cannot resume it
    kills["train-early"] = kill_when(repo, "train-early", lambda: (models / "run.json").is_file(), poll=0.02)
    kills["train-early"]["left"] = left()
    kills["train-early"]["run_id"] = _json(repo, f"models/{PROTOCOL}/run.json")["run_id"]
    assert not (models / "last.pt").exists(), "killed too late: last.pt already written"
    plant("train-early", models, "last.pt")

    def checkpointed() -> bool:  # last.pt past the first validation (and best.pt)
        try:
            return torch.load(models / "last.pt", weights_only=True)["iteration"] >= 2
        except (OSError, RuntimeError, KeyError, EOFError):
            return False

    kills["train"] = kill_when(repo, "train", checkpointed, poll=0.5)
    kills["train"]["left"] = left()
    last = torch.load(models / "last.pt", weights_only=True)
    kills["train"].update(run_id=last["run_id"], iteration=last["iteration"])
    kills["evaluate"] = kill_when(repo, "evaluate", in_stage(repo, "evaluate", "evaluate@"))

    start = time.monotonic()
    final = dvc(repo, "repro")
    assert final.returncode == 0, final.stdout[-4000:] + final.stderr[-4000:]
    ran, unchanged = stages_in_log(final.stdout + final.stderr)
    kills["final"] = {"seconds": time.monotonic() - start, "ran": ran, "unchanged": unchanged}
    (repo.parent / "kills.json").write_text(json.dumps(kills, indent=2, default=str))
    return repo, kills


# ---------------------------------------------------------------- kill and rerun

@pytest.mark.heavy
@pytest.mark.slow
@pytest.mark.parametrize("stage", ["extract", "align", "train-early", "train", "evaluate"])
def test_kill_lands_in_the_stage(recovered, stage):
    _, kills = recovered
    assert kills[stage]["rc"] == -signal.SIGKILL
    want = {"train-early": "train", "extract": "extract@O"}.get(stage, stage)
    assert kills[stage]["stage"].startswith(want), kills[stage]


@pytest.mark.heavy
@pytest.mark.slow
def test_rerun_succeeds_without_temp_files_or_a_second_run(recovered):
    repo, kills = recovered
    for kill in ("extract", "align", "train-early"):  # a stale temp file in each swept folder
        assert kills[kill]["planted"] in kills[kill]["temp_before"], kills[kill]
    assert temp_files(repo) == []
    # each planted temp file is gone by the next kill: the stage that owns its folder ran again first
    assert [kills[stage]["left"] for stage in ("align", "train-early", "train")] == [[], [], []], kills
    # the last kill hit evaluate: only it and what follows ran again
    assert kills["final"]["ran"] == [f"evaluate@{PROTOCOL}", "report"], kills["final"]
    status = dvc(repo, "status")
    assert status.returncode == 0 and "changed" not in status.stdout, status.stdout


@pytest.mark.heavy
@pytest.mark.slow
def test_finished_stages_are_skipped_by_later_reruns(recovered):
    """DVC does not rerun what an earlier attempt finished: extract after the align kill,
    everything up to evaluate in the final rerun."""
    _, kills = recovered
    extracts = {f"extract@{code}" for code in "OCIM"}
    assert "extract@O" in kills["align"]["ran"]  # the killed extract is finished first
    assert not extracts & set(kills["train-early"]["ran"])
    assert extracts <= set(kills["train-early"]["unchanged"]), kills["train-early"]
    before_evaluate = extracts | {f"align@{code}" for code in "OCIM"} | {"raw", "manifests", f"train@{PROTOCOL}"}
    assert before_evaluate <= set(kills["final"]["unchanged"]), kills["final"]


@pytest.mark.heavy
@pytest.mark.slow
def test_killed_stages_resume_where_they_stopped(recovered):
    """The rerun of a killed stage skips exactly the videos (iterations) finished before the kill."""
    repo, kills = recovered
    extract = _json(repo, "metrics/extract_O.json")
    done = kills["extract"]["done"]
    assert done >= 1 and (extract["skipped"], extract["processed"]) == (done, extract["videos"] - done), extract
    align = _json(repo, f"metrics/align/{kills['align']['stage'].split('@')[-1]}.json")
    done = kills["align"]["done"]
    assert done >= 1 and (align["skipped"], align["processed"]) == (done, align["videos"] - done), align
    assert _json(repo, f"metrics/train_{PROTOCOL}.json")["resumed_from"] == kills["train"]["iteration"]


@pytest.mark.heavy
@pytest.mark.slow
@pytest.mark.parametrize("folder", ["data/frames", "data/faces", "data/manifests", "data/index"])
def test_data_equal_an_uninterrupted_run(reference, recovered, folder):
    repo, _ = recovered
    got, want = _tree(repo / folder), _tree(reference / folder)
    assert sorted(got) == sorted(want)
    differ = [k for k in want if got[k] != want[k]]
    assert differ == [], differ[:10]


@pytest.mark.heavy
@pytest.mark.slow
def test_metrics_equal_an_uninterrupted_run(reference, recovered):
    """Also the determinism check: same params, two copies, same numbers (run ids and
    timings aside); one copy was killed five times on the way."""
    repo, _ = recovered
    names = sorted(p.relative_to(reference / "metrics").as_posix() for p in (reference / "metrics").rglob("*.json"))
    assert names == sorted(p.relative_to(repo / "metrics").as_posix() for p in (repo / "metrics").rglob("*.json"))
    assert f"train_{PROTOCOL}.json" in names and f"evaluate/{PROTOCOL}.json" in names
    differ = [n for n in names if _drop(_json(repo, f"metrics/{n}")) != _drop(_json(reference, f"metrics/{n}"))]
    assert differ == [], differ
    for rel in (f"data/scores/{PROTOCOL}.csv", f"plots/roc/{PROTOCOL}.json", "reports/summary.md"):
        assert (repo / rel).read_bytes() == (reference / rel).read_bytes(), rel


@pytest.mark.heavy
@pytest.mark.slow
@pytest.mark.parametrize("name", ["best.pt", "last.pt"])
def test_weights_equal_an_uninterrupted_run(reference, recovered, name):
    repo, _ = recovered
    got = torch.load(repo / "models" / PROTOCOL / name, weights_only=True)
    want = torch.load(reference / "models" / PROTOCOL / name, weights_only=True)
    assert got["iteration"] == want["iteration"]
    assert got["model"].keys() == want["model"].keys()
    differ = [k for k in want["model"] if not torch.equal(got["model"][k], want["model"][k])]
    assert differ == [], differ[:5]


@pytest.mark.heavy
@pytest.mark.slow
def test_mlflow_runs_are_resumed_or_ended(recovered):
    repo, kills = recovered
    runs = {r.info.run_id: r for r in _runs(repo)}
    final_id = _json(repo, f"models/{PROTOCOL}/run.json")["run_id"]
    assert final_id == kills["train"]["run_id"]  # killed after a checkpoint: the same run goes on
    assert runs[final_id].info.status == "FINISHED"
    assert runs[final_id].data.tags.get("resumed") == "true"
    early = runs[kills["train-early"]["run_id"]]  # killed before any checkpoint: nothing to resume
    assert early.info.run_id != final_id
    assert early.info.status == "FAILED" and "stale" in early.data.tags["ended_by"]
    assert [r.info.run_id for r in runs.values() if r.info.status == "RUNNING"] == []


# ---------------------------------------------------------------- odd videos

def _boxes(data: bytes, start: int, end: int):
    i = start
    while i + 8 <= end:
        size, kind = struct.unpack(">I4s", data[i:i + 8])
        if size < 8:
            return
        yield i, size, kind
        i += size


def _find(data: bytes, path: list[bytes], start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Offsets and sizes of the MP4 boxes along ``path`` (e.g. moov/trak/tkhd)."""
    for off, size, kind in _boxes(data, start, len(data) if end is None else end):
        if kind == path[0]:
            if len(path) == 1:
                return [(off, size)]
            sub = _find(data, path[1:], off + 8, off + size)
            if sub:
                return [(off, size), *sub]
    return []


def _numbered_mp4(path: Path, frames: int = 17) -> Path:
    """A real MP4 (OpenCV, mp4v): frame i shows i in large digits and a red band on the left."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 12, (320, 240))
    assert writer.isOpened()
    for i in range(frames):
        img = np.full((240, 320, 3), 90, np.uint8)
        img[:, :40] = (0, 0, 255)
        cv2.putText(img, str(i), (60, 170), cv2.FONT_HERSHEY_SIMPLEX, 4, (255, 255, 255), 8)
        writer.write(img)
    writer.release()
    return path


def _rotate_90(src: Path, dst: Path) -> Path:
    """Set the track's display matrix (``tkhd``) to a 90 degree rotation, as phones do."""
    d = bytearray(src.read_bytes())
    tkhd = _find(d, [b"moov", b"trak", b"tkhd"])[-1][0]
    assert d[tkhd + 8] == 0, "tkhd version 1 not handled"
    struct.pack_into(">9i", d, tkhd + 48, 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    dst.write_bytes(d)
    return dst


def _variable_rate(src: Path, dst: Path, entries: list[tuple[int, int]]) -> Path:
    """Rewrite the ``stts`` table (frame durations) with ``entries`` of (count, delta) and the
    durations to match: a variable-frame-rate file (moov is after mdat, so offsets hold)."""
    d = bytearray(src.read_bytes())
    path = _find(d, [b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stts"])
    off, size = path[-1]
    body = struct.pack(">II", 0, len(entries)) + b"".join(struct.pack(">II", n, t) for n, t in entries)
    new = struct.pack(">I4s", 8 + len(body), b"stts") + body
    d[off:off + size] = new
    for o, s in path[:-1]:
        struct.pack_into(">I", d, o, s + len(new) - size)
    total = sum(n * t for n, t in entries)
    mdhd = _find(d, [b"moov", b"trak", b"mdia", b"mdhd"])[-1][0]
    scale = struct.unpack(">I", d[mdhd + 20:mdhd + 24])[0]
    struct.pack_into(">I", d, mdhd + 24, total)
    mvhd = _find(d, [b"moov", b"mvhd"])[-1][0]
    movie = total * struct.unpack(">I", d[mvhd + 20:mvhd + 24])[0] // scale
    struct.pack_into(">I", d, mvhd + 24, movie)
    struct.pack_into(">I", d, _find(d, [b"moov", b"trak", b"tkhd"])[-1][0] + 28, movie)
    elst = _find(d, [b"moov", b"trak", b"edts", b"elst"])
    if elst:
        struct.pack_into(">I", d, elst[-1][0] + 16, movie)
    dst.write_bytes(d)
    return dst


def _extract(tmp_path: Path, names: list[str], decode: str) -> dict[str, list[dict]]:
    from mpfas.data import Label, VideoRecord
    from mpfas.preprocess.extract import run_extract

    records = [VideoRecord("O", n, subject=n, split="train", label=Label.LIVE) for n in names]
    out = tmp_path / f"frames-{decode}"
    cfg = dflt.extract(frames_per_video=5, max_failure_rate=0.0, decode=decode)
    run_extract(records, tmp_path / "raw", out, cfg, rel_to=tmp_path, dataset="O", progress=False)
    import csv

    with (out / "frames.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {n: [r for r in rows if r["video_id"] == f"O/{n}"] for n in names}


def test_rotated_and_variable_rate_videos_extract_all_frames_upright(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    plain = _numbered_mp4(raw / "plain.mp4")
    rotated = _rotate_90(plain, raw / "rotated.mp4")
    _variable_rate(plain, raw / "vfr.mp4", [(8, 1024), (1, 8192), (8, 1024)])  # one 0.67 s gap
    cap = cv2.VideoCapture(str(rotated), cv2.CAP_FFMPEG)
    if cap.get(cv2.CAP_PROP_ORIENTATION_META) != 90:
        pytest.skip("this OpenCV/FFmpeg build does not read the MP4 rotation matrix")
    cap.release()
    names = ["plain.mp4", "rotated.mp4", "vfr.mp4"]
    seek, seq = _extract(tmp_path, names, "seek"), _extract(tmp_path, names, "sequential")
    for name in names:  # every frame counted; seeking on a VFR file lands on the frames decoding gives
        assert [int(r["frame"]) for r in seek[name]] == [0, 4, 8, 12, 16], name
        for a, b in zip(seek[name], seq[name]):
            assert np.array_equal(cv2.imread(str(tmp_path / a["path"])), cv2.imread(str(tmp_path / b["path"])))
    upright = cv2.imread(str(tmp_path / seek["plain.mp4"][2]["path"]))
    turned = cv2.imread(str(tmp_path / seek["rotated.mp4"][2]["path"]))
    assert upright.shape == (240, 320, 3) and turned.shape == (320, 240, 3)  # display orientation
    # the red band (left edge as stored) is on top once turned 90 degrees clockwise
    assert turned[:20, :, 2].mean() > 200 and turned[-20:, :, 2].mean() < 150
    assert np.abs(cv2.rotate(upright, cv2.ROTATE_90_CLOCKWISE).astype(int) - turned).mean() < 8
    vfr_frames = [cv2.imread(str(tmp_path / r["path"])) for r in seek["vfr.mp4"]]
    plain_frames = [cv2.imread(str(tmp_path / r["path"])) for r in seek["plain.mp4"]]
    assert all(np.array_equal(a, b) for a, b in zip(vfr_frames, plain_frames))  # same pictures, other timing


# ---------------------------------------------------------------- bad checkpoints

PAYLOAD_RAN = "payload-ran"


def _assert_refused(kind: str, message: str, folder: Path) -> None:
    """A foreign pickle is refused by weights_only before any of its code runs."""
    if kind == "foreign":
        assert not (folder / PAYLOAD_RAN).exists(), "the foreign checkpoint's pickled code ran"
        assert "weights_only" in message, message


def _bad_checkpoints(folder: Path, good: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    data = good.read_bytes()
    truncated = folder / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    # torch's zip format with a payload that creates PAYLOAD_RAN if unpickled: weights_only must refuse it
    foreign = save_foreign(folder / "foreign.pt", folder / PAYLOAD_RAN, model_config={})
    return {"truncated": truncated, "foreign": foreign}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A well-formed best.pt (untrained tiny model) whose bytes are then damaged."""
    from mpfas.models import build_model

    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    cfg = dflt.model(input_size=64)
    import dataclasses
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(cfg)
    from mpfas.models.checkpoint import Checkpoint, Preprocess, save

    save(Checkpoint(kind="best", model=model.state_dict(), model_config=dataclasses.asdict(cfg),
                    preprocess=Preprocess.from_params(dflt.params()), protocol=PROTOCOL, iteration=1,
                    selection="source_val", val={}, threshold=None, threshold_rule="none", run_id="",
                    fingerprint=""), path)
    return path


@pytest.mark.parametrize("kind", ["truncated", "foreign"])
def test_bad_checkpoint_to_evaluate_stage(tmp_path, trained, kind):
    work = tmp_path / "w"
    bad = _bad_checkpoints(work / "bad", trained)[kind]
    (work / "models" / PROTOCOL).mkdir(parents=True)
    os.replace(bad, work / "models" / PROTOCOL / "best.pt")
    (work / "params.yaml").write_bytes((REPO / "params.yaml").read_bytes())
    proc = subprocess.run([sys.executable, *stage_argv("evaluate", PROTOCOL)], cwd=work, env=env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and f"models/{PROTOCOL}/best.pt" in last, proc.stderr[-2000:]
    assert "not a readable mpfas checkpoint" in last and "Traceback" not in proc.stderr
    _assert_refused(kind, last, work / "bad")


@pytest.mark.parametrize("kind", ["truncated", "foreign"])
def test_bad_checkpoint_to_predict(tmp_path, trained, kind):
    bad = _bad_checkpoints(tmp_path / "bad", trained)[kind]
    image = tmp_path / "face.png"
    cv2.imwrite(str(image), np.full((64, 64, 3), 128, np.uint8))
    (tmp_path / "params.yaml").write_bytes((REPO / "params.yaml").read_bytes())
    e = {**env(), "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, "-m", "mpfas", "predict", str(image), "--model", str(bad),
                           "--device", "cpu"], cwd=tmp_path, env=e, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr[-2000:]
    assert proc.stderr.startswith("error: ") and str(bad) in proc.stderr, proc.stderr[-2000:]
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    _assert_refused(kind, proc.stderr, tmp_path / "bad")


# ---------------------------------------------------------------- unwritable MLflow store

@pytest.mark.heavy
@pytest.mark.slow
def test_training_survives_an_unwritable_mlflow_store(reference, tmp_path):
    """The tracking DB's folder is a regular file (unwritable even for root): training warns
    loudly, says what to fix, and still writes models/ and metrics/ for DVC."""
    work = tmp_path / "w"
    for rel in ("params.yaml", f"data/manifests/{PROTOCOL}.csv"):
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_bytes((reference / rel).read_bytes())
    (work / "data/faces").symlink_to(reference / "data/faces")
    (tmp_path / "not-a-dir").write_text("a file where the DB folder should be\n")
    e = {**env(), "MLFLOW_TRACKING_URI": f"sqlite:///{(tmp_path / 'not-a-dir/mlflow.db').as_posix()}"}
    proc = subprocess.run([sys.executable, *stage_argv("train", PROTOCOL)], cwd=work, env=e,
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "cannot be used" in proc.stderr and "MLFLOW_TRACKING_URI" in proc.stderr
    assert "not-a-dir/mlflow.db" in proc.stderr
    summary = json.loads((work / f"metrics/train_{PROTOCOL}.json").read_text())
    assert summary["run_id"] is None and summary["iterations"] == 4
    assert _drop(summary) == _drop(_json(reference, f"metrics/train_{PROTOCOL}.json"))  # same training
    assert json.loads((work / f"models/{PROTOCOL}/run.json").read_text())["run_id"] is None
    assert (work / f"models/{PROTOCOL}/best.pt").is_file() and (work / f"models/{PROTOCOL}/last.pt").is_file()
    # evaluate on top of it: no MLflow run to log to is a warning, not a failure
    proc = subprocess.run([sys.executable, *stage_argv("evaluate", PROTOCOL)], cwd=work, env=e,
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "has no MLflow run" in proc.stderr
    assert (work / f"metrics/evaluate/{PROTOCOL}.json").is_file()


# ---------------------------------------------------------------- stale MLflow runs (unit)

def test_stale_running_runs_of_dead_processes_are_marked_failed(tmp_path, monkeypatch):
    """Only this protocol's RUNNING runs whose process is gone on this host are closed."""
    import socket

    from mlflow.tracking import MlflowClient

    from mpfas.tracking import Tracker

    uri = f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = MlflowClient(uri)
    exp = client.create_experiment("faults", artifact_location=(tmp_path / "art").as_uri())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    here = socket.gethostname()
    cases = {"dead": (PROTOCOL, here, dead.pid), "alive": (PROTOCOL, here, os.getpid()),
             "other_host": (PROTOCOL, here + "-elsewhere", dead.pid), "other_protocol": ("OMI-C", here, dead.pid)}
    ids = {name: client.create_run(exp, tags={"protocol": p, "host": h, "pid": str(pid)}).info.run_id
           for name, (p, h, pid) in cases.items()}
    ids["untagged"] = client.create_run(exp, tags={"protocol": PROTOCOL}).info.run_id  # from before the pid tag
    tracker = Tracker("faults")
    info = tracker.start({"protocol": PROTOCOL, "host": here, "pid": str(os.getpid())}, {})
    status = {name: client.get_run(i).info.status for name, i in ids.items()}
    assert status == {"dead": "FAILED", "alive": "RUNNING", "other_host": "RUNNING",
                      "other_protocol": "RUNNING", "untagged": "RUNNING"}
    assert info.run_id in client.get_run(ids["dead"]).data.tags["ended_by"]
    assert client.get_run(info.run_id).info.status == "RUNNING"
    tracker.end()
