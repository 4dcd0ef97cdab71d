"""ONNX export of a trained checkpoint (``python -m mpfas export``).

The graph takes ``rgb``: float32 B x 3 x S x S, RGB in [0, 1], S = the checkpoint's
``model.input_size`` (aligned faces, as ``mpfas.models.inference.load_faces`` makes them),
with a dynamic batch, and returns the method's ``export_names``: ``score`` (B, the frame
score: higher = live) first, then e.g. HFN+MP's ``map`` (B x 1 x S/8 x S/8) and ``logits``
(B x 2, index 1 = live); SSDG-R has ``score`` and ``logits``. The checkpoint's
threshold, protocol, model config and preprocessing (the align/extract settings its
training faces were made with, ``preprocess`` as JSON) are stored as ONNX metadata.

The default exporter is ``torch.onnx.export(..., dynamo=True)`` (torch.export +
onnxscript, the maintained path); ``dynamo=False`` selects the legacy TorchScript
exporter, which needs only ``onnx``. Every export is checked against PyTorch with
onnxruntime before it replaces the output file.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from mpfas import __version__
from mpfas.core.config import Params
from mpfas.core.errors import MpfasError
from mpfas.serve.predict import LoadedModel, load_model

INPUT_NAME = "rgb"
OUTPUT_NAMES = ("score", "map", "logits")  # HFN+MP's; a model's own: its ``export_names``
DEFAULT_OPSET = 18
DEFAULT_TOLERANCE = 1e-4


class ExportError(MpfasError):
    """The export failed or does not reproduce the PyTorch outputs."""


class ScoringModel(nn.Module):
    """The FAS model with its score attached (``export_outputs``): what the ONNX graph computes."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, rgb: Tensor) -> tuple[Tensor, ...]:
        return self.model.export_outputs(self.model(rgb))


@dataclass(frozen=True)
class ExportReport:
    path: Path
    exporter: str  # dynamo | torchscript
    opset: int
    input_size: int
    max_abs_diff: float  # onnxruntime vs PyTorch on the check batch, over all outputs
    check_batch: int

    def as_dict(self) -> dict:
        return {"path": self.path.as_posix(), "exporter": self.exporter, "opset": self.opset,
                "input_size": self.input_size, "max_abs_diff": self.max_abs_diff, "check_batch": self.check_batch}


def _metadata(loaded: LoadedModel, params: Params | None) -> dict[str, str]:
    cfg = loaded.model_config
    ckpt = loaded.checkpoint
    if params is not None:
        ckpt.params_for(params, loaded.path)  # warns where params.yaml differs
    return {
        "mpfas_version": __version__,
        "protocol": loaded.protocol,
        "checkpoint": loaded.path.as_posix(),
        "iteration": str(loaded.iteration),
        "selection": loaded.selection,
        "threshold": "" if loaded.threshold is None else repr(loaded.threshold),
        "method": str(cfg.get("method", "")),
        "backbone": str(cfg.get("backbone", "")),
        "pattern": str(cfg.get("pattern", "")),
        "input_size": str(loaded.input_size),
        "input": f"{INPUT_NAME}: float32 B x 3 x {loaded.input_size} x {loaded.input_size}, RGB in [0, 1], "
                 "MTCNN-aligned face",
        "decision_rule": "live iff score >= threshold",
        # how to make the faces (align/extract settings): those the checkpoint was trained on
        "preprocess": json.dumps(ckpt.preprocess.as_dict(), sort_keys=True),
        "preprocess_source": "checkpoint",  # always, since checkpoint schema 1
    }


def _torch_export(module: ScoringModel, example: Tensor, path: Path, opset: int, dynamo: bool) -> None:
    names = list(module.model.export_names)
    batch_axes = {name: {0: "batch"} for name in (INPUT_NAME, *names)}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # exporter chatter off stdout
        warnings.simplefilter("ignore")
        if dynamo:
            program = torch.onnx.export(
                module, (example,), input_names=[INPUT_NAME], output_names=names, dynamo=True,
                dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=65536)},), opset_version=opset,
                verbose=False)
            program.save(str(path), external_data=False)
        else:
            torch.onnx.export(module, (example,), str(path), input_names=[INPUT_NAME],
                              output_names=names, dynamic_axes=batch_axes, opset_version=opset,
                              dynamo=False, do_constant_folding=True)


def onnx_session(path: str | Path):
    """An onnxruntime CPU session (deterministic enough for the parity check)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def run_onnx(session_or_path, rgb: np.ndarray) -> dict[str, np.ndarray]:
    """The graph's outputs by name for a float32 B x 3 x S x S batch."""
    session = onnx_session(session_or_path) if isinstance(session_or_path, (str, Path)) else session_or_path
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, {INPUT_NAME: np.ascontiguousarray(rgb, dtype=np.float32)})
    return dict(zip(names, values))


@torch.no_grad()
def torch_outputs(model: nn.Module, rgb: np.ndarray | Tensor) -> dict[str, np.ndarray]:
    """The same outputs from PyTorch (CPU, eval mode, fp32), by ``model.export_names``."""
    scoring = ScoringModel(model).eval()
    x = torch.as_tensor(np.asarray(rgb, dtype=np.float32))
    return {name: t.float().cpu().numpy() for name, t in zip(model.export_names, scoring(x))}


def max_abs_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray], names: Sequence[str] | None = None) -> float:
    diffs = []
    if names is None and set(a) != set(b):
        raise ExportError(f"outputs differ: ONNX {sorted(a)} vs PyTorch {sorted(b)}")
    for name in names or list(b):
        if a[name].shape != b[name].shape:
            raise ExportError(f"output {name!r}: ONNX shape {a[name].shape} != PyTorch shape {b[name].shape}")
        diffs.append(float(np.abs(a[name].astype(np.float64) - b[name].astype(np.float64)).max()))
    return max(diffs)


def export_onnx(checkpoint: str | Path, out: str | Path, *, dynamo: bool = True, opset: int = DEFAULT_OPSET,
                tolerance: float = DEFAULT_TOLERANCE, check_batch: int = 3, seed: int = 0,
                params: Params | None = None) -> ExportReport:
    """Export ``checkpoint`` to ``out`` and check it with onnxruntime on random faces.

    The check batch differs from the export batch (2), so the dynamic batch is
    exercised too. ``out`` is replaced only when the check passes. The metadata records
    the checkpoint's preprocessing (``params``: warn where it differs; the fallback for a
    checkpoint that records none).
    """
    import onnx

    loaded = load_model(checkpoint, "cpu")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    size = loaded.input_size
    module = ScoringModel(loaded.model).eval()
    try:
        example = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(seed))
        try:
            _torch_export(module, example, tmp, opset, dynamo)
        except Exception as exc:
            hint = " (the dynamo exporter needs onnxscript; try --legacy)" if dynamo else ""
            raise ExportError(f"{checkpoint}: ONNX export failed{hint}: {type(exc).__name__}: {exc}") from exc
        proto = onnx.load(str(tmp))
        onnx.helper.set_model_props(proto, _metadata(loaded, params))
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        rng = np.random.default_rng(seed)
        rgb = rng.random((check_batch, 3, size, size), dtype=np.float32)
        diff = max_abs_diff(run_onnx(tmp, rgb), torch_outputs(loaded.model, rgb))
        if not diff <= tolerance:
            raise ExportError(f"{out}: onnxruntime differs from PyTorch by {diff:.3g} (> {tolerance:g}); "
                              "not written")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportReport(out, "dynamo" if dynamo else "torchscript", opset, size, diff, check_batch)
