"""MLflow lineage and registry on a real sqlite store: the experiment's kind and view, parent
runs (also when created concurrently), manifests as dataset inputs, the summary in the parent,
models logged once per checkpoint, the registry's source-val alias and ``models:/`` URIs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import threading
from pathlib import Path

import pytest

from mpfas import tracking
from mpfas.tracking import lineage, registry

MANIFEST = """dataset,domain,video_id,subject,split,label,is_live,attack,role,faces
OULU-NPU,O,O/a.avi,1,train,live,1,,source-train,f/a.png
OULU-NPU,O,O/b.avi,1,train,print,0,printer1,source-train,f/b.png
CASIA-FASD,C,C/c.avi,2,train,replay,0,replay,source-val,f/c.png
MSU-MFSD,M,M/d.avi,3,test,live,1,,target,f/d.png
MSU-MFSD,M,M/e.avi,3,test,print,0,print,target,f/e.png
MSU-MFSD,M,M/f.avi,4,test,replay,0,replay,target,f/f.png
"""


@pytest.fixture
def store(repo, monkeypatch, empty_db) -> Path:
    """``repo`` with a fresh copy of the empty tracking DB, as the working directory."""
    shutil.copy(empty_db, repo / "mlflow.db")
    monkeypatch.chdir(repo)
    return repo


def test_the_experiment_opens_as_model_training_with_the_headline_columns(store):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking.tracking_uri())
    old = client.create_experiment("old")  # made before this: marked when next used
    assert lineage.KIND_TAG not in client.get_experiment(old).tags
    for name in ("new", "old"):
        tags = client.get_experiment(tracking.Tracker(name).experiment_id).tags
        assert tags[lineage.KIND_TAG] == "custom_model_development"
        view = json.loads(tags[lineage.VIEW_TAG])
        assert view["selectedColumns"][:4] == [f"metrics.`{m}`" for m in
                                               ("video_auc", "video_hter_source_val", "video_hter_eer",
                                                "video_hter_oracle")]
    url = lineage.runs_url("http://127.0.0.1:5000/", old)
    assert url == (f"http://127.0.0.1:5000/#/experiments/{old}/runs?workflowType=machine_learning"
                   f"&viewStateShareKey={lineage.VIEW_KEY}")


def test_protocol_runs_of_a_pipeline_run_are_children_of_one_parent(store):
    started = {}
    for pipeline, protocol in [("p1", "OCI-M"), ("p1", "OMI-C"), ("p2", "OCI-M")]:
        tracker = tracking.Tracker("exp")
        tracker.start({"protocol": protocol, "pipeline_run": pipeline, "mlflow.runName": protocol}, {})
        started[pipeline, protocol] = tracker
    client = started["p1", "OCI-M"].client
    parents = {key: client.get_run(t.run_id).data.tags["mlflow.parentRunId"] for key, t in started.items()}
    assert parents["p1", "OCI-M"] == parents["p1", "OMI-C"] != parents["p2", "OCI-M"]
    parent = client.get_run(parents["p1", "OCI-M"])
    assert parent.data.tags[lineage.ROLE_TAG] == "pipeline" and parent.data.tags["pipeline_run"] == "p1"
    assert parent.info.run_name == "pipeline p1"
    # the headline view groups runs by protocol (children would be folded under the parent)
    view = json.loads(client.get_experiment(started["p1", "OCI-M"].experiment_id).tags[lineage.VIEW_TAG])
    assert view["groupBy"] == "tag.average.protocol" and "protocol" not in parent.data.tags
    # the processes creating parents serialise on one lock file in the repository's DVC temp folder
    assert len(list((store / ".dvc" / "tmp").glob("mpfas-parent-*.lock"))) == 1


def test_parents_created_at_once_converge_on_one(store):
    """Queued experiments share one mlflow.db: several train stages may create the parent of
    the same pipeline run at the same moment; every one must get the same, and one stays."""
    from mlflow.tracking import MlflowClient

    experiment = tracking.Tracker("exp").experiment_id
    barrier, got, errors = threading.Barrier(4), [], []

    def create() -> None:
        client = MlflowClient(tracking.tracking_uri())
        barrier.wait()
        try:
            got.append(lineage.parent_run(client, experiment, "race"))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(got) == 4 and len(set(got)) == 1, (got, errors)
    client = MlflowClient(tracking.tracking_uri())
    alive = client.search_runs([experiment], filter_string="tags.pipeline_run = 'race'")
    assert [r.info.run_id for r in alive] == got[:1]


def test_the_manifest_is_each_runs_dataset_input(store):
    manifest = store / "data" / "manifests" / "OCI-M.csv"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(MANIFEST)
    tracker = tracking.Tracker("exp")
    tracker.start({"protocol": "OCI-M", "mlflow.runName": "OCI-M"}, {})
    tracker.log_dataset(Path("data/manifests/OCI-M.csv"), "OCI-M", "training")
    (store / "run.json").write_text(json.dumps({"run_id": tracker.run_id}))
    metrics = {"protocol": "OCI-M", "video": {"auc": 0.91, "hter_val": None, "hter_eer": 0.12, "hter_oracle": 0.08}}
    assert tracking.log_evaluation(store / "run.json", metrics, [], manifest=Path("data/manifests/OCI-M.csv"))

    run = tracker.client.get_run(tracker.run_id)
    assert run.data.metrics["video_auc"] == 0.91 and run.data.metrics["video_hter_eer"] == 0.12
    assert run.data.metrics["video_hter_oracle"] == 0.08 and "video_hter_source_val" not in run.data.metrics
    inputs = {i.tags[0].value: i.dataset for i in run.inputs.dataset_inputs}
    assert all(i.tags[0].key == "mlflow.data.context" for i in run.inputs.dataset_inputs)
    assert inputs["training"].name == "OCI-M" and inputs["evaluation"].name == "OCI-M (evaluation)"
    sha = hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert inputs["training"].digest == inputs["evaluation"].digest == sha[:32]
    dataset = inputs["training"]
    assert json.loads(dataset.source) == {"uri": "data/manifests/OCI-M.csv"}
    profile = json.loads(dataset.profile)
    assert profile["sha256"] == sha
    assert profile["videos_by_role"] == {"source-train": {"videos": 2, "live": 1, "attack": 1},
                                         "source-val": {"videos": 1, "attack": 1},
                                         "target": {"videos": 3, "live": 1, "attack": 2}}
    assert [c["name"] for c in json.loads(dataset.schema)["mlflow_colspec"]][-2:] == ["role", "faces"]


def test_source_tags_follow_mlflows_conventions():
    assert lineage.source_tags("stages/train.py", "a" * 40 + "+dirty") == {
        "mlflow.source.name": "stages/train.py", "mlflow.source.type": "LOCAL",
        "mlflow.source.git.commit": "a" * 40}
    assert "mlflow.source.git.commit" not in lineage.source_tags("stages/train.py", "unknown")


def test_the_summary_goes_into_the_pipeline_runs_parent(store, monkeypatch):
    monkeypatch.setenv("MPFAS_PIPELINE_RUN", "exp-1")
    tracker = tracking.Tracker("exp")
    tracker.start({"protocol": "OCI-M", "pipeline_run": "exp-1"}, {})
    (store / "summary.md").write_text("| protocol |\n")
    (store / "params.yaml").write_text("train: {}\n")
    parent = tracking.log_pipeline_summary("exp", store / "params.yaml", [store / "summary.md"])
    assert parent == tracker.client.get_run(tracker.run_id).data.tags["mlflow.parentRunId"]
    assert [a.path for a in tracker.client.list_artifacts(parent, "summary")] == ["summary/summary.md"]
    monkeypatch.setenv("MPFAS_PIPELINE_RUN", "never-trained")
    assert tracking.log_pipeline_summary("exp", store / "params.yaml", [store / "summary.md"]) is None


# ------------------------------------------------------------------ registry


def _checkpoint(path: Path, auc: float, hter: float) -> Path:
    from helpers.checkpoints import make_checkpoint
    from mpfas.models.checkpoint import load, save

    make_checkpoint(path, threshold=0.5)
    ckpt = load(path)
    save(dataclasses.replace(ckpt, val={"auc": auc, "hter": hter, "threshold": 0.5}), path)
    return path


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@pytest.mark.slow  # four ONNX exports and model logs
def test_models_are_logged_once_and_the_alias_follows_source_val(store, monkeypatch, tmp_path):
    from mlflow.utils.file_utils import local_file_uri_to_path

    from mpfas.serve.mlflow_model import publish
    from mpfas.serve.predict import PredictError, load_model

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking.sqlite_uri(store / "mlflow.db"))
    versions = {}
    for name, auc, hter in [("a", 0.80, 0.20), ("b", 0.90, 0.15), ("c", 0.85, 0.10)]:
        ckpt = _checkpoint(tmp_path / name / "best.pt", auc, hter)
        tracker = tracking.Tracker("exp")
        tracker.start({"protocol": "OCI-M"}, {})
        tracker.log_artifact(ckpt, "checkpoint")  # as training's finish does
        tracker.end()
        if name == "b":  # a registration that fails is done by the next evaluation, not skipped as "logged"
            with monkeypatch.context() as m:
                m.setattr(registry, "register", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("registry down")))
                with pytest.raises(RuntimeError, match="registry down"):
                    publish(tracker.run_id, ckpt)
        done = publish(tracker.run_id, ckpt)
        assert done.logged is not None
        versions[name] = (done.version, done.alias_moved, tracker)
        if name == "a":  # evaluating the same best.pt again logs nothing new
            folder = Path(local_file_uri_to_path(tracker.client.get_run(tracker.run_id).info.artifact_uri)).parent
            before = (len(tracker.client.search_logged_models([tracker.experiment_id])), _bytes(folder))
            assert publish(tracker.run_id, ckpt).logged is None
            after = (len(tracker.client.search_logged_models([tracker.experiment_id])), _bytes(folder))
            assert before == after and before[0] == 2  # the pyfunc and the ONNX model
    assert [v[:2] for v in versions.values()] == [("1", True), ("2", True), ("3", False)]  # c: lower AUC

    client = versions["a"][2].client._get_registry_client()
    best = client.get_model_version_by_alias("mpfas-OCI-M", registry.ALIAS)
    assert str(best.version) == "2"
    assert "train.select=source_val at iteration 7" in best.description
    assert "source-val AUC 0.9000, HTER 0.1500" in best.description and versions["b"][2].run_id in best.description
    assert client.get_model_version("mpfas-OCI-M", "2").source.startswith("models:/")  # the ONNX flavour

    assert load_model("models:/mpfas-OCI-M@best-source-val").checkpoint.val["auc"] == 0.90
    assert load_model("models:/mpfas-OCI-M/1").checkpoint.val["auc"] == 0.80
    with pytest.raises(PredictError, match=r"models:/mpfas-OCI-M@nope: not in the registry"):
        load_model("models:/mpfas-OCI-M@nope")
    with pytest.raises(PredictError, match=r"not a registered model URI"):
        load_model("models:/mpfas-OCI-M")
