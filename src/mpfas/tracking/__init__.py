"""MLflow for the pipeline: where runs go, how they are named, tagged and resumed.

DVC owns orchestration and params; MLflow owns per-run curves and artifacts. Every MLflow
call of the package is in this package:

* :mod:`.store`: the tracking DB (found from the main repository root, also for ``dvc exp
  run --temp``), opening it, and retrying calls while another process holds the SQLite lock;
* here: training's run (:class:`Tracker`), evaluation's metrics (:func:`log_evaluation`),
  and the summary in the pipeline's parent run (:func:`log_pipeline_summary`);
* :mod:`.lineage`: the experiment's kind and headline view, dataset inputs, parent runs;
* :mod:`.models`: the logged models; :mod:`.registry`: the model registry.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import logging
import math
import os
import socket
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mpfas.core.config import Params
from mpfas.core.paths import main_root
from mpfas.tracking.lineage import find_parent, headline_metrics, log_manifest, mark_experiment, parent_run, source_tags
from mpfas.tracking.models import (
    ModelRecord,
    OnnxModel,
    PyfuncModel,
    TensorShape,
    UnknownRunError,
    existing_run,
    float32_signature,
    log_models,
)
from mpfas.tracking.store import (
    ARTIFACT_DIR,
    DB_NAME,
    RETRY_SECONDS,
    StoreMovedError,
    TrackingError,
    TrackingSchemaError,
    _first_line,
    _transient,
    _transient_or_os,
    artifact_location,
    check_artifact_root,
    open_client,
    sqlite_uri,
    tracking_uri,
    with_retries,
)

__all__ = [
    "ARTIFACT_DIR",
    "DB_NAME",
    "RETRY_SECONDS",
    "ModelRecord",
    "NullTracker",
    "OnnxModel",
    "PyfuncModel",
    "RunInfo",
    "StoreMovedError",
    "TensorShape",
    "Tracker",
    "TrackingError",
    "TrackingSchemaError",
    "UnknownRunError",
    "artifact_location",
    "check_artifact_root",
    "existing_run",
    "flat_metrics",
    "flat_params",
    "float32_signature",
    "git_commit",
    "log_evaluation",
    "log_models",
    "log_pipeline_summary",
    "main_root",
    "open_client",
    "open_run",
    "pipeline_run_name",
    "run_tags",
    "sqlite_uri",
    "tracking_uri",
    "with_retries",
]

log = logging.getLogger(__name__)

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
             world_size: int = 1, script: str = "stages/train.py") -> dict[str, str]:
    """Tags every training run carries (protocol, commit, DVC experiment, init, selection,
    how many data-parallel processes trained it, and MLflow's source tags for ``script``)."""
    from mpfas.core.presets import differences, preset_for

    pretrained = params.model.pretrained if not params.model.random_init else "random-init"
    differs = differences(params, preset_for(params.model.method))
    tags = {
        "protocol": protocol,
        "git_commit": commit,
        "pipeline_run": pipeline_run_name(params_file, commit),
        "pretrained": pretrained,
        "method": params.model.method,
        "algorithm": params.train.algorithm,
        "select": params.train.select,
        "leakage": "target-oracle (selects on the target set)" if params.train.select == "target_oracle"
        else f"none (selects on {'source-val' if params.train.select == 'source_val' else 'the last iteration'})",
        # every knob that is not the method's official setting (`python -m mpfas preset paper|ssdg-paper`)
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
    return {**tags, **source_tags(script, commit)}


def flat_params(params: Params) -> dict[str, str]:
    """params.yaml flattened to ``section.key`` strings (MLflow caps values at 6000 chars); sections a
    stage does not declare are hidden from it (mpfas.core.stage) and left out."""
    sections = {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}
    visible = {name: dataclasses.asdict(s) for name, s in sections.items() if dataclasses.is_dataclass(s)}
    flat = pd.json_normalize(visible, sep=".").iloc[0].to_dict() if visible else {}
    return {k: str(v)[:6000] for k, v in flat.items()}


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
        self.uri, self.cwd = tracking_uri(cwd), cwd
        self.client = open_client(self.uri)
        self.experiment_id = (with_retries(self._experiment, experiment, artifact_location(cwd))
                              if experiment is not None else None)
        self.run_id: str | None = None
        self._pending: list[Any] = []  # metrics logged with flush=False, not yet written
        self._monitor: Any = None  # MLflow's SystemMetricsMonitor, while it samples

    @classmethod
    def for_run(cls, run_id: str, cwd: str | Path | None = None) -> Tracker:
        """The existing run ``run_id`` (evaluation adds to its training run); raises if the
        store cannot be opened or has no such run."""
        tracker = cls(None, cwd)
        info = with_retries(tracker.client.get_run, run_id).info
        check_artifact_root(info.artifact_uri, cwd)
        tracker.experiment_id, tracker.run_id = info.experiment_id, run_id
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
            check_artifact_root(found.artifact_location, self.cwd)
        experiment_id = (found.experiment_id if found is not None
                         else self.client.create_experiment(name, artifact_location=artifacts))
        try:
            mark_experiment(self.client, experiment_id)
        except Exception as exc:  # noqa: BLE001 - the UI's view never stops training
            log.warning("could not tag MLflow experiment %s for the runs view: %s", experiment_id, _first_line(exc))
        return experiment_id

    def start(self, tags: dict[str, str], params: dict[str, str], resume_id: str | None = None) -> RunInfo:
        """Start a run, or reopen ``resume_id`` if it exists in this experiment."""
        from mlflow.entities import RunStatus

        if tags.get("pipeline_run") and self.experiment_id is not None:  # the protocol runs' parent
            try:
                tags = {**tags, "mlflow.parentRunId": parent_run(self.client, self.experiment_id,
                                                                 tags["pipeline_run"])}
            except Exception as exc:  # noqa: BLE001 - grouping never stops training
                log.warning("no MLflow parent run for pipeline run %s: %s", tags["pipeline_run"], _first_line(exc))
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

    def log_metrics(self, metrics: dict[str, float], step: int, flush: bool = True) -> None:
        """Log ``metrics`` at ``step``, timestamped now. ``flush`` False keeps them for the next
        call that flushes (or :meth:`flush`, :meth:`end`): one database write for many iterations
        instead of one each (about 4 ms each into SQLite on a 2-core CPU)."""
        from mlflow.entities import Metric

        now = int(_dt.datetime.now().timestamp() * 1000)
        self._pending += [Metric(k, float(v), now, step) for k, v in metrics.items()]
        if flush:
            self.flush()

    def flush(self) -> None:
        """Write the metrics kept by ``log_metrics(..., flush=False)``."""
        batch, self._pending = self._pending, []
        for i in range(0, len(batch), 1000):  # MLflow's per-batch limit
            chunk = batch[i : i + 1000]
            steps = sorted({m.step for m in chunk})
            where = f"step {steps[0]}" if len(steps) == 1 else f"steps {steps[0]}-{steps[-1]}"
            self._call(f"metrics {_names({m.key for m in chunk})} at {where}", self.client.log_batch,
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

    def log_dataset(self, manifest: str | Path, name: str, context: str) -> None:
        """The manifest as the run's dataset input (:func:`.lineage.log_manifest`)."""
        self._call(f"dataset input {Path(manifest).as_posix()}", log_manifest, self.client, self.run_id,
                   manifest, name, context)

    def start_system_metrics(self, resumed: bool = False) -> None:
        """MLflow's own CPU, memory, disk and (with pynvml) GPU sampling into ``system/...``
        metrics of this run, until :meth:`end`."""
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        self._monitor = SystemMetricsMonitor(self.run_id, resume_logging=resumed, tracking_uri=self.uri)
        self._monitor.start()

    def end(self, status: str = "FINISHED") -> None:
        """Close the run: FINISHED, FAILED or KILLED. Only FINISHED raises when it cannot be
        recorded; the others are called while an error propagates and must not replace it."""
        if self.run_id is None:
            return
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            monitor.finish()
        try:
            self.flush()
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

    def log_metrics(self, metrics: dict[str, float], step: int, flush: bool = True) -> None: ...

    def flush(self) -> None: ...

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...

    def log_dataset(self, manifest: str | Path, name: str, context: str) -> None: ...

    def start_system_metrics(self, resumed: bool = False) -> None: ...

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
                   step: int = 0, manifest: Path | None = None) -> str | None:
    """Add ``eval/...`` metrics (:func:`flat_metrics`), the headline metrics
    (:func:`.lineage.headline_metrics`), the manifest as an evaluation dataset input and the
    artifacts to the protocol's training run.

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
    # a failure that persists: TrackingError
    tracker.log_metrics({**flat_metrics(metrics), **headline_metrics(metrics)}, step)
    tracker.set_tags({"eval_selection": str(metrics.get("selection", "unknown"))})
    if manifest is not None:
        # MLflow keeps one input per (dataset, run): the same manifest under its own name
        tracker.log_dataset(manifest, f"{metrics.get('protocol') or Path(manifest).stem} (evaluation)", "evaluation")
    for path in artifacts:
        tracker.log_artifact(path, "eval")
    return run_id


def log_pipeline_summary(experiment: str, params_file: str | Path, paths: Sequence[Path]) -> str | None:
    """Log ``paths`` (the summary table and plot) into the parent run of this pipeline run
    (:func:`pipeline_run_name`, as the train stages computed it). Only warns when MLflow has
    no such parent (no protocol run was trained with these params): the report is the record."""
    name = pipeline_run_name(params_file, git_commit())
    try:
        tracker = Tracker(None)
        found = with_retries(tracker.client.get_experiment_by_name, experiment)
        parent = find_parent(tracker.client, found.experiment_id, name) if found is not None else None
    except TrackingSchemaError:
        raise
    except Exception as exc:  # noqa: BLE001 - an unusable store: warn, never fail the stage
        log.warning("MLflow at %s cannot be used (%s): the summary is not logged", tracking_uri(), exc)
        return None
    if parent is None:
        log.warning("no MLflow parent run of pipeline run %s in experiment %r: the summary is not logged",
                    name, experiment)
        return None
    tracker.run_id = parent
    for path in paths:
        tracker.log_artifact(path, "summary")
    return parent
