"""The tracking store: where it is, opening it, and retrying its calls.

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
  environment, so it is set (``mpfas.core.telemetry``) before ``mlflow`` is ever imported, and
  the client is reset in case someone imported mlflow earlier.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import shlex
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mpfas.core.errors import MpfasError
from mpfas.core.paths import main_root
from mpfas.core.telemetry import quiet_network

log = logging.getLogger("mpfas.tracking")

DB_NAME = "mlflow.db"
ARTIFACT_DIR = "mlartifacts"
RETRY_SECONDS = 120.0
"""How long tracking calls keep retrying while another process holds the SQLite DB."""
_TRANSIENT = ("database is locked", "database table is locked", "already exists", "unique constraint failed")
_OLD_SCHEMA = re.compile(r"out-of-date database schema \(found version (\w+), but expected (\w+)\)")


class TrackingError(MpfasError):
    """MLflow could not record part of a run, even after retrying; says which run and what."""


class TrackingSchemaError(TrackingError):
    """The tracking store cannot be used as it is (written by another MLflow version, or copied
    from another repository); refused before any work, saying how to fix it."""


class StoreMovedError(TrackingSchemaError):
    """The store's artifact folder lies outside this repository: it was copied or moved."""


def check_artifact_root(location: str | None, cwd: str | Path | None = None) -> None:
    """``location`` (an experiment's or a run's artifact URI) lies under this repository's
    ``mlartifacts``; MLflow stores it as an absolute path, so a repository copied or moved with its
    ``mlflow.db`` would otherwise write every artifact into the original's folder."""
    expected = artifact_location(cwd)
    if expected is None or not location or not location.startswith("file:"):
        return  # MLFLOW_TRACKING_URI chooses the store, or the artifacts live on a server
    from mlflow.utils.file_utils import local_file_uri_to_path

    found, root = Path(local_file_uri_to_path(location)), Path(local_file_uri_to_path(expected))
    if not found.resolve().is_relative_to(root.resolve()):
        raise StoreMovedError(
            f"{tracking_uri(cwd)}: MLflow keeps these artifacts under {found}, outside this repository's {root}: "
            "the repository was copied or moved with its mlflow.db. Move mlflow.db and mlartifacts/ aside to "
            "start a store here, or set MLFLOW_TRACKING_URI to the original store")


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
    ``budget`` seconds (default ``RETRY_SECONDS``). Own code: no retry library is pinned, and
    MLflow's own retries cover its HTTP client, not a locked SQLite store."""
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


@contextlib.contextmanager
def process_tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's process-wide tracking URI set to ``uri`` for calls that use it (the fluent
    ``mlflow.start_run``/``log_model``; ``create_model_version`` resolving a ``models:/m-...``
    source with a default client), then restored exactly. ``mlflow.set_tracking_uri`` also
    writes ``MLFLOW_TRACKING_URI`` into the environment, so that is restored too."""
    import mlflow
    from mlflow.tracking._tracking_service import utils

    was_set = utils.is_tracking_uri_set()
    previous = mlflow.get_tracking_uri() if was_set else None
    env = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)
        if env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = env
