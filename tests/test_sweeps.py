"""A real `dvc exp run --queue` sweep (run by tests/test_pipeline.py on its tiny pipeline copy).

Queued experiments run in copies in DVC's temporary experiments folder, two at a time here, yet every
training run must land in the copy's *root* ``mlflow.db`` (no lost DB inside the temp
copy, no "database is locked"), tagged with its DVC experiment name and carrying the
swept value.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pipeline_copy import dvc

VALUES = ("3", "4")  # unlike every train.inner_loops the pipeline tests ran before, so both train
HOLD = 21.5  # seconds the test holds the DB lock: past MLflow's 20 s busy timeout


def _queue_states(text: str) -> list[str]:
    """The Status column of `dvc queue status` (last word of each task row)."""
    states = ("Queued", "Running", "Success", "Failed")
    return [line.split()[-1] for line in text.splitlines()
            if len(line.split()) >= 4 and line.split()[-1] in states]


def _wait_for_queue(repo: Path, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        status = dvc(repo, "queue", "status", timeout=120)
        assert status.returncode == 0, status.stderr
        states = _queue_states(status.stdout)
        if states and not {"Queued", "Running"} & set(states):
            return states
        assert time.monotonic() < deadline, f"queue still busy after {timeout} s:\n{status.stdout}"
        time.sleep(3)


def run_sweep(repo: Path) -> None:
    """Queue one experiment per value on a finished tiny pipeline, two at a time; check them."""
    before = set(dvc(repo, "exp", "list", "--name-only").stdout.split())
    queued = dvc(repo, "exp", "run", "--queue", "-S", f"train.inner_loops={','.join(VALUES)}")
    assert queued.returncode == 0, queued.stderr
    assert queued.stdout.count("Queued experiment") == len(VALUES), queued.stdout
    started = dvc(repo, "queue", "start", "-j", "2")
    assert started.returncode == 0, started.stderr
    states = _wait_for_queue(repo, timeout=300)
    assert states == ["Success"] * len(VALUES), (states, dvc(repo, "queue", "logs", "-h").stdout)
    check_sweep(repo, before)


def check_sweep(repo: Path, before: set[str]) -> None:
    """Every queued experiment has one finished, evaluated training run in the root DB."""
    from mlflow.tracking import MlflowClient

    names = set(dvc(repo, "exp", "list", "--name-only").stdout.split()) - before
    assert len(names) == len(VALUES), names

    client = MlflowClient(f"sqlite:///{(repo / 'mlflow.db').as_posix()}")
    experiment = client.get_experiment_by_name("mpfas")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.dvc_exp_name != ''")
    by_name = {r.data.tags["dvc_exp_name"]: r for r in runs if r.data.tags["dvc_exp_name"] in names}
    assert set(by_name) == names  # one training run per queued experiment, under its DVC name
    assert sorted(r.data.params["train.inner_loops"] for r in by_name.values()) == sorted(VALUES)
    for run in by_name.values():
        assert run.info.status == "FINISHED"
        assert run.data.tags["protocol"] == "OCI-M" and run.data.tags["dvc_exp_baseline_rev"]
        assert run.data.tags["pipeline_run"] == run.data.tags["dvc_exp_name"]
        assert "eval_selection" in run.data.tags  # the evaluate stage logged into the same run
    assert Path(experiment.artifact_location.removeprefix("file://")) == (repo / "mlartifacts").resolve()
    assert not list((repo / ".dvc/tmp").rglob("mlflow.db"))  # nothing written into the temp copies


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
