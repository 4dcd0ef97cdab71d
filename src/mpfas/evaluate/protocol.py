"""One protocol's evaluation as the evaluate stages run it: load ``best.pt``, score the
manifest's target and source-val videos, write the outputs, log them to the training run.

Shared by ``stages/evaluate.py`` (cross-domain protocols) and ``stages/evaluate_oulu.py``
(each OULU-NPU fold, whose source-val is the Dev split: its ``*_val`` rates are the
OULU-NPU protocols' Dev-threshold rule, :mod:`mpfas.evaluate.oulu_npu`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpfas.core.config import Params, Protocol
from mpfas.core.device import resolve_device
from mpfas.evaluate.scoring import Evaluation, evaluate, write_outputs
from mpfas.evaluate.views import target_views
from mpfas.manifests.build import read_manifest
from mpfas.methods import get_method
from mpfas.models.checkpoint import Checkpoint, CheckpointError, load_model
from mpfas.models.inference import score_frames
from mpfas.tracking import log_evaluation


@dataclass(frozen=True)
class Outputs:
    """Where one protocol's evaluation is written (paths from dvc.yaml's cmd)."""

    scores: Path  # per-frame target scores (CSV)
    metrics: Path  # metrics (JSON)
    roc: Path  # target ROC points (JSON)
    plots: Path  # folder of ROC, DET and histogram images


@dataclass(frozen=True)
class ProtocolEvaluation:
    evaluation: Evaluation
    info: dict[str, Any]  # the checkpoint's record (selection, iteration, ...) as the metrics hold it
    run_id: str | None  # the MLflow run logged to (None: not logged)

    def describe(self) -> str:
        """One line for the stage's log."""
        v, info = self.evaluation.metrics["video"], self.info
        at_val = "n/a (no source-val)" if v["hter_val"] is None else f"{v['hter_val']:.2%}"
        return (f"{self.evaluation.protocol} ({info['selection']} checkpoint, iteration {info['iteration']}): "
                f"video AUC {v['auc']:.4f}, HTER@EER {v['hter_eer']:.2%}, HTER@source-val {at_val}, "
                f"oracle HTER {v['hter_oracle']:.2%}")


def check_belongs(ckpt: Checkpoint, path: Path, protocol: str, run_json: Path) -> None:
    """``best.pt`` was trained for ``protocol`` by the run ``run_json`` names: a checkpoint copied in
    from elsewhere is refused, never reported (or logged, or registered) as this protocol's."""
    if ckpt.protocol != protocol:
        raise CheckpointError(f"{path}: trained for protocol {ckpt.protocol!r}, not {protocol!r}; "
                              f"re-run train@{protocol}")
    recorded = json.loads(run_json.read_text()).get("run_id") if run_json.is_file() else None
    if ckpt.run_id and recorded and ckpt.run_id != recorded:
        raise CheckpointError(f"{path}: written by MLflow run {ckpt.run_id}, but {run_json} names run {recorded}; "
                              f"re-run train@{protocol}")


def evaluate_protocol(params: Params, protocol: str, domains: Protocol, *, checkpoint: Path, run_json: Path,
                      manifest: Path, faces: Path, out: Outputs, curve: Path | None = None) -> ProtocolEvaluation:
    """Evaluate ``checkpoint`` on ``manifest`` (whose roles hold ``domains``), write ``out`` and log
    the metrics and artifacts to the MLflow run named in ``run_json``. ``curve``: training's
    validation curve, for the paper-style and last-N views (:mod:`mpfas.evaluate.views`)."""
    cfg = params.score
    device = resolve_device(params.runtime.device)
    model, ckpt = load_model(checkpoint, device)
    check_belongs(ckpt, checkpoint, protocol, run_json)
    info = ckpt.info(checkpoint)
    info["data_source"] = params.data.source
    info["target_set"] = params.manifests.target_set
    rows = read_manifest(manifest, faces, protocol=domains)

    def score_fn(paths: list[str]):
        return score_frames(model, paths, model.input_size, cfg.batch_size, device, cfg.precision)

    ev = evaluate(protocol, rows, score_fn, cfg.faces_per_video, params.evaluate, info)
    method = get_method(ckpt.model_config["method"])
    ev.metrics["method"], ev.metrics["method_title"] = method.name, method.title
    ev.metrics["views"] = target_views(curve, params.evaluate.last_n, method.oracle) if curve is not None else None
    artifacts = write_outputs(ev, scores_csv=out.scores, metrics_json=out.metrics, roc_json=out.roc,
                              plot_dir=out.plots)
    # the score CSV can be large on real data; MLflow gets it too (the brief asks for it)
    run_id = log_evaluation(run_json, ev.metrics, artifacts, step=info["iteration"], manifest=manifest)
    return ProtocolEvaluation(ev, info, run_id)
