"""The evaluate stage's library: score videos, fix thresholds, compute every metric.

The stage logic takes a *scoring callable* (face paths -> frame scores) so it
does not care where the scores come from; ``stages/evaluate.py`` builds that
callable from a checkpoint (``mpfas.models.checkpoint``) with ``mpfas.models.inference.score_frames``.

Three thresholds are reported (docs/method.md, "Metrics"), at frame and at video level:

* ``eer``    - the target's own EER threshold (how most papers report HTER);
* ``oracle`` - the lowest HTER swept on the target (the official MIN_HTER);
* ``val``    - the EER threshold of the *source-val* videos, fixed before the
  target is seen: the only leakage-free one, and the one a deployment would use.
  When the manifest keeps no source-val videos (``manifests.val_fraction: 0``, all source
  videos train, as in the official code) these metrics are null.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mpfas.core import atomic
from mpfas.core.config import LEAKAGE_FREE_SELECTIONS, EvaluateConfig
from mpfas.core.errors import MpfasError
from mpfas.core.metrics import (
    best_hter,
    check_binary,
    eer,
    error_rates,
    iso_rates,
    min_attacks_for_fpr,
    roc_auc,
    roc_curve,
    tpr_at_fpr,
)
from mpfas.core.sampling import pick_evenly
from mpfas.evaluate.bootstrap import bootstrap_ci
from mpfas.manifests.build import ManifestRow

ScoreFn = Callable[[list[str]], np.ndarray]
"""Frame scores (higher = live) for a list of repo-relative face image paths."""

ATTACK_TYPES = ("print", "replay")
TPR_AT = {"tpr_at_fpr_1pct": 0.01, "tpr_at_fpr_0p1pct": 0.001}
SCORE_COLUMNS = ["video_id", "dataset", "domain", "label", "attack", "is_live", "frame",
                 "frame_score", "video_score"]


class EvaluationError(MpfasError, ValueError):
    """The data cannot be evaluated as asked (e.g. a set with a single class)."""


@dataclass(frozen=True)
class VideoScores:
    """One video's frame scores; its video score is their mean (docs/method.md)."""

    row: ManifestRow
    frames: list[str]
    frame_scores: np.ndarray

    @property
    def score(self) -> float:
        return float(self.frame_scores.mean())


@dataclass(frozen=True)
class ScoreSet:
    """Scores of one set at one level, with what the metrics need beside them."""

    scores: np.ndarray
    is_live: np.ndarray
    kinds: np.ndarray  # live / print / replay per sample
    groups: np.ndarray  # video index per sample (for the video bootstrap)


@dataclass
class Evaluation:
    protocol: str
    metrics: dict[str, Any]
    target: list[VideoScores]
    val: list[VideoScores]
    roc: list[dict[str, float | None]] = field(default_factory=list)


def score_videos(rows: Sequence[ManifestRow], score_fn: ScoreFn, num_frames: int, where: str) -> list[VideoScores]:
    """Score every video's selected faces with one call of ``score_fn``."""
    picked = [pick_evenly(r.faces, num_frames) for r in rows]
    empty = [r.video_id for r, f in zip(rows, picked) if not f]
    if empty:
        raise EvaluationError(f"{where}: {len(empty)} videos have no aligned face, e.g. {empty[0]}")
    flat = [p for faces in picked for p in faces]
    scores = np.asarray(score_fn(flat), dtype=np.float64).ravel()
    if scores.shape != (len(flat),):
        raise EvaluationError(f"{where}: scorer returned {scores.size} scores for {len(flat)} faces")
    if not np.all(np.isfinite(scores)):
        raise EvaluationError(f"{where}: the model produced NaN or infinite scores")
    out, start = [], 0
    for row, faces in zip(rows, picked):
        out.append(VideoScores(row, faces, scores[start:start + len(faces)]))
        start += len(faces)
    return out


def score_set(videos: Sequence[VideoScores], level: str) -> ScoreSet:
    """Frame-level (every scored face) or video-level (one mean score per video) samples."""
    if level == "video":
        return ScoreSet(
            scores=np.array([v.score for v in videos]),
            is_live=np.array([v.row.is_live for v in videos], dtype=np.int64),
            kinds=np.array([v.row.label for v in videos], dtype=object),
            groups=np.arange(len(videos)),
        )
    if level == "frame":
        sizes = [len(v.frame_scores) for v in videos]
        return ScoreSet(
            scores=np.concatenate([v.frame_scores for v in videos]),
            is_live=np.repeat([v.row.is_live for v in videos], sizes).astype(np.int64),
            kinds=np.repeat(np.array([v.row.label for v in videos], dtype=object), sizes),
            groups=np.repeat(np.arange(len(videos)), sizes),
        )
    raise ValueError(f"unknown level {level!r}; use 'frame' or 'video'")


def level_metrics(target: ScoreSet, val: ScoreSet | None, *, where: str, resamples: int,
                  seed: int) -> dict[str, Any]:
    """Every metric of one level (frame or video). Rates are fractions in [0, 1].

    ``val`` None (no source-val videos): the source-val threshold and its metrics are None.
    """
    sets = [(f"{where} target", target)] + ([(f"{where} source-val", val)] if val is not None else [])
    for name, s in sets:
        try:
            check_binary(s.scores, s.is_live, name)
        except ValueError as exc:
            raise EvaluationError(str(exc)) from None
    t_s, t_y = target.scores, target.is_live
    eer_rate, eer_thr = eer(t_s, t_y)
    oracle_hter, oracle_thr = best_hter(t_s, t_y)
    val_eer, val_thr = eer(val.scores, val.is_live) if val is not None else (None, None)
    m: dict[str, Any] = {
        "auc": roc_auc(t_s, t_y),
        "eer": eer_rate,
        "eer_threshold": eer_thr,
        "hter_oracle": oracle_hter,
        "oracle_threshold": oracle_thr,
        "val_auc": roc_auc(val.scores, val.is_live) if val is not None else None,  # what a sweep ranks on
        "val_eer": val_eer,
        "val_threshold": val_thr,
    }
    for tag, thr in (("eer", eer_thr), ("oracle", oracle_thr), ("val", val_thr)):
        if thr is None:
            for key in ("hter", "far", "frr", "apcer", "bpcer", "acer"):
                m[f"{key}_{tag}"] = None
            for kind in ATTACK_TYPES:
                m[f"apcer_{kind}_{tag}"] = None
            continue
        rates = error_rates(t_s, t_y, thr)
        iso = iso_rates(t_s, t_y, target.kinds, thr)
        m[f"hter_{tag}"] = rates.hter
        m[f"far_{tag}"] = rates.far
        m[f"frr_{tag}"] = rates.frr
        m[f"apcer_{tag}"] = iso.apcer
        m[f"bpcer_{tag}"] = iso.bpcer
        m[f"acer_{tag}"] = iso.acer
        for kind in ATTACK_TYPES:
            m[f"apcer_{kind}_{tag}"] = iso.apcer_per_type.get(kind)
    for key, fpr in TPR_AT.items():
        m[key] = tpr_at_fpr(t_s, t_y, fpr)
    if resamples > 0:
        common = dict(groups=target.groups, resamples=resamples, seed=seed, where=f"{where} target")
        m["auc_ci"] = bootstrap_ci(t_s, t_y, roc_auc, **common).as_list()
        m["hter_eer_ci"] = bootstrap_ci(t_s, t_y, _hter_at_own_eer, **common).as_list()
        if val_thr is not None:
            m["hter_val_ci"] = bootstrap_ci(
                t_s, t_y, lambda s, y: error_rates(s, y, val_thr).hter, **common
            ).as_list()
    return m


def evaluate(
    protocol: str,
    rows: Sequence[ManifestRow],
    score_fn: ScoreFn,
    faces_per_video: int,
    cfg: EvaluateConfig,
    info: dict[str, Any] | None = None,
) -> Evaluation:
    """Score the target and source-val videos of a manifest and compute all metrics.

    ``info`` (checkpoint selection, iteration, data source, ...) is copied into
    the metrics dict so the numbers say how they were obtained.
    """
    target_rows = [r for r in rows if r.role == "target"]
    val_rows = [r for r in rows if r.role == "source-val"]
    if not target_rows:
        raise EvaluationError(f"{protocol}: the manifest has no target videos")
    target = score_videos(target_rows, score_fn, faces_per_video, f"{protocol} target")
    val = score_videos(val_rows, score_fn, faces_per_video, f"{protocol} source-val") if val_rows else []

    metrics: dict[str, Any] = {
        "protocol": protocol,
        **(info or {}),
        "num_frames": faces_per_video,  # faces scored per video (0 = all aligned faces)
        "bootstrap": cfg.bootstrap,  # stratified video resamples behind the *_ci intervals
    }
    for level in ("video", "frame"):
        metrics[level] = level_metrics(
            score_set(target, level), score_set(val, level) if val else None,
            where=f"{protocol} {level}-level", resamples=cfg.bootstrap, seed=cfg.seed,
        )
    metrics["counts"] = {"target": _counts(target), "source_val": _counts(val)}
    metrics["leakage_free"] = {  # whether the checkpoint and the threshold were fixed without the target
        "checkpoint": metrics.get("selection") in LEAKAGE_FREE_SELECTIONS,
        "threshold_source_val": bool(val),
    }
    metrics["notes"] = _notes(metrics)
    vs = score_set(target, "video")
    roc = roc_curve(vs.scores, vs.is_live)
    points = [
        {"fpr": float(f), "tpr": float(t), "threshold": float(h) if math.isfinite(h) else None}
        for f, t, h in zip(roc.fpr, roc.tpr, roc.thresholds)
    ]
    return Evaluation(protocol=protocol, metrics=metrics, target=target, val=val, roc=points)


def write_scores_csv(videos: Sequence[VideoScores], path: Path) -> None:
    """One row per scored target frame, with its video's mean score beside it."""
    rows = (
        {"video_id": v.row.video_id, "dataset": v.row.dataset, "domain": v.row.domain,
         "label": v.row.label, "attack": v.row.attack, "is_live": v.row.is_live,
         "frame": frame, "frame_score": f"{score:.6f}", "video_score": f"{v.score:.6f}"}
        for v in videos for frame, score in zip(v.frames, v.frame_scores)
    )
    atomic.write_csv(path, rows, SCORE_COLUMNS)


def write_outputs(ev: Evaluation, *, scores_csv: Path, metrics_json: Path, roc_json: Path,
                  plot_dir: Path) -> list[Path]:
    """Write every artifact of one protocol; return the paths (for MLflow)."""
    from mpfas.evaluate.plots import plot_det, plot_histograms, plot_roc

    write_scores_csv(ev.target, scores_csv)
    atomic.write_json(metrics_json, ev.metrics)
    atomic.write_json(roc_json, ev.roc)
    plot_dir.mkdir(parents=True, exist_ok=True)
    video, val = score_set(ev.target, "video"), (score_set(ev.val, "video") if ev.val else None)
    frame = score_set(ev.target, "frame")
    m = ev.metrics
    pngs = [
        plot_roc({"video": (video.scores, video.is_live), "frame": (frame.scores, frame.is_live)},
                 plot_dir / "roc.png", title=f"{ev.protocol}: target ROC",
                 marks={"EER thr.": m["video"]["eer_threshold"], "source-val thr.": m["video"]["val_threshold"]}),
        plot_det({"video": (video.scores, video.is_live), "frame": (frame.scores, frame.is_live)},
                 plot_dir / "det.png", title=f"{ev.protocol}: target DET"),
        plot_histograms(video.scores, video.kinds, plot_dir / "hist.png",
                        title=f"{ev.protocol}: target video scores",
                        thresholds={"target EER": m["video"]["eer_threshold"],
                                    "source-val": m["video"]["val_threshold"]},
                        reference=(val.scores, val.kinds) if val is not None else None,
                        reference_name="source-val"),
    ]
    return [scores_csv, metrics_json, roc_json, *pngs]


# ------------------------------------------------------------------ helpers

def _hter_at_own_eer(s: np.ndarray, y: np.ndarray) -> float:
    return eer(s, y)[0]


def _counts(videos: Sequence[VideoScores]) -> dict[str, int]:
    labels = Counter(v.row.label for v in videos)
    return {
        "videos": len(videos),
        "frames": int(sum(len(v.frame_scores) for v in videos)),
        "live": labels.get("live", 0),
        "print": labels.get("print", 0),
        "replay": labels.get("replay", 0),
        "attack": len(videos) - labels.get("live", 0),
    }


def _notes(metrics: dict[str, Any]) -> dict[str, str]:
    """Why a value is null (the definitions live in this module's docstring and the report)."""
    notes: dict[str, str] = {}
    for level in ("video", "frame"):
        for key in ("eer_threshold", "oracle_threshold", "val_threshold"):
            if metrics[level][key] is None:
                notes[f"{level}_{key}"] = "null: no source-val videos (manifests.val_fraction is 0)"
            elif not math.isfinite(metrics[level][key]):
                notes[f"{level}_{key}"] = "null: +inf, i.e. reject every face as an attack"
        for key, fpr in TPR_AT.items():
            if metrics[level][key] is None:
                need = min_attacks_for_fpr(fpr)
                notes[f"{level}_{key}"] = (f"null: too few target attack {level}s to resolve "
                                           f"FPR = {fpr:g} (needs >= {need})")
    return notes
