"""A trained checkpoint as two MLflow models, logged into its protocol's run.

Load with ``mlflow.pyfunc.load_model(uri)``. Input: a float32 numpy array
B x 3 x S x S, RGB in [0, 1], S = the checkpoint's ``model.input_size``: aligned faces
as ``mpfas.models.inference.load_faces`` makes them (e.g. ``load_faces(paths, S).numpy()``).
Output: a float32 array of B frame scores (higher = live). The checkpoint's
source-val threshold, model config and preprocessing (the align/extract settings the
faces must be made with: the checkpoint's) are in the model's metadata
(``model.metadata.metadata``); live iff score >= threshold.

The pyfunc artifact holds ``best.pt`` itself, and the mpfas source as code_paths so the
model loads where mpfas is not installed (its pinned requirements are logged too).
Loading it unpickles a Python object (cloudpickle): load it only from a trusted store.
``<name>_onnx`` is the same model in MLflow's ONNX flavour (``mlflow.onnx.load_model``, or
pyfunc: ``predict(faces)["score"]``): no code of ours runs when it loads, and it is logged
only after onnxruntime matched PyTorch (``mpfas.serve.export``).

The evaluate stage calls :func:`publish`: the models are logged once per checkpoint (a
re-evaluation of the same ``best.pt`` adds nothing) and the ONNX one is registered as a
version of ``mpfas-<protocol>`` (``mpfas.tracking.registry``).
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mpfas import tracking  # first: MLflow telemetry is off before mlflow is imported
from mpfas.core.config import Params

import mlflow.pyfunc  # isort: skip  # the base class of the pyfunc model; logging is tracking's

log = logging.getLogger(__name__)

ARTIFACT_KEY = "checkpoint"
DEFAULT_NAME = "model"


class FASPyfuncModel(mlflow.pyfunc.PythonModel):
    """Scores aligned faces with the checkpoint shipped in the model's artifacts."""

    def __init__(self, batch_size: int = 32, device: str = "auto") -> None:
        self.batch_size = batch_size
        self.device = device
        self._loaded = None

    def load_context(self, context) -> None:
        from mpfas.core.device import resolve_device
        from mpfas.serve.predict import load_model

        self._loaded = load_model(context.artifacts[ARTIFACT_KEY], str(resolve_device(self.device)))

    def predict(self, context, model_input: np.ndarray, params=None) -> np.ndarray:
        import torch

        from mpfas.models.inference import autocast, to_device

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
                    scores.append(model.frame_score(model(x)).float().cpu().numpy())
        return np.concatenate(scores) if scores else np.empty(0, dtype=np.float32)


PYFUNC_DISTS = ("mlflow", "torch", "torchvision", "numpy", "pillow", "opencv-python-headless", "pyyaml")


def _requirements(dists: tuple[str, ...] = PYFUNC_DISTS) -> list[str]:
    """Pins of what loading and scoring import, as installed here (torch's local tag dropped)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for dist in dists:
        try:
            pins.append(f"{dist}=={version(dist).split('+')[0]}")
        except PackageNotFoundError:
            continue
    return pins


def checkpoint_metadata(checkpoint: str | Path, params: Params | None = None, warn: bool = True) -> dict[str, Any]:
    """What the logged model says about itself (the checkpoint's record; warns where ``params``
    has another preprocessing)."""
    from mpfas.models.checkpoint import CheckpointError, load
    from mpfas.serve.predict import PredictError

    try:
        ckpt = load(checkpoint)
    except CheckpointError as exc:
        raise PredictError(str(exc)) from None
    if params is not None:
        ckpt.params_for(params, checkpoint, warn)
    return {
        "protocol": ckpt.protocol,
        "iteration": ckpt.iteration,
        "selection": ckpt.selection,
        "threshold": ckpt.threshold,
        "threshold_rule": ckpt.threshold_rule,
        "model_config": {k: v for k, v in ckpt.model_config.items() if k != "pretrained"},
        "preprocess": ckpt.preprocess.as_dict(),
        "preprocess_source": "checkpoint",
        "input": "float32 B x 3 x S x S, RGB in [0, 1], S = model_config.input_size (faces aligned with "
                 "the 'preprocess' settings)",
        "output": "float32 frame score per face, higher = live; live iff score >= threshold",
    }


@dataclass(frozen=True)
class LoggedModels:
    """The two models :func:`log_model` puts into a run."""

    pyfunc: Any  # mlflow ModelInfo: runs mpfas code (cloudpickle), for trusted stores only
    onnx: Any  # mlflow ModelInfo of the ONNX flavour: no pickled code to run
    onnx_seconds: float  # what the ONNX model added (export, parity check, logging)

    @property
    def model_uri(self) -> str:
        return self.pyfunc.model_uri

    @property
    def model_id(self) -> str:
        return self.pyfunc.model_id


def log_model(run_id: str, checkpoint_path: str | Path, *, tracking_uri: str | None = None,
              name: str = DEFAULT_NAME, batch_size: int = 32, params: Params | None = None) -> LoggedModels:
    """Log ``checkpoint_path`` into run ``run_id`` as a pyfunc model (``name``) and as an ONNX
    model (``<name>_onnx``, checked against PyTorch first; nothing is logged if that fails).
    The tracking URI defaults to ``mpfas.tracking.tracking_uri()``; ``params`` is compared
    with the checkpoint's preprocessing (a warning when they differ)."""
    checkpoint_path = Path(checkpoint_path)
    if not checkpoint_path.is_file():
        from mpfas.serve.predict import PredictError

        raise PredictError(f"{checkpoint_path}: checkpoint not found")
    uri = tracking_uri or tracking.tracking_uri()
    try:  # fails early, naming the run, when it is not in this store
        before = tracking.existing_run(run_id, uri)
    except tracking.UnknownRunError as exc:
        from mpfas.serve.predict import PredictError

        raise PredictError(f"{exc} (--run-id, or the run id in run.json)") from None
    with tempfile.TemporaryDirectory(prefix="mpfas-onnx-") as tmp:
        start = time.perf_counter()
        onnx_model = _checked_onnx(checkpoint_path, Path(tmp) / "model.onnx", params)  # warns, once
        export_seconds = time.perf_counter() - start
    meta = checkpoint_metadata(checkpoint_path, params, warn=False)
    tags, step = {"protocol": meta["protocol"], "selection": meta["selection"]}, max(meta["iteration"], 0)
    size = int(meta["model_config"]["input_size"])
    pyfunc = tracking.PyfuncModel(
        name=name, python_model=FASPyfuncModel(batch_size=batch_size),
        artifacts={ARTIFACT_KEY: str(checkpoint_path)}, code_paths=[str(Path(__file__).parent.parent)],
        record=tracking.ModelRecord(tracking.float32_signature([((-1, 3, size, size), None)], [((-1,), None)]),
                                    _requirements(), meta, tags, step))
    onnx = tracking.OnnxModel(
        name=f"{name}_onnx", proto=onnx_model,
        record=tracking.ModelRecord(_onnx_signature(onnx_model),
                                    _requirements(("mlflow", "onnx", "onnxruntime", "numpy")), meta, tags, step))
    pyfunc_info, onnx_info, log_seconds = tracking.log_models(run_id, uri, before, pyfunc, onnx)
    return LoggedModels(pyfunc_info, onnx_info, export_seconds + log_seconds)


@dataclass(frozen=True)
class Published:
    """What :func:`publish` did for one checkpoint."""

    logged: LoggedModels | None  # None: the run already held this checkpoint's models
    version: str | None = None  # registered version of mpfas-<protocol>
    alias_moved: bool = False


def publish(run_id: str, checkpoint_path: str | Path, *, tracking_uri: str | None = None) -> Published:
    """Log ``checkpoint_path``'s models into run ``run_id`` unless the run holds them already
    (same sha256), then register the ONNX model and move the ``best-source-val`` alias when
    its source-val numbers are the best (:func:`mpfas.tracking.registry.register`)."""
    from mpfas.models.checkpoint import load
    from mpfas.tracking import registry

    uri = tracking_uri or tracking.tracking_uri()
    sha = registry.sha256(checkpoint_path)
    if registry.logged_sha(run_id, uri) == sha:
        return Published(None)
    logged = log_model(run_id, checkpoint_path, tracking_uri=uri)
    ckpt = load(checkpoint_path)
    val = ckpt.val or {}
    selection = registry.Selection(
        protocol=ckpt.protocol, select=ckpt.selection, iteration=ckpt.iteration,
        val_auc=float(val["auc"]) if "auc" in val else None,
        val_hter=float(val["hter"]) if "hter" in val else None, sha256=sha)
    version, moved = registry.register(uri, logged.onnx.model_uri, run_id, selection)
    registry.mark_logged(run_id, uri, sha)  # only now: a failed registration is retried by the next call
    return Published(logged, version, moved)


def publish_best(protocol: str, run_id: str | None, checkpoint_path: str | Path) -> None:
    """:func:`publish` ``best.pt`` of ``protocol`` as an evaluate stage does it: once, registered,
    saying what it did; never fails the stage (the DVC outputs are the record); nothing without a run."""
    if not run_id:
        return
    try:
        done = publish(run_id, checkpoint_path)
    except Exception as exc:  # noqa: BLE001 - the DVC outputs are the record
        log.warning("best.pt of %s not logged as an MLflow model: %s", protocol, exc)
        return
    if done.logged is None:
        print(f"{protocol}: MLflow models of this best.pt already in run {run_id}")
    else:
        print(f"{protocol}: MLflow model {done.logged.model_uri}, registered as mpfas-{protocol} "
              f"version {done.version}" + (" (alias best-source-val)" if done.alias_moved else ""))


def _checked_onnx(checkpoint_path: Path, out: Path, params: Params | None):
    """The checkpoint as an ONNX model that onnxruntime has matched against PyTorch (``export``).

    The TorchScript exporter: the same parity check, at half the dynamo exporter's time.
    """
    import onnx

    from mpfas.serve.export import export_onnx

    export_onnx(checkpoint_path, out, dynamo=False, params=params)
    return onnx.load(str(out))


def _onnx_signature(proto) -> Any:
    """Input and output tensors as the graph declares them (symbolic dimensions as -1)."""

    def tensors(values) -> list[tracking.TensorShape]:
        return [(tuple(d.dim_value or -1 for d in v.type.tensor_type.shape.dim), v.name) for v in values]

    return tracking.float32_signature(tensors(proto.graph.input), tensors(proto.graph.output))
