"""A real `dvc exp run --queue` sweep in a throwaway copy of the repo.

Queued experiments run in copies under ``.dvc/tmp/exps/``, two at a time here, yet every
training run must land in the copy's *root* ``mlflow.db`` (no lost DB inside the temp
copy, no "database is locked"), tagged with its DVC experiment name and carrying the
swept value.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pipeline_copy import TINY, copy_repo, dvc

VALUES = ("1", "2")


def _wait_for_queue(repo: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        status = dvc(repo, "queue", "status", timeout=120)
        assert status.returncode == 0, status.stderr
        busy = [line for line in status.stdout.splitlines() if " Queued " in line or " Running " in line]
        if not busy:
            return status.stdout
        assert time.monotonic() < deadline, f"queue still busy after {timeout} s:\n{status.stdout}"
        time.sleep(3)


@pytest.mark.slow  # ~2-3 min on an idle 2-core box: one tiny repro, then two queued experiments
def test_queued_sweep_lands_in_the_main_mlflow_db(tmp_path):
    from mlflow.tracking import MlflowClient

    repo = copy_repo(tmp_path / "repo", {**TINY, "train": {**TINY["train"], "protocols": ["OCI-M"]}})
    first = dvc(repo, "repro")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]

    queued = dvc(repo, "exp", "run", "--queue", "-S", f"train.inner_loops={','.join(VALUES)}")
    assert queued.returncode == 0, queued.stderr
    assert queued.stdout.count("Queued experiment") == len(VALUES), queued.stdout
    started = dvc(repo, "queue", "start", "-j", "2")
    assert started.returncode == 0, started.stderr
    status = _wait_for_queue(repo, timeout=300)
    assert status.count(" Success ") == len(VALUES), status

    names = set(dvc(repo, "exp", "list", "--name-only").stdout.split())
    assert len(names) == len(VALUES), names

    client = MlflowClient(f"sqlite:///{(repo / 'mlflow.db').as_posix()}")
    experiment = client.get_experiment_by_name("mpfas")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.dvc_exp_name != ''")
    by_name = {r.data.tags["dvc_exp_name"]: r for r in runs}
    assert set(by_name) == names  # one training run per queued experiment, under its DVC name
    assert sorted(r.data.params["train.inner_loops"] for r in by_name.values()) == sorted(VALUES)
    for run in by_name.values():
        assert run.info.status == "FINISHED"
        assert run.data.tags["protocol"] == "OCI-M" and run.data.tags["dvc_exp_baseline_rev"]
        assert run.data.tags["pipeline_run"] == run.data.tags["dvc_exp_name"]
        assert "eval_selection" in run.data.tags  # the evaluate stage logged into the same run
    assert Path(experiment.artifact_location.removeprefix("file://")) == (repo / "mlartifacts").resolve()
    assert not list((repo / ".dvc/tmp").rglob("mlflow.db"))  # nothing written into the temp copies


def test_tracking_waits_out_a_locked_db(tmp_path, monkeypatch, caplog):
    """Another process holding the SQLite write lock longer than SQLite's own 5 s busy wait:
    the run's metrics still land (retried), instead of failing with 'database is locked'."""
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
    release = threading.Timer(6.5, lambda: holder.execute("COMMIT"))
    release.start()
    try:
        t0 = time.monotonic()
        with caplog.at_level("WARNING", logger="mpfas.tracking"):
            tracker.log_metrics({"loss": 0.5}, step=1)
        waited = time.monotonic() - t0
    finally:
        release.join()
        holder.close()
    assert waited >= 6.0  # it really had to wait for the lock
    assert any("busy" in r.getMessage() for r in caplog.records)
    tracker.end()
    client = MlflowClient(info.tracking_uri)
    assert [m.value for m in client.get_metric_history(info.run_id, "loss")] == [0.5]
    assert client.get_run(info.run_id).info.status == "FINISHED"
