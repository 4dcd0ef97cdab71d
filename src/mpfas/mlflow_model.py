"""A trained checkpoint as an MLflow pyfunc model, logged into its protocol's run.

Load with ``mlflow.pyfunc.load_model(uri)``. Input: a float32 numpy array
B x 3 x S x S, RGB in [0, 1], S = the checkpoint's ``model.input_size``: aligned faces
as ``mpfas.inference.load_faces`` makes them (e.g. ``load_faces(paths, S).numpy()``).
Output: a float32 array of B frame scores (higher = live). The checkpoint's
source-val threshold and model config are in the model's metadata
(``model.metadata.metadata``); live iff score >= threshold.

The artifact holds ``best.pt`` itself, and the mpfas source as code_paths so the
model loads where mpfas is not installed (its pinned requirements are logged too).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from . import tracking  # noqa: F401  (MLflow telemetry off before mlflow is imported)
import mlflow  # noqa: E402
import mlflow.pyfunc  # noqa: E402

ARTIFACT_KEY = "checkpoint"
DEFAULT_NAME = "model"


class FASPyfuncModel(mlflow.pyfunc.PythonModel):
    """Scores aligned faces with the checkpoint shipped in the model's artifacts."""

    def __init__(self, batch_size: int = 32, device: str = "auto") -> None:
        self.batch_size = batch_size
        self.device = device
        self._loaded = None

    def load_context(self, context) -> None:
        from .evaluation.evaluate import resolve_device
        from .predict import load_model

        self._loaded = load_model(context.artifacts[ARTIFACT_KEY], resolve_device(self.device))

    def predict(self, context, model_input: np.ndarray, params=None) -> np.ndarray:
        import torch

        from .inference import autocast, to_device
        from .models import frame_score

        if self._loaded is None:
            raise RuntimeError("the model is not loaded (load it with mlflow.pyfunc.load_model)")
        size = self._loaded.input_size
        rgb = np.asarray(model_input, dtype=np.float32)
        if rgb.ndim != 4 or rgb.shape[1:] != (3, size, size):
            raise ValueError(f"expected a float32 B x 3 x {size} x {size} RGB array in [0, 1], got shape {rgb.shape}")
        model, device = self._loaded.model, torch.device(self._loaded.device)
        scores = []
        with torch.no_grad():
            for start in range(0, len(rgb), self.batch_size):
                x = to_device(torch.from_numpy(rgb[start:start + self.batch_size]), device)
                with autocast(device):
                    scores.append(frame_score(model(x)).float().cpu().numpy())
        return np.concatenate(scores) if scores else np.empty(0, dtype=np.float32)


def _signature(size: int):
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    return ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 3, size, size))]),
                          outputs=Schema([TensorSpec(np.dtype(np.float32), (-1,))]))


def _requirements() -> list[str]:
    """Pins of what loading and scoring import, as installed here (torch's local tag dropped)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for dist in ("mlflow", "torch", "torchvision", "numpy", "pillow", "opencv-python-headless", "pyyaml"):
        try:
            pins.append(f"{dist}=={version(dist).split('+')[0]}")
        except PackageNotFoundError:
            continue
    return pins


def checkpoint_metadata(checkpoint: str | Path) -> dict[str, Any]:
    """What the logged model says about itself (without building it)."""
    from .predict import _checkpoint_meta

    meta = _checkpoint_meta(Path(checkpoint))
    if "model_config" not in meta:
        from .predict import PredictError

        raise PredictError(f"{checkpoint}: not a training checkpoint (no model_config)")
    val = meta.get("val") if isinstance(meta.get("val"), dict) else {}
    threshold = meta.get("threshold", val.get("threshold"))
    return {
        "protocol": str(meta.get("protocol", "")),
        "iteration": int(meta.get("iteration", -1)),
        "selection": str(meta.get("select", "unknown")),
        "threshold": None if threshold is None or not np.isfinite(threshold) else float(threshold),
        "model_config": {k: v for k, v in dict(meta["model_config"]).items() if k != "pretrained"},
        "input": "float32 B x 3 x S x S, RGB in [0, 1], S = model_config.input_size (aligned faces)",
        "output": "float32 frame score per face, higher = live; live iff score >= threshold",
    }


def log_model(run_id: str, checkpoint_path: str | Path, *, tracking_uri: str | None = None,
              name: str = DEFAULT_NAME, batch_size: int = 32):
    """Log ``checkpoint_path`` as a pyfunc model into run ``run_id``; return MLflow's ModelInfo
    (``.model_uri`` loads it). The tracking URI defaults to ``mpfas.tracking.tracking_uri()``."""
    import mpfas
    from mlflow.models import Model

    checkpoint_path = Path(checkpoint_path)
    if not checkpoint_path.is_file():
        from .predict import PredictError

        raise PredictError(f"{checkpoint_path}: checkpoint not found")
    meta = checkpoint_metadata(checkpoint_path)
    uri = tracking_uri or tracking.tracking_uri()
    client = mlflow.MlflowClient(tracking_uri=uri)
    before = client.get_run(run_id).info  # fails early, naming the run, when it is not in this store
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        # reopening the run puts the LoggedModel in the run's experiment (given only run_id,
        # MLflow would file it under the active experiment, usually Default)
        with mlflow.start_run(run_id=run_id), warnings.catch_warnings():
            # the signature is explicit; an input example would only add a 3 x S x S array to the artifact
            warnings.filterwarnings("ignore", message=".*input example was not provided.*")
            info = Model.log(
                artifact_path=None, name=name, flavor=mlflow.pyfunc, run_id=run_id,
                python_model=FASPyfuncModel(batch_size=batch_size),
                artifacts={ARTIFACT_KEY: str(checkpoint_path)},
                code_paths=[str(Path(mpfas.__file__).parent)],
                signature=_signature(int(meta["model_config"]["input_size"])),
                pip_requirements=_requirements(), metadata=meta,
                tags={"protocol": meta["protocol"], "selection": meta["selection"]},
                step=max(meta["iteration"], 0),
            )
    finally:
        mlflow.set_tracking_uri(previous)
        if before.status != "RUNNING":  # give the run back as it was (status, end time)
            client.set_terminated(run_id, status=before.status, end_time=before.end_time)
    return info
