"""MLflow for the training stage: where runs go, how they are named, tagged and resumed.

DVC owns orchestration and params; MLflow owns per-run curves and artifacts.
These traps shape this module:

* ``dvc exp run --temp`` and queued experiments run in a copy under the repository's
  ``.dvc`` temp-experiments folder (``.dvc``, ``tmp``, ``exps``); a relative
  ``sqlite:///mlflow.db`` would be written into that copy and lost. The tracking DB
  therefore resolves to the *main* repository root (``MLFLOW_TRACKING_URI`` wins when
  set), and so does the artifact folder.
* Several processes may write the one SQLite DB at once (``dvc queue start -j 2``, a
  sweep next to ``mlflow ui``). SQLite allows one writer at a time and MLflow gives up
  with "database is locked" after a few seconds, so every tracking call is retried with
  a jittered back-off (``with_retries``); two processes creating the experiment or the
  tables of a fresh DB at the same moment are resolved the same way.
* A mid-run failure must not lose the run's record silently: every call is retried while
  the failure looks transient (a held lock; for artifacts also an ``OSError`` such as a
  momentary full or unmounted disk), and one that persists raises :class:`TrackingError`,
  one line naming the run and what could not be logged. A database of another MLflow
  schema is refused with the exact fix (:class:`TrackingSchemaError`).
* The SQLite URI is built so any folder name works: SQLAlchemy decodes ``%XX`` and cuts
  the path at ``?``, so those two characters are percent-encoded (spaces, ``#`` and
  non-ASCII pass as they are).
* MLflow 3 starts a telemetry client when it is imported. The opt-out is read from the
  environment, so it is set (``mpfas.telemetry``) before ``mlflow`` is ever imported, and
  the client is reset in case someone imported mlflow earlier.

Every MLflow call of the package is in this module: training's run (:class:`Tracker`),
evaluation's metrics (:func:`log_evaluation`) and the logged models (:func:`log_models`).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import math
import os
import random
import re
import shlex
import socket
import subprocess
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Params
from .errors import MpfasError
from .params_view import flatten
from .paths import main_root
from .telemetry import quiet_network

log = logging.getLogger(__name__)

DB_NAME = "mlflow.db"
ARTIFACT_DIR = "mlartifacts"
RETRY_SECONDS = 120.0
"""How long tracking calls keep retrying while another process holds the SQLite DB."""
_TRANSIENT = ("database is locked", "database table is locked", "already exists", "unique constraint failed")
_OLD_SCHEMA = re.compile(r"out-of-date database schema \(found version (\w+), but expected (\w+)\)")


class TrackingError(MpfasError):
    """MLflow could not record part of a run, even after retrying; says which run and what."""


class TrackingSchemaError(TrackingError):
    """The tracking database was written by another MLflow version; says how to fix it."""


quiet_network()  # before mlflow is ever imported


def sqlite_uri(db: str | Path) -> str:
    """``sqlite:///<absolute path>``, with the two characters SQLAlchemy's URL parser treats
    specially in a path (``%`` decodes, ``?`` starts the query) percent-encoded."""
    path = Path(db).absolute().as_posix()
    return "sqlite:///" + path.replace("%", "%25").replace("?", "%3F")


def tracking_uri(cwd: str | Path | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<main root>/mlflow.db``."""
    env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if env:
        return env
    return sqlite_uri(main_root(cwd) / DB_NAME)


def artifact_location(cwd: str | Path | None = None) -> str | None:
    """Where a new experiment keeps artifacts: ``<main root>/mlartifacts`` for the default
    DB; None (the server's choice) when ``MLFLOW_TRACKING_URI`` points elsewhere."""
    if os.environ.get("MLFLOW_TRACKING_URI", "").strip():
        return None
    return (main_root(cwd) / ARTIFACT_DIR).as_uri()


def git_commit(cwd: str | Path | None = None) -> str:
    """HEAD of the repository we run in ("unknown" outside git), "+dirty" if modified."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def pipeline_run_name(params_file: str | Path, commit: str) -> str:
    """The tag that groups the protocol runs of one pipeline run.

    ``MPFAS_PIPELINE_RUN`` or DVC's ``DVC_EXP_NAME`` when set; otherwise the git commit
    plus a hash of the params file, so the four ``train@<protocol>`` stages of one
    ``dvc repro`` (separate processes) land in the same group.
    """
    for key in ("MPFAS_PIPELINE_RUN", "DVC_EXP_NAME"):
        if os.environ.get(key):
            return os.environ[key]
    digest = hashlib.sha256(Path(params_file).read_bytes()).hexdigest()[:8]
    return f"{commit[:12]}{'+dirty' if commit.endswith('+dirty') else ''}-params-{digest}"


def run_tags(protocol: str, params: Params, params_file: str | Path, commit: str,
             world_size: int = 1) -> dict[str, str]:
    """Tags every training run carries (protocol, commit, DVC experiment, init, selection,
    and how many data-parallel processes trained it)."""
    from .presets import PAPER, differences

    pretrained = params.model.pretrained if not params.model.random_init else "random-init"
    differs = differences(params, PAPER)
    tags = {
        "protocol": protocol,
        "git_commit": commit,
        "pipeline_run": pipeline_run_name(params_file, commit),
        "pretrained": pretrained,
        "algorithm": params.train.algorithm,
        "select": params.train.select,
        "leakage": "target-oracle (selects on the target set)" if params.train.select == "target_oracle"
        else f"none (selects on {'source-val' if params.train.select == 'source_val' else 'the last iteration'})",
        # every knob that is not the paper's setting (`python -m mpfas preset paper`), as key=ours
        "paper_preset_differs": "; ".join(f"{k}={v['ours']}" for k, v in differs.items()) or "none",
        "started": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "mlflow.runName": protocol,
        "world_size": str(world_size),
        # who trains it: lets a later attempt close this run if the process died (SIGKILL)
        "host": socket.gethostname(),
        "pid": str(os.getpid()),
    }
    for key in ("DVC_EXP_NAME", "DVC_EXP_BASELINE_REV"):
        if os.environ.get(key):
            tags[key.lower()] = os.environ[key]
    return tags


def flat_params(params: Params) -> dict[str, str]:
    """params.yaml flattened to ``section.key`` strings (MLflow caps values at 6000 chars)."""
    return {k: str(v)[:6000] for k, v in flatten(params).items()}


def _transient(exc: BaseException) -> bool:
    """A lock held by another writer, or a race on creating the same experiment or tables."""
    text = str(exc).lower()
    return any(marker in text for marker in _TRANSIENT)


def _transient_or_os(exc: BaseException) -> bool:
    """For artifact copies: also any OS error (a full or briefly unavailable disk)."""
    return isinstance(exc, OSError) or _transient(exc)


def with_retries(fn: Callable[..., Any], *args: Any, budget: float | None = None,
                 transient: Callable[[BaseException], bool] = _transient, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, retried with jittered exponential back-off while it fails
    with a ``transient`` error (default: a SQLite lock, see ``_transient``), for up to
    ``budget`` seconds (default ``RETRY_SECONDS``)."""
    deadline = time.monotonic() + (RETRY_SECONDS if budget is None else budget)
    delay = 0.1
    while True:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if not transient(exc) or time.monotonic() + delay > deadline:
                raise
            log.warning("MLflow tracking call failed (%s); retrying in %.1f s", _first_line(exc), delay)
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 5.0)


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}"


def _migrations_know(revision: str) -> bool:
    """Whether the installed MLflow has a migration for ``revision`` (else a newer MLflow wrote it)."""
    import mlflow.store

    versions = Path(mlflow.store.__file__).parent / "db_migrations" / "versions"
    return any(versions.glob(f"{revision}_*.py"))


def _schema_error(uri: str, exc: BaseException) -> TrackingSchemaError | None:
    """The fix for a database of another schema, or None if ``exc`` is something else."""
    import mlflow

    found = _OLD_SCHEMA.search(str(exc))
    if found is None:
        return None
    have, want = found.groups()
    if _migrations_know(have):
        return TrackingSchemaError(
            f"MLflow tracking DB {uri} has an older schema (revision {have}; MLflow {mlflow.__version__} "
            f"needs {want}); back it up, then run: mlflow db upgrade {shlex.quote(uri)}")
    return TrackingSchemaError(
        f"MLflow tracking DB {uri} was written by a newer MLflow (revision {have} is unknown to MLflow "
        f"{mlflow.__version__}); install that MLflow version, or set MLFLOW_TRACKING_URI to another database")


def _undecoded_dirs(uri: str) -> list[Path]:
    """Folders MLflow would wrongly create for a percent-encoded SQLite URI (it makes the
    DB's parent folders from the URI text without decoding it), deepest first."""
    if not uri.startswith("sqlite:///") or "%" not in uri:
        return []
    missing = []
    for folder in Path(uri.removeprefix("sqlite:///")).parents:
        if folder.exists():
            break
        missing.append(folder)
    return missing


def open_client(uri: str) -> Any:
    """An ``MlflowClient`` whose store has been opened: a database of another schema raises
    :class:`TrackingSchemaError` with the fix, other failures propagate as MLflow's."""
    from mlflow.tracking import MlflowClient

    stray = _undecoded_dirs(uri)
    try:
        client = MlflowClient(tracking_uri=uri)
        with_retries(client.search_experiments, max_results=1)
    except Exception as exc:
        schema = _schema_error(uri, exc)
        if schema is None:
            raise
        raise schema from exc
    finally:
        for folder in stray:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    return client


def _pid_gone(pid: str | None) -> bool:
    """Whether no process ``pid`` exists on this machine (False when unknown or alive)."""
    try:
        os.kill(int(pid or ""), 0)
    except ProcessLookupError:
        return True
    except (ValueError, OSError):  # no/invalid pid, or alive under another user
        return False
    return False


@dataclass(frozen=True)
class RunInfo:
    run_id: str | None  # None: MLflow was unusable (see open_run)
    experiment_id: str | None
    tracking_uri: str
    resumed: bool

    def as_json(self, protocol: str) -> dict[str, Any]:
        return {"run_id": self.run_id, "experiment_id": self.experiment_id,
                "protocol": protocol, "tracking_uri": self.tracking_uri}


class Tracker:
    """One MLflow run for one protocol's training, resumable by run id.

    Uses ``MlflowClient`` with an explicit run id rather than the global active run, so a
    failing run can be marked FAILED from any frame and nothing leaks between tests.
    """

    def __init__(self, experiment: str | None, cwd: str | Path | None = None) -> None:
        self.uri = tracking_uri(cwd)
        self.client = open_client(self.uri)
        self.experiment_id = (with_retries(self._experiment, experiment, artifact_location(cwd))
                              if experiment is not None else None)
        self.run_id: str | None = None

    @classmethod
    def for_run(cls, run_id: str, cwd: str | Path | None = None) -> Tracker:
        """The existing run ``run_id`` (evaluation adds to its training run); raises if the
        store cannot be opened or has no such run."""
        tracker = cls(None, cwd)
        tracker.experiment_id = with_retries(tracker.client.get_run, run_id).info.experiment_id
        tracker.run_id = run_id
        return tracker

    def _call(self, what: str, fn: Callable[..., Any], *args: Any,
              transient: Callable[[BaseException], bool] = _transient, **kwargs: Any) -> Any:
        """``fn`` retried while the failure is transient; a failure that persists becomes one
        line naming the run and ``what`` was not logged."""
        try:
            return with_retries(fn, *args, transient=transient, **kwargs)
        except Exception as exc:
            raise TrackingError(f"MLflow run {self.run_id} at {self.uri}: could not log {what} "
                                f"({_first_line(exc)})") from exc

    def _experiment(self, name: str, artifacts: str | None) -> str:
        """The experiment's id, creating it if needed (a concurrent creator's "already exists"
        is transient: the retry finds it)."""
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        return self.client.create_experiment(name, artifact_location=artifacts)

    def start(self, tags: dict[str, str], params: dict[str, str], resume_id: str | None = None) -> RunInfo:
        """Start a run, or reopen ``resume_id`` if it exists in this experiment."""
        from mlflow.entities import RunStatus

        resumed = False
        if resume_id:
            try:
                run = with_retries(self.client.get_run, resume_id)
                resumed = run.info.experiment_id == self.experiment_id
            except Exception:  # noqa: BLE001 - unknown id (e.g. another tracking DB): start afresh
                resumed = False
            if not resumed:
                log.warning("MLflow run %s from the checkpoint is not in %s; starting a new run",
                            resume_id, self.uri)
        if resumed:
            self.run_id = resume_id
            with_retries(self.client.update_run, resume_id, status=RunStatus.to_string(RunStatus.RUNNING))
            logged = with_retries(self.client.get_run, resume_id).data.params
            changed = sorted(k for k in params if k in logged and logged[k] != params[k])
            if changed:
                log.warning("params changed since this run started (kept the first values in "
                            "MLflow): %s", ", ".join(changed))
                tags = {**tags, "params_changed_on_resume": ",".join(changed)[:5000]}
            params = {k: v for k, v in params.items() if k not in logged}
            tags = {k: v for k, v in tags.items() if k != "started"}
            tags["resumed"] = "true"
        else:
            run = with_retries(self.client.create_run, self.experiment_id, tags=tags,
                               run_name=tags.get("mlflow.runName"))
            self.run_id = run.info.run_id
        self.set_tags(tags)
        self.log_params(params)
        if tags.get("protocol"):
            try:
                self.end_stale(tags["protocol"])
            except Exception as exc:  # noqa: BLE001 - housekeeping never stops training
                log.warning("could not check for stale MLflow runs of %s: %s", tags["protocol"], exc)
        return RunInfo(self.run_id, self.experiment_id, self.uri, resumed)

    def end_stale(self, protocol: str) -> list[str]:
        """Mark FAILED the other RUNNING runs of ``protocol`` whose training process is gone.

        A SIGKILL (or power loss) never reaches :meth:`end`, and a retry that cannot resume
        (no ``last.pt`` yet) starts a new run, so the old one would stay RUNNING forever.
        Only runs tagged with this host and a pid that no longer exists are touched: runs
        of live processes (``dvc queue start -j 2``) and of other machines are left alone.
        """
        from mlflow.entities import RunStatus

        host, ended = socket.gethostname(), []
        runs = with_retries(self.client.search_runs, [self.experiment_id],
                            filter_string=f"tags.protocol = '{protocol}' and attributes.status = 'RUNNING'")
        for run in runs:
            tags = run.data.tags
            if run.info.run_id == self.run_id or tags.get("host") != host or not _pid_gone(tags.get("pid")):
                continue
            with_retries(self.client.set_tag, run.info.run_id, "ended_by",
                         f"stale: training process {tags['pid']} was gone when run {self.run_id} started")
            with_retries(self.client.set_terminated, run.info.run_id, status=RunStatus.to_string(RunStatus.FAILED))
            log.warning("MLflow run %s of %s was left RUNNING by a killed process; marked FAILED",
                        run.info.run_id, protocol)
            ended.append(run.info.run_id)
        return ended

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self._call(f"tags {_names(tags)}", self.client.log_batch, self.run_id,
                   tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow's per-batch limit
            chunk = items[i : i + 100]
            self._call(f"params {_names(p.key for p in chunk)}", self.client.log_batch, self.run_id,
                       params=chunk)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(_dt.datetime.now().timestamp() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        for i in range(0, len(batch), 1000):  # MLflow's per-batch limit
            chunk = batch[i : i + 1000]
            self._call(f"metrics {_names(m.key for m in chunk)} at step {step}", self.client.log_batch,
                       self.run_id, metrics=chunk)

    def metric_history(self) -> dict[str, list[tuple[int, float]]]:
        """Every metric of the run as (step, value) pairs in step order."""
        keys = with_retries(self.client.get_run, self.run_id).data.metrics
        return {key: sorted((m.step, m.value) for m in with_retries(self.client.get_metric_history, self.run_id, key))
                for key in keys}

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Copy ``path`` into the run; OS errors (a full or briefly unavailable disk) are
        retried like a held lock."""
        what = f"artifact {Path(path).as_posix()} (into {artifact_path or 'the run root'})"
        if not Path(path).is_file():
            raise TrackingError(f"MLflow run {self.run_id} at {self.uri}: could not log {what} (no such file)")
        self._call(what, self.client.log_artifact, self.run_id, str(path), artifact_path,
                   transient=_transient_or_os)

    def end(self, status: str = "FINISHED") -> None:
        """Close the run: FINISHED, FAILED or KILLED. Only FINISHED raises when it cannot be
        recorded; the others are called while an error propagates and must not replace it."""
        if self.run_id is None:
            return
        try:
            self._call(f"its end (status {status})", self.client.set_terminated, self.run_id, status=status)
        except TrackingError as exc:
            if status == "FINISHED":
                raise
            log.error("%s", exc)



def _names(keys: Any) -> str:
    """A short list of the keys for an error line."""
    keys = sorted(keys)
    shown = ", ".join(keys[:8])
    return shown + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")


class NullTracker:
    """Stands in for :class:`Tracker` when the tracking store cannot be used: logs nothing,
    so training still writes its DVC outputs (models/, metrics/) — they are the record."""

    run_id: str | None = None

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def set_tags(self, tags: dict[str, str]) -> None: ...

    def log_params(self, params: dict[str, str]) -> None: ...

    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...

    def end(self, status: str = "FINISHED") -> None: ...


def open_run(experiment: str, tags: dict[str, str], params: dict[str, str],
             resume_id: str | None = None) -> tuple[Tracker | NullTracker, RunInfo]:
    """A started (or resumed) run; if the tracking store is unusable (read-only or missing
    folder, bad URI), a loud error and a :class:`NullTracker` instead of a crash. A database
    of another MLflow schema is refused (:class:`TrackingSchemaError`): it has a fix."""
    uri = tracking_uri()
    try:
        tracker = Tracker(experiment)
        return tracker, tracker.start(tags, params, resume_id=resume_id)
    except TrackingSchemaError:
        raise
    except Exception as exc:  # noqa: BLE001 - MLflow is the index, not the record
        log.error("MLflow tracking at %s cannot be used (%s: %s). Training goes on WITHOUT MLflow; "
                  "models/ and metrics/ are still written. To fix: make that database and its folder "
                  "writable, or set MLFLOW_TRACKING_URI to a writable location (e.g. sqlite:///<dir>/mlflow.db).",
                  uri, type(exc).__name__, str(exc).splitlines()[0][:300] if str(exc) else "")
        return NullTracker(uri), RunInfo(None, None, uri, False)


# ------------------------------------------------------------------ evaluation

def flat_metrics(metrics: dict[str, Any], prefix: str = "eval/") -> dict[str, float]:
    """Numeric leaves as ``eval/video/auc`` style keys (for MLflow); None and lists are skipped."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out.update(flat_metrics(value, f"{prefix}{key}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[f"{prefix}{key}"] = float(value)
        elif isinstance(value, list) and len(value) == 2 and key.endswith("_ci"):
            out[f"{prefix}{key}_low"], out[f"{prefix}{key}_high"] = map(float, value)
    return out


def log_evaluation(run_json: Path, metrics: dict[str, Any], artifacts: Sequence[Path],
                   step: int = 0) -> str | None:
    """Add ``eval/...`` metrics (:func:`flat_metrics`) and the artifacts to the protocol's
    training run.

    The run id comes from ``models/<protocol>/run.json``; the tracking URI from
    :func:`tracking_uri` (so ``dvc exp run --temp`` copies log to the main DB). A missing
    run file or unknown run only warns: the DVC outputs are the record, MLflow the index.
    Returns the run id logged to, or None.
    """
    run_json = Path(run_json)
    if not run_json.is_file():
        log.warning("%s not found: evaluation metrics are not logged to MLflow", run_json)
        return None
    run_id = json.loads(run_json.read_text())["run_id"]
    if not run_id:  # training ran without MLflow (unusable tracking store, see open_run)
        log.warning("%s has no MLflow run: evaluation metrics are not logged to MLflow", run_json)
        return None

    try:  # retried while another worker (dvc queue -j N, mlflow ui) holds the SQLite DB
        tracker = Tracker.for_run(run_id)
    except TrackingSchemaError:
        raise
    except Exception as exc:  # noqa: BLE001 - a run from another tracking DB: warn, never fail the stage
        log.warning("MLflow run %s (from %s) not found at %s: not logged (%s)",
                    run_id, run_json, tracking_uri(), exc)
        return None
    tracker.log_metrics(flat_metrics(metrics), step)  # a failure that persists: TrackingError
    tracker.set_tags({"eval_selection": str(metrics.get("selection", "unknown"))})
    for path in artifacts:
        tracker.log_artifact(path, "eval")
    return run_id


# ------------------------------------------------------------------ models

class UnknownRunError(TrackingError):
    """The tracking store has no run of that id."""


def existing_run(run_id: str, uri: str) -> Any:
    """MLflow's info (status, end time) of run ``run_id`` at ``uri``; :class:`UnknownRunError`
    when the store has no such run, so a caller fails before any expensive work."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        return MlflowClient(tracking_uri=uri).get_run(run_id).info
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise UnknownRunError(f"run {run_id} not found in {uri}") from None


TensorShape = tuple[tuple[int, ...], str | None]
"""A float32 tensor of a model signature: its shape (-1 = any size) and name (None: unnamed)."""


def float32_signature(inputs: Sequence[TensorShape], outputs: Sequence[TensorShape]) -> Any:
    """An MLflow ``ModelSignature`` of float32 tensors."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    def schema(tensors: Sequence[TensorShape]) -> Any:
        return Schema([TensorSpec(np.dtype(np.float32), shape, name) for shape, name in tensors])

    return ModelSignature(inputs=schema(inputs), outputs=schema(outputs))


@dataclass(frozen=True)
class ModelRecord:
    """What every logged model carries beside its weights."""

    signature: Any  # float32_signature(...)
    pip_requirements: list[str]
    metadata: dict[str, Any]
    tags: dict[str, str]
    step: int


@dataclass(frozen=True)
class PyfuncModel:
    """A ``mlflow.pyfunc.PythonModel`` to log with its artifacts and source folders."""

    name: str
    python_model: Any
    artifacts: dict[str, str]
    code_paths: list[str]
    record: ModelRecord


@dataclass(frozen=True)
class OnnxModel:
    """An ONNX ``ModelProto`` to log in MLflow's ONNX flavour (no pickled code)."""

    name: str
    proto: Any
    record: ModelRecord


def log_models(run_id: str, uri: str, run: Any, pyfunc: PyfuncModel, onnx: OnnxModel) -> tuple[Any, Any, float]:
    """Log ``pyfunc`` and then ``onnx`` into run ``run_id`` at ``uri``; returns their
    ``ModelInfo`` and the seconds the ONNX logging took. ``run`` (:func:`existing_run`, read
    before) is how the run is given back: a run that was not RUNNING keeps its status and
    end time."""
    import mlflow
    import mlflow.onnx
    import mlflow.pyfunc
    from mlflow.models import Model
    from mlflow.tracking import MlflowClient

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        # reopening the run puts the LoggedModel in the run's experiment (given only run_id,
        # MLflow would file it under the active experiment, usually Default)
        with mlflow.start_run(run_id=run_id), warnings.catch_warnings():
            # the signature is explicit; an input example would only add a 3 x S x S array to the artifact
            warnings.filterwarnings("ignore", message=".*input example was not provided.*")
            r = pyfunc.record
            pyfunc_info = Model.log(
                artifact_path=None, name=pyfunc.name, flavor=mlflow.pyfunc, run_id=run_id,
                python_model=pyfunc.python_model, artifacts=pyfunc.artifacts, code_paths=pyfunc.code_paths,
                signature=r.signature, pip_requirements=r.pip_requirements, metadata=r.metadata,
                tags=r.tags, step=r.step,
            )
            start = time.perf_counter()
            r = onnx.record
            onnx_info = mlflow.onnx.log_model(
                onnx.proto, name=onnx.name, signature=r.signature, metadata=r.metadata,
                pip_requirements=r.pip_requirements, save_as_external_data=False, tags=r.tags, step=r.step,
            )
            onnx_seconds = time.perf_counter() - start
    finally:
        mlflow.set_tracking_uri(previous)
        if run.status != "RUNNING":  # give the run back as it was (status, end time)
            MlflowClient(tracking_uri=uri).set_terminated(run_id, status=run.status, end_time=run.end_time)
    return pyfunc_info, onnx_info, onnx_seconds
