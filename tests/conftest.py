"""Session settings and the fixtures several test modules share (builders live in helpers/)."""

from pathlib import Path

import pytest

from helpers import EXP_COPY
from helpers.faces import make_workspace
from mpfas.core.telemetry import quiet_network

quiet_network()  # nothing in the tests may wait on the network

# pytest-timeout's limit for tests marked `slow` (the quick default is `timeout` in pyproject.toml):
# a whole tiny `dvc repro`, or several, in a fixture the first such test pays for
SLOW_TIMEOUT = 1800


def pytest_collection_modifyitems(config, items):
    """Give `slow` tests the longer limit unless they set their own ``timeout`` mark."""
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT))


# ---------------------------------------------------------------- training workspace

@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory) -> str:
    """A tracking DB per test module."""
    return f"sqlite:///{(tmp_path_factory.mktemp('mlflow') / 'mlflow.db').as_posix()}"


@pytest.fixture
def workspace(tmp_path, monkeypatch, mlflow_uri) -> Path:
    """helpers.faces' tiny training workspace as the working directory, tracking to ``mlflow_uri``."""
    make_workspace(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    return tmp_path


# ---------------------------------------------------------------- tracking

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


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory) -> Path:
    """An empty tracking DB made once by MLflow (its migrations take seconds), copied per test."""
    from mlflow.tracking import MlflowClient

    db = tmp_path_factory.mktemp("seed") / "mlflow.db"
    MlflowClient(f"sqlite:///{db.as_posix()}").search_experiments()
    return db
