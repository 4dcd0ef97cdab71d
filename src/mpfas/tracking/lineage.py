"""Lineage in MLflow's own terms: the experiment's kind and headline view, the manifest as a
dataset input, source tags, and one parent run per pipeline run.

* MLflow 3 opens an experiment on its GenAI overview. The UI records an experiment's kind in
  the tag ``mlflow.experimentKind`` (it writes ``custom_model_development`` when a user picks
  "Machine learning"); MLflow 3.17's UI takes the kind from the ``workflowType`` URL
  parameter (or the browser's last choice) instead, so :func:`runs_url` carries
  ``workflowType=machine_learning`` too. Both are set: the tag for MLflow versions that read it.
* The runs table shows no metric column until one is picked. MLflow's shared views are
  experiment tags (``mlflow.sharedViewState.<key>``, a JSON of the table's UI state) opened
  by ``viewStateShareKey=<key>``; :data:`VIEW_KEY` groups the runs by protocol and shows
  the headline metrics (:data:`HEADLINE`).
* The parent run of a pipeline run (tag ``pipeline_run``) is found by tag, created when
  missing. Processes creating it at once (queued experiments share one ``mlflow.db``) take
  turns under a file lock per store and experiment, in the machine's temp folder, so the
  second finds the first's. Without the lock (another machine on a shared server) each
  keeps the earliest it sees and deletes its own if it lost.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mpfas.core.paths import main_root
from mpfas.tracking.store import with_retries

KIND_TAG = "mlflow.experimentKind"
KIND = "custom_model_development"
VIEW_KEY = "mpfas-headline"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
ROLE_TAG = "mpfas.role"  # "pipeline" on a parent run
HEADLINE = {  # metric name -> key of evaluate's ``video`` metrics
    "video_auc": "auc",
    "video_hter_source_val": "hter_val",
    "video_hter_eer": "hter_eer",
    "video_hter_oracle": "hter_oracle",
}
"""Short headline metrics every evaluated run carries beside its ``eval/...`` metrics."""


def headline_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The :data:`HEADLINE` numbers of evaluate's metrics (those that are not None)."""
    video = metrics.get("video") or {}
    return {name: float(video[key]) for name, key in HEADLINE.items() if video.get(key) is not None}


VIEW = {  # the shared view's state: MLflow's runs-table keys (a shared view cannot expand runs)
    "selectedColumns": [f"metrics.`{name}`" for name in HEADLINE] + ["tags.`protocol`", "tags.`select`"],
    # one group per protocol, open, listing its runs (the UI folds children under a parent run, and
    # a shared view cannot unfold them); parent runs fall into MLflow's "Additional runs"
    "groupBy": "tag.average.protocol",
    "orderByKey": "attributes.start_time",
    "orderByAsc": False,
}


def mark_experiment(client: Any, experiment_id: str) -> None:
    """Tag ``experiment_id`` as model training and give it the headline view (idempotent)."""
    tags = with_retries(client.get_experiment, experiment_id).tags
    if tags.get(KIND_TAG) != KIND:
        with_retries(client.set_experiment_tag, experiment_id, KIND_TAG, KIND)
    if tags.get(VIEW_TAG) != json.dumps(VIEW):
        with_retries(client.set_experiment_tag, experiment_id, VIEW_TAG, json.dumps(VIEW))


def runs_url(base: str, experiment_id: str) -> str:
    """The experiment's runs table in the UI at ``base`` (``http://127.0.0.1:5000``), with the
    model-training view and the headline columns."""
    return (f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs"
            f"?workflowType=machine_learning&viewStateShareKey={VIEW_KEY}")


def source_tags(script: str, commit: str) -> dict[str, str]:
    """MLflow's source tags: what ran (the stage script), as a local run, at which commit
    (``git_commit`` keeps the ``+dirty`` mark; MLflow's tag holds the bare hash)."""
    tags = {"mlflow.source.name": script, "mlflow.source.type": "LOCAL"}
    bare = commit.removesuffix("+dirty")
    if bare != "unknown":
        tags["mlflow.source.git.commit"] = bare
    return tags


def parent_run(client: Any, experiment_id: str, pipeline_run: str) -> str:
    """The id of the parent run of ``pipeline_run``: found by tag, else created (race-free,
    see the module docstring)."""
    with _lock(f"{client.tracking_uri} {experiment_id}"):
        found = find_parent(client, experiment_id, pipeline_run)
        if found is not None:
            return found
        return _create_parent(client, experiment_id, pipeline_run)


@contextlib.contextmanager
def _lock(key: str) -> Iterator[None]:
    """An exclusive lock, between the processes of this machine, named by ``key``: a file in the
    repository's DVC temp folder (one per store and experiment, not one per pipeline run), or in
    the system's temp folder outside a DVC repository."""
    import fcntl

    dvc_tmp = main_root() / ".dvc" / "tmp"
    folder = dvc_tmp if dvc_tmp.parent.is_dir() else Path(tempfile.gettempdir())
    folder.mkdir(exist_ok=True)
    path = folder / f"mpfas-parent-{hashlib.sha256(key.encode()).hexdigest()[:16]}.lock"
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _create_parent(client: Any, experiment_id: str, pipeline_run: str) -> str:
    from mlflow.entities import RunStatus

    mine = with_retries(client.create_run, experiment_id, run_name=f"pipeline {pipeline_run}",
                        tags={"pipeline_run": pipeline_run, ROLE_TAG: "pipeline",
                              "mlflow.note.content": "One pipeline run (dvc repro or experiment): its protocol "
                                                     "runs are the children; the summary is in its artifacts."})
    with_retries(client.set_terminated, mine.info.run_id, status=RunStatus.to_string(RunStatus.FINISHED))
    winner = find_parent(client, experiment_id, pipeline_run) or mine.info.run_id
    if winner != mine.info.run_id:  # another process created one first: keep the earliest
        with_retries(client.delete_run, mine.info.run_id)
    return winner


def find_parent(client: Any, experiment_id: str, pipeline_run: str) -> str | None:
    """The parent run of ``pipeline_run``, or None when no protocol run created one."""
    query = f"tags.pipeline_run = '{pipeline_run}' and tags.`{ROLE_TAG}` = 'pipeline'"
    runs = with_retries(client.search_runs, [experiment_id], filter_string=query, max_results=50)
    runs = sorted(runs, key=lambda r: (r.info.start_time, r.info.run_id))
    return runs[0].info.run_id if runs else None


# ------------------------------------------------------------------ datasets

DIGEST_CHARS = 32
"""MLflow stores a dataset digest in 36 characters: the manifest's sha256, cut to 32 hex."""


def manifest_dataset(manifest: str | Path, name: str) -> Any:
    """The manifest as an MLflow dataset entity: ``name`` (the protocol), its content hash as
    digest, its path as source, its columns as schema and videos per role (live/attack) as
    profile."""
    from mlflow.entities import Dataset

    manifest = Path(manifest)
    data = manifest.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    with manifest.open(newline="") as f:
        reader = csv.DictReader(f)
        counts = Counter((row["role"], "live" if row["is_live"] == "1" else "attack") for row in reader)
        columns = list(reader.fieldnames or [])
    roles: dict[str, dict[str, int]] = {}
    for (role, kind), n in sorted(counts.items()):
        roles.setdefault(role, {"videos": 0})[kind] = n
        roles[role]["videos"] += n
    profile = {"videos_by_role": roles, "sha256": sha}
    schema = {"mlflow_colspec": [{"name": c, "type": "string"} for c in columns]}
    return Dataset(name=name, digest=sha[:DIGEST_CHARS], source_type="local",
                   source=json.dumps({"uri": manifest.as_posix()}), schema=json.dumps(schema),
                   profile=json.dumps(profile))


def log_manifest(client: Any, run_id: str, manifest: str | Path, name: str, context: str) -> None:
    """Log ``manifest`` as ``run_id``'s dataset input with ``context`` (training / evaluation)."""
    from mlflow.entities import DatasetInput, InputTag

    dataset = manifest_dataset(manifest, name)
    with_retries(client.log_inputs, run_id,
                 datasets=[DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)])])
