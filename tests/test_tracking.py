"""MLflow tracking: the DB follows the main repo root, runs resume by id, telemetry is off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import EXP_COPY
from helpers import param_defaults as dflt
from mpfas import tracking


def test_uri_resolves_to_main_root_from_a_dvc_exp_copy(repo, monkeypatch):
    exp = repo / EXP_COPY
    assert tracking.main_root(exp / "stages") == repo.resolve()
    monkeypatch.chdir(exp)
    assert tracking.tracking_uri() == f"sqlite:///{repo.resolve().as_posix()}/mlflow.db"
    assert tracking.artifact_location() == (repo.resolve() / "mlartifacts").as_uri()


def test_uri_outside_a_copy_and_env_override(repo, monkeypatch):
    (repo / "src/deep").mkdir(parents=True)
    assert tracking.tracking_uri(repo / "src/deep") == f"sqlite:///{repo.resolve().as_posix()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert tracking.tracking_uri(repo / EXP_COPY) == "http://tracking.example:5000"
    assert tracking.artifact_location(repo) is None  # the server decides


@pytest.mark.parametrize("order", ["mpfas.tracking, mlflow", "mlflow, mpfas.tracking"])
def test_telemetry_is_off(order):
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK")}
    code = (f"import {order}; from mlflow.telemetry import get_telemetry_client; "
            "import os; print(get_telemetry_client(), os.environ['MLFLOW_DISABLE_TELEMETRY'])")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["None", "true"]


def test_pipeline_run_tag(repo, monkeypatch):
    params_file = repo / "params.yaml"
    params_file.write_text("train: {}\n")
    a = tracking.pipeline_run_name(params_file, "abc123def4567890")
    assert a == tracking.pipeline_run_name(params_file, "abc123def4567890")  # same run, same group
    assert a.startswith("abc123def456-params-")
    params_file.write_text("train: {iterations: 5}\n")
    assert tracking.pipeline_run_name(params_file, "abc123def4567890") != a
    monkeypatch.setenv("DVC_EXP_NAME", "fuzzy-owl")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "f" * 40)
    assert tracking.pipeline_run_name(params_file, "abc") == "fuzzy-owl"
    tags = tracking.run_tags("OCI-M", dflt.params(), params_file, "abc")
    assert tags["protocol"] == "OCI-M" and tags["pretrained"] == "random-init"
    assert tags["dvc_exp_name"] == "fuzzy-owl" and tags["dvc_exp_baseline_rev"] == "f" * 40


def test_run_resumes_by_id_and_records_failure(repo, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(repo / EXP_COPY)
    params = tracking.flat_params(dflt.params())
    tracker = tracking.Tracker("exp")
    info = tracker.start({"protocol": "OCI-M", "mlflow.runName": "OCI-M"}, params)
    assert (repo / "mlflow.db").is_file() and not Path("mlflow.db").exists()
    assert info.tracking_uri == f"sqlite:///{repo.resolve().as_posix()}/mlflow.db"
    tracker.log_metrics({"loss": 1.0}, step=1)
    tracker.end("FAILED")
    client = MlflowClient(info.tracking_uri)
    assert client.get_run(info.run_id).info.status == "FAILED"
    exp = client.get_experiment(info.experiment_id)
    assert exp.artifact_location == (repo.resolve() / "mlartifacts").as_uri()

    again = tracking.Tracker("exp")
    resumed = again.start({"protocol": "OCI-M"}, {**params, "train.iterations": "999"}, resume_id=info.run_id)
    assert resumed.resumed and resumed.run_id == info.run_id
    run = client.get_run(info.run_id)
    assert run.info.status == "RUNNING"
    assert run.data.params["train.iterations"] == params["train.iterations"]  # first value kept
    assert run.data.tags["params_changed_on_resume"] == "train.iterations"
    again.log_metrics({"loss": 0.5}, step=2)
    again.end()
    assert client.get_run(info.run_id).info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(info.run_id, "loss")] == [1, 2]

    fresh = tracking.Tracker("exp").start({"protocol": "OCI-M"}, params, resume_id="0" * 32)
    assert not fresh.resumed and fresh.run_id != info.run_id


def test_metrics_kept_back_are_written_together_and_at_the_end(repo, monkeypatch):
    """``log_metrics(..., flush=False)`` (the training loop, between flushes) writes nothing yet;
    the next flushing call writes them all with their own steps and times, and ``end`` writes the rest."""
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(repo / EXP_COPY)
    tracker = tracking.Tracker("exp")
    info = tracker.start({"protocol": "OCI-M"}, tracking.flat_params(dflt.params()))
    client = MlflowClient(info.tracking_uri)
    tracker.log_metrics({"loss": 1.0}, step=1, flush=False)
    tracker.log_metrics({"loss": 0.9, "lr": 0.1}, step=2, flush=False)
    assert client.get_metric_history(info.run_id, "loss") == []
    tracker.log_metrics({"loss": 0.8}, step=3)
    history = client.get_metric_history(info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(1, 1.0), (2, 0.9), (3, 0.8)]
    assert [m.timestamp for m in history] == sorted(m.timestamp for m in history)
    assert [m.step for m in client.get_metric_history(info.run_id, "lr")] == [2]
    tracker.log_metrics({"loss": 0.7}, step=4, flush=False)
    tracker.end()
    assert [m.step for m in client.get_metric_history(info.run_id, "loss")] == [1, 2, 3, 4]


# ---------------------------------------------------------------- robustness (issue 11, item 6)


def _started(root: Path, monkeypatch, empty_db: Path) -> tracking.Tracker:
    """A real run in ``root``'s default tracking DB."""
    import shutil

    shutil.copy(empty_db, root / "mlflow.db")
    monkeypatch.chdir(root)
    tracker = tracking.Tracker("exp")
    tracker.start({"protocol": "OCI-M", "mlflow.runName": "OCI-M"}, {"train.iterations": "4"})
    return tracker


def _artifact_dir(tracker: tracking.Tracker) -> Path:
    from mlflow.utils.file_utils import local_file_uri_to_path

    return Path(local_file_uri_to_path(tracker.client.get_run(tracker.run_id).info.artifact_uri))


def test_an_artifact_write_failing_for_a_moment_is_retried(repo, monkeypatch, empty_db):
    """A momentary OSError while copying an artifact (here: a file sits where its folder goes,
    removed a second later) is retried, and the artifact arrives."""
    import threading

    tracker = _started(repo, monkeypatch, empty_db)
    blocker = _artifact_dir(tracker) / "checkpoint"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("in the way for a moment\n")
    threading.Timer(1.0, blocker.unlink).start()
    (repo / "run.json").write_text('{"run_id": "x"}\n')
    tracker.log_artifact(repo / "run.json", "checkpoint")
    assert (blocker / "run.json").read_text() == '{"run_id": "x"}\n'
    assert [a.path for a in tracker.client.list_artifacts(tracker.run_id, "checkpoint")] == ["checkpoint/run.json"]


def test_a_persistent_failure_names_the_run_and_what_was_not_logged(repo, monkeypatch, empty_db):
    tracker = _started(repo, monkeypatch, empty_db)
    monkeypatch.setattr(tracking.store, "RETRY_SECONDS", 1.0)
    blocker = _artifact_dir(tracker) / "config"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("always in the way\n")
    (repo / "params.yaml").write_text("train: {}\n")
    with pytest.raises(tracking.TrackingError) as failed:
        tracker.log_artifact(repo / "params.yaml", "config")
    message = str(failed.value)
    assert len(message.splitlines()) == 1
    assert f"MLflow run {tracker.run_id} at {tracker.uri}: could not log artifact" in message
    assert f"{(repo / 'params.yaml').as_posix()} (into config)" in message

    tracker.client.delete_run(tracker.run_id)  # e.g. deleted in the UI while training
    with pytest.raises(tracking.TrackingError, match=rf"MLflow run {tracker.run_id} .*could not log metrics "
                       r"loss, lr at step 7 \(MlflowException: .*deleted"):
        tracker.log_metrics({"lr": 0.1, "loss": 1.0}, step=7)
    tracker.end("FAILED")  # called while that error propagates: must not replace it


def _older_revision() -> str:
    """The revision before the installed MLflow's newest schema, from MLflow's own migrations."""
    import mlflow.store
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(str(Path(mlflow.store.__file__).parent / "db_migrations"))
    return scripts.get_revision(scripts.get_current_head()).down_revision


@pytest.mark.parametrize("age", ["older", "newer"])
def test_a_database_of_another_schema_is_refused_with_the_fix(repo, monkeypatch, empty_db, age):
    """A real MLflow DB whose alembic revision is older than the installed MLflow's (or
    unknown to it): training refuses with the exact fix instead of running untracked."""
    import shutil
    import sqlite3

    shutil.copy(empty_db, repo / "mlflow.db")
    revision = _older_revision() if age == "older" else "0123456789ab"
    with sqlite3.connect(repo / "mlflow.db") as db:
        db.execute("UPDATE alembic_version SET version_num = ?", (revision,))
    monkeypatch.chdir(repo)
    uri = f"sqlite:///{repo.resolve().as_posix()}/mlflow.db"
    before = (repo / "mlflow.db").read_bytes()
    with pytest.raises(tracking.TrackingSchemaError) as refused:
        tracking.open_run("exp", {"protocol": "OCI-M"}, {})
    assert (repo / "mlflow.db").read_bytes() == before  # refused, not migrated or written
    message = str(refused.value)
    assert len(message.splitlines()) == 1 and f"revision {revision}" in message and "writable" not in message
    if age == "older":
        assert message.endswith(f"back it up, then run: mlflow db upgrade {uri}")
    else:
        assert "written by a newer MLflow" in message and "db upgrade" not in message

    (repo / "run.json").write_text('{"run_id": "0123"}\n')
    with pytest.raises(tracking.TrackingSchemaError):  # evaluation refuses too, not "run not found"
        tracking.log_evaluation(repo / "run.json", {"video": {"auc": 1.0}}, [])


@pytest.mark.parametrize("layout", ["nested git checkout", "parent folder under git"])
def test_the_default_db_is_at_the_repository_root_only(repo, tmp_path, layout):
    """Only the DVC root (``.dvc``) counts, not any folder holding ``.git``."""
    if layout == "nested git checkout":  # e.g. a vendored submodule inside the repository
        cwd = repo / "vendor" / "lib"
        (cwd / ".git").mkdir(parents=True)
        expected = repo
    else:  # a folder without DVC below a git-tracked home directory or monorepo
        (tmp_path / "home" / ".git").mkdir(parents=True)
        cwd = tmp_path / "home" / "scratch" / "project"
        cwd.mkdir(parents=True)
        expected = cwd
    assert tracking.main_root(cwd) == expected.resolve()
    assert tracking.tracking_uri(cwd) == f"sqlite:///{expected.resolve().as_posix()}/mlflow.db"


def test_a_repository_path_with_special_characters_tracks(tmp_path, monkeypatch, empty_db):
    """Spaces, ``#``, ``%``, ``?`` and non-ASCII in the repository path: the run's params,
    metrics and artifact land in that repository's DB and artifact folder, nowhere else."""
    import sqlite3

    from mlflow.tracking import MlflowClient

    root = tmp_path / "r é #%41?x"
    (root / ".dvc").mkdir(parents=True)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracker = _started(root, monkeypatch, empty_db)
    tracker.log_metrics({"loss": 0.5}, step=3)
    (root / "params.yaml").write_text("train: {iterations: 4}\n")
    tracker.log_artifact(root / "params.yaml", "config")
    tracker.end()

    with sqlite3.connect(root / "mlflow.db") as db:  # the run is in this repository's DB
        assert db.execute("SELECT status FROM runs WHERE run_uuid = ?", (tracker.run_id,)).fetchall() == [
            ("FINISHED",)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [root.name]  # no stray DB or folder beside it
    client = MlflowClient(tracking.tracking_uri())
    run = client.get_run(tracker.run_id)
    assert run.data.params["train.iterations"] == "4" and run.data.metrics["loss"] == 0.5
    assert run.info.status == "FINISHED"
    assert [a.path for a in client.list_artifacts(tracker.run_id, "config")] == ["config/params.yaml"]
    copy = client.download_artifacts(tracker.run_id, "config/params.yaml", str(tmp_path / "back"))
    assert Path(copy).read_text() == "train: {iterations: 4}\n"
    assert _artifact_dir(tracker).is_relative_to(root.resolve() / "mlartifacts")


def test_process_tracking_uri_gives_back_the_uri_and_the_environment(monkeypatch, tmp_path):
    """mlflow.set_tracking_uri also writes MLFLOW_TRACKING_URI: both must come back as they were,
    or a later store lookup in the same process reads the wrong database."""
    import os

    import mlflow

    from mpfas.tracking.store import process_tracking_uri

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'a.db'}")
    before = mlflow.get_tracking_uri()
    with process_tracking_uri(f"sqlite:///{tmp_path / 'b.db'}"):
        assert mlflow.get_tracking_uri().endswith("b.db") and os.environ["MLFLOW_TRACKING_URI"].endswith("b.db")
    assert os.environ["MLFLOW_TRACKING_URI"].endswith("a.db") and mlflow.get_tracking_uri() == before


# ---------------------------------------------------------------- a locked DB

HOLD = 21.5  # seconds the test holds the DB lock: past MLflow's 20 s busy timeout


@pytest.mark.slow  # holds the lock past MLflow's own 20 s busy wait
def test_tracking_waits_out_a_locked_db(tmp_path, monkeypatch, caplog):
    """Another process holding the SQLite write lock longer than MLflow's own busy wait
    (``PRAGMA busy_timeout = 20000`` in MLflow 3): the metrics still land (retried) instead of
    the stage failing with 'database is locked'. ~22 s."""
    import sqlite3
    import threading

    from mlflow.tracking import MlflowClient

    from mpfas import tracking

    db = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db.as_posix()}")
    tracker = tracking.Tracker("locked")
    info = tracker.start({"protocol": "OCI-M"}, {"train.iterations": "3"})
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")  # what a concurrent writer's transaction looks like
    release = threading.Timer(HOLD, lambda: holder.execute("COMMIT"))
    release.start()
    try:
        t0 = time.monotonic()
        with caplog.at_level("WARNING", logger="mpfas.tracking"):
            tracker.log_metrics({"loss": 0.5}, step=1)
        waited = time.monotonic() - t0
    finally:
        release.join()
        holder.close()
    assert waited >= HOLD - 0.5  # it really had to wait for the lock
    assert any("retrying" in r.getMessage() and "locked" in r.getMessage() for r in caplog.records)
    tracker.end()
    client = MlflowClient(info.tracking_uri)
    assert [m.value for m in client.get_metric_history(info.run_id, "loss")] == [0.5]
    assert client.get_run(info.run_id).info.status == "FINISHED"


# ---------------------------------------------------------------- a copied repository

def test_a_copied_repository_never_writes_into_the_original(repo, tmp_path, monkeypatch, empty_db):
    """MLflow stores artifact locations as absolute paths: in a copy of the repository (with its
    mlflow.db), training and evaluation refuse in one line instead of logging into the original."""
    import shutil

    shutil.copy(empty_db, repo / "mlflow.db")
    monkeypatch.chdir(repo)
    tracker, info = tracking.open_run("exp", {"protocol": "OCI-M"}, {})
    tracker.log_metrics({"loss": 1.0}, step=1)
    tracker.end()
    copy = tmp_path / "copy"
    shutil.copytree(repo, copy)
    original = sorted(p.relative_to(repo) for p in repo.rglob("*"))
    monkeypatch.chdir(copy)
    with pytest.raises(tracking.StoreMovedError) as refused:
        tracking.open_run("exp", {"protocol": "OCI-M"}, {})
    message = str(refused.value)
    assert len(message.splitlines()) == 1 and str((repo / "mlartifacts").resolve()) in message
    (copy / "run.json").write_text(json.dumps({"run_id": info.run_id}))
    with pytest.raises(tracking.StoreMovedError):  # evaluation adds to the copied run: refused too
        tracking.log_evaluation(copy / "run.json", {"video": {"auc": 1.0}}, [])
    assert sorted(p.relative_to(repo) for p in repo.rglob("*")) == original
    monkeypatch.chdir(repo)  # the original itself goes on
    tracking.open_run("exp", {"protocol": "OCI-M"}, {})[0].end()
