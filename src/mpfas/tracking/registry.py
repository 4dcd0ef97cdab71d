"""The model registry: one registered model per protocol, an alias on its best version by
source-val, and ``models:/`` URIs resolved back to the checkpoint they were logged from.

* A run's models are logged once per checkpoint: the run carries the checkpoint's sha256
  (:data:`SHA_TAG`), so re-evaluating the same ``best.pt`` logs and registers nothing new.
* The alias :data:`ALIAS` moves to a new version only when its source-val AUC is higher
  than the holder's (ties: lower source-val HTER). Target numbers never enter the choice:
  they are the test set.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpfas.tracking.store import TrackingError, process_tracking_uri, with_retries

SHA_TAG = "mpfas.model_sha256"
ALIAS = "best-source-val"
_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")


def _locked(exc: BaseException) -> bool:
    return "locked" in str(exc).lower()


def model_name(protocol: str) -> str:
    """The registered model of ``protocol``'s selected checkpoints."""
    return f"mpfas-{protocol}"


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def logged_sha(run_id: str, uri: str) -> str | None:
    """The sha256 of the checkpoint whose models run ``run_id`` holds (None: none logged)."""
    return with_retries(_client(uri).get_run, run_id).data.tags.get(SHA_TAG)


def mark_logged(run_id: str, uri: str, sha: str) -> None:
    with_retries(_client(uri).set_tag, run_id, SHA_TAG, sha)


@dataclass(frozen=True)
class Selection:
    """How a checkpoint was chosen: what the version's description and tags say."""

    protocol: str
    select: str  # train.select
    iteration: int
    val_auc: float | None  # source-val (None: no source-val videos)
    val_hter: float | None
    sha256: str

    def description(self, run_id: str) -> str:
        val = ("no source-val videos" if self.val_auc is None
               else f"source-val AUC {self.val_auc:.4f}, HTER {self.val_hter:.4f}")
        return (f"{self.protocol}: best.pt chosen by train.select={self.select} at iteration {self.iteration} "
                f"({val}); MLflow run {run_id}; checkpoint sha256 {self.sha256}. ONNX flavour, "
                f"checked against PyTorch before logging.")

    def tags(self) -> dict[str, str]:
        tags = {"protocol": self.protocol, "select": self.select, "iteration": str(self.iteration),
                "checkpoint_sha256": self.sha256}
        if self.val_auc is not None:
            tags.update(source_val_auc=repr(self.val_auc), source_val_hter=repr(self.val_hter))
        return tags


def _key(tags: dict[str, str]) -> tuple[float, float] | None:
    """Sort key of a version by its source-val numbers (higher is better), None without them."""
    if "source_val_auc" not in tags:
        return None
    return float(tags["source_val_auc"]), -float(tags.get("source_val_hter", "inf"))


def register(uri: str, model_uri: str, run_id: str, selection: Selection) -> tuple[str, bool]:
    """Register ``model_uri`` as a new version of ``model_name(protocol)``; move :data:`ALIAS`
    to it when its source-val numbers beat the holder's. Returns (version, alias moved)."""
    from mlflow.exceptions import MlflowException

    client, name = _client(uri), model_name(selection.protocol)
    try:  # "already exists" is the normal case here, not a race to retry
        with_retries(client.create_registered_model, name, transient=_locked,
                     description=f"Selected checkpoints of protocol {selection.protocol} (ONNX); alias "
                                 f"{ALIAS!r}: the best by source-val AUC.")
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    with process_tracking_uri(uri):  # MLflow resolves a `models:/m-...` source with a default client
        version = with_retries(client.create_model_version, name, model_uri, run_id=run_id,
                               tags=selection.tags(), description=selection.description(run_id)).version
    new = _key(selection.tags())
    try:
        holder = with_retries(client.get_model_version_by_alias, name, ALIAS)
        old = _key(holder.tags)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
        holder, old = None, None
    moved = new is not None and (holder is None or old is None or new > old)
    if moved:
        with_retries(client.set_registered_model_alias, name, ALIAS, str(version))
    return str(version), moved


def resolve_checkpoint(model_uri: str, dest: str | Path, uri: str) -> Path:
    """The ``best.pt`` behind ``models:/<name>@<alias>`` or ``models:/<name>/<version>``:
    downloaded from the version's run (its ``checkpoint/best.pt`` artifact) into ``dest`` and
    checked against the sha256 the version was registered with."""
    from mlflow.exceptions import MlflowException

    found = _URI.match(model_uri)
    if found is None:
        raise TrackingError(f"{model_uri}: not a registered model URI (models:/<name>@<alias> or "
                            f"models:/<name>/<version>)")
    client, name = _client(uri), found["name"]
    try:
        mv = (client.get_model_version_by_alias(name, found["alias"]) if found["alias"]
              else client.get_model_version(name, found["version"]))
    except MlflowException as exc:
        raise TrackingError(f"{model_uri}: not in the registry at {uri} ({exc.message})") from None
    want = mv.tags.get("checkpoint_sha256")
    if not mv.run_id or not want:
        raise TrackingError(f"{model_uri}: version {mv.version} has no run or checkpoint_sha256 tag "
                            "(not registered by mpfas)")
    try:
        path = Path(client.download_artifacts(mv.run_id, "checkpoint/best.pt", str(dest)))
    except (MlflowException, OSError) as exc:
        raise TrackingError(f"{model_uri}: run {mv.run_id} has no checkpoint/best.pt artifact ({exc})") from None
    if sha256(path) != want:
        raise TrackingError(f"{model_uri}: run {mv.run_id}'s checkpoint/best.pt is not the registered "
                            f"checkpoint (sha256 {sha256(path)[:12]} vs {want[:12]})")
    return path
