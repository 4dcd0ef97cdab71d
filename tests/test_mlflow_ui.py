"""The MLflow UI in a real browser: `mlflow server` on a tiny tracking DB holding the four
default protocol runs of one pipeline run, its runs page loaded in headless Chromium."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.browser import chromium
from helpers.mlflow_ui import load_page, mlflow_server
from mpfas import tracking
from mpfas.tracking import lineage

pytestmark = pytest.mark.slow  # a server start and two page loads: ~1 min on 2 cores

PROTOCOLS = {"OCI-M": 0.9137, "OMI-C": 0.8262, "OCM-I": 0.7718, "ICM-O": 0.8849}  # video AUC of each


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory) -> tuple[Path, str]:
    """A repository whose mlflow.db holds one pipeline run: a parent and four protocol runs
    with evaluate's metrics, logged by the real tracking code. Returns (root, experiment id)."""
    root = tmp_path_factory.mktemp("ui")
    (root / ".dvc").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        for name, auc in PROTOCOLS.items():
            tracker = tracking.Tracker("mpfas")
            tracker.start({"protocol": name, "pipeline_run": "demo", "select": "source_val",
                           "mlflow.runName": name}, {"train.iterations": "100"})
            (root / f"{name}.json").write_text(json.dumps({"run_id": tracker.run_id}))
            video = {"auc": auc, "hter_val": 0.1234, "hter_eer": 0.2012, "hter_oracle": 0.1500}
            tracking.log_evaluation(root / f"{name}.json", {"protocol": name, "video": video}, [], step=100)
            tracker.end()
    return root, tracker.experiment_id


def test_the_runs_page_shows_the_protocol_runs_and_headline_metrics(demo_db, tmp_path):
    chromium()  # skips, saying how to install one, when there is none
    root, experiment = demo_db
    shot = tmp_path / "mlflow-runs.png"
    with mlflow_server(tracking.sqlite_uri(root / "mlflow.db"), root) as base:
        dom = load_page(lineage.runs_url(base, experiment), screenshot=shot)
    for name in PROTOCOLS:
        assert f">{name}<" in dom, f"run {name} not on the runs page"
    assert "Group: OCI-M" in dom  # grouped by protocol: the runs are not folded under their parent
    assert "0.9137" in dom and "video_auc" in dom  # a headline metric column, without clicking
    assert "Overview" not in dom  # the model-training view, not GenAI's overview
    assert shot.stat().st_size > 20_000
    print(f"screenshot: {shot}")
