"""MLflow tracking: the DB follows the main repo root, runs resume by id, telemetry is off."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mpfas import tracking
from mpfas.config import Params

EXP_COPY = Path(".dvc", "tmp", "exps", "tmpabc123")  # where DVC runs a temp or queued experiment


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """A fake main repository with a DVC experiment copy inside it."""
    root = tmp_path / "main"
    (root / ".git").mkdir(parents=True)
    (root / ".dvc").mkdir()
    exp = root / EXP_COPY
    (exp / ".dvc").mkdir(parents=True)
    (exp / "stages").mkdir()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for key in ("DVC_EXP_NAME", "DVC_EXP_BASELINE_REV", "MPFAS_PIPELINE_RUN"):
        monkeypatch.delenv(key, raising=False)
    return root


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
    tags = tracking.run_tags("OCI-M", Params(), params_file, "abc")
    assert tags["protocol"] == "OCI-M" and tags["pretrained"] == "random-init"
    assert tags["dvc_exp_name"] == "fuzzy-owl" and tags["dvc_exp_baseline_rev"] == "f" * 40


def test_run_resumes_by_id_and_records_failure(repo, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(repo / EXP_COPY)
    params = tracking.flat_params(Params())
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
