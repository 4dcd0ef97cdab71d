"""A real `dvc exp run --queue` sweep over seeds (test_pipeline runs it on its tiny pipeline copy).

Queued with ``python -m mpfas seeds queue`` (which runs ``dvc exp run --queue -S train.seed=...``)
and aggregated with ``python -m mpfas seeds aggregate``. Queued experiments run in copies in
DVC's temporary experiments folder, two at a time here, yet every training run must land in
the copy's *root* ``mlflow.db`` (no lost DB inside the temp copy, no "database is locked"),
tagged with its DVC experiment name and carrying the swept value; the aggregate's mean ± std
must be those of the runs' own metrics.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.pipeline_copy import dvc, env

SEEDS = ("1", "2")  # unlike the train.seed every pipeline test ran before, so both train


INNER_LOOPS = "3"  # passed through `-S`: every experiment gets it


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


def mpfas_cli(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mpfas", *args], cwd=repo, env=env(), capture_output=True,
                          text=True, timeout=300)


def run_sweep(repo: Path) -> None:
    """Queue one experiment per seed on a finished tiny pipeline, two at a time; check them and
    their aggregate."""
    before = set(dvc(repo, "exp", "list", "--name-only").stdout.split())
    queued = mpfas_cli(repo, "seeds", "queue", "--seeds", *SEEDS, "-S", f"train.inner_loops={INNER_LOOPS}",
                       "--start", "--jobs", "2")
    assert queued.returncode == 0, queued.stderr
    assert queued.stdout.count("Queued experiment") == len(SEEDS), queued.stdout
    states = _wait_for_queue(repo, timeout=300)
    assert states == ["Success"] * len(SEEDS), (states, dvc(repo, "queue", "logs", "-h").stdout)
    runs = check_sweep(repo, before)
    check_aggregate(repo, runs)


def check_sweep(repo: Path, before: set[str]) -> dict:
    """Every queued experiment has one finished, evaluated training run in the root DB
    (returned by experiment name)."""
    from mlflow.tracking import MlflowClient

    names = set(dvc(repo, "exp", "list", "--name-only").stdout.split()) - before
    assert len(names) == len(SEEDS), names

    client = MlflowClient(f"sqlite:///{(repo / 'mlflow.db').as_posix()}")
    experiment = client.get_experiment_by_name("mpfas")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.dvc_exp_name != ''")
    by_name = {r.data.tags["dvc_exp_name"]: r for r in runs if r.data.tags["dvc_exp_name"] in names}
    assert set(by_name) == names  # one training run per queued experiment, under its DVC name
    assert sorted(r.data.params["train.seed"] for r in by_name.values()) == sorted(SEEDS)
    assert {r.data.params["train.inner_loops"] for r in by_name.values()} == {INNER_LOOPS}
    for run in by_name.values():
        assert run.info.status == "FINISHED"
        assert run.data.tags["protocol"] == "OCI-M" and run.data.tags["dvc_exp_baseline_rev"]
        assert run.data.tags["pipeline_run"] == run.data.tags["dvc_exp_name"]
        assert "eval_selection" in run.data.tags  # the evaluate stage logged into the same run
    assert Path(experiment.artifact_location.removeprefix("file://")) == (repo / "mlartifacts").resolve()
    assert not list((repo / ".dvc/tmp").rglob("mlflow.db"))  # nothing written into the temp copies
    return by_name


def check_aggregate(repo: Path, runs: dict) -> None:
    """`mpfas seeds aggregate` on the sweep's experiments: one setting (only the seed differs),
    n = 2, and mean ± std equal to those of the metrics the runs logged to MLflow."""
    out = repo.parent / "seeds"
    done = mpfas_cli(repo, "seeds", "aggregate", "--exps", *runs, "--out", str(out / "seeds.md"),
                     "--plot", str(out / "seeds.png"), "--json", str(out / "seeds.json"))
    assert done.returncode == 0, done.stderr
    rows = json.loads((out / "seeds.json").read_text())
    assert [(r["protocol"], r["setting"], r["n"], sorted(map(str, r["seeds"]))) for r in rows] == [
        ("OCI-M", "all", 2, sorted(SEEDS))]
    assert set(rows[0]["experiments"]) == set(runs)
    for key, logged in (("video_auc", "eval/video/auc"), ("hter_eer", "eval/video/hter_eer"),
                        ("hter_val", "eval/video/hter_val"), ("frame_hter_oracle", "eval/frame/hter_oracle")):
        values = [run.data.metrics[logged] for run in runs.values()]
        assert rows[0]["stats"][key]["mean"] == pytest.approx(statistics.mean(values)), key
        assert rows[0]["stats"][key]["std"] == pytest.approx(statistics.stdev(values)), key
    assert "| OCI-M | all | 2 |" in (out / "seeds.md").read_text() == done.stdout
    assert (out / "seeds.png").stat().st_size > 5000
