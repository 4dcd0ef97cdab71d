"""The logged models: their signature, what they carry, and logging them into a run."""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mpfas.tracking.store import TrackingError, process_tracking_uri


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

    try:
        # reopening the run puts the LoggedModel in the run's experiment (given only run_id,
        # MLflow would file it under the active experiment, usually Default)
        with process_tracking_uri(uri), mlflow.start_run(run_id=run_id), warnings.catch_warnings():
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
        if run.status != "RUNNING":  # give the run back as it was (status, end time)
            MlflowClient(tracking_uri=uri).set_terminated(run_id, status=run.status, end_time=run.end_time)
    return pyfunc_info, onnx_info, onnx_seconds
