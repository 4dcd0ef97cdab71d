"""Apply a trained checkpoint to images, videos or folders (``python -m mpfas predict``).

Nothing here re-implements the pipeline: video frames are sampled as the extract
stage samples them (``extract.frames_per_video``, ``extract.decode``), the main face
is found and warped by the align stage's MTCNN detector and 5-point warp, and the
crops go through the same PNG round trip and ``mpfas.models.inference.score_frames`` as
evaluation, so a face gets the score it would get in ``evaluate``. The extract and
align settings are those the checkpoint records it was trained with
(``mpfas.models.checkpoint.Preprocess``), not params.yaml's (a warning names each difference).
The decision rule is the evaluation's: live iff score >= threshold, with the
checkpoint's source-val EER threshold unless the caller gives one.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import cv2
import numpy as np

from mpfas.core import atomic
from mpfas.core.config import ExtractConfig, Params
from mpfas.core.errors import MpfasError

if TYPE_CHECKING:  # importing mpfas.models.checkpoint loads torch: only when a model is loaded
    from mpfas.models.checkpoint import Checkpoint

IMAGE_EXTS = frozenset({".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp"})
VIDEO_EXTS = frozenset({".avi", ".m4v", ".mkv", ".mov", ".mp4", ".mpeg", ".mpg", ".webm", ".wmv"})
DEFAULT_THRESHOLD = 0.5  # only for checkpoints that saved none (said in the output)
CSV_COLUMNS = ["input", "kind", "status", "frame", "face_score", "face_decision", "score", "decision",
               "threshold", "det_prob", "x1", "y1", "x2", "y2", "face_path", "error"]

Kind = Literal["image", "video"]


class PredictError(MpfasError):
    """Bad usage or a checkpoint that cannot be used: nothing is predicted (exit 2)."""


class InputError(Exception):
    """One input cannot be scored (unreadable, no face); the others go on (exit 1)."""


# ------------------------------------------------------------------ the model


@dataclass(frozen=True)
class LoadedModel:
    """A checkpoint's model in eval mode, with the checkpoint it came from."""

    model: Any  # a registered method's network (mpfas.methods)
    path: Path
    device: str
    checkpoint: Checkpoint  # threshold, preprocessing, how it was chosen (weights are in ``model``)

    @property
    def input_size(self) -> int:
        return int(self.model.input_size)

    @property
    def threshold(self) -> float | None:
        """The checkpoint's decision threshold (source-val EER; None: it saved none)."""
        return self.checkpoint.threshold

    @property
    def protocol(self) -> str:
        return self.checkpoint.protocol

    @property
    def iteration(self) -> int:
        return self.checkpoint.iteration

    @property
    def selection(self) -> str:
        return self.checkpoint.selection

    @property
    def model_config(self) -> dict[str, Any]:
        return self.checkpoint.model_config


def load_model(path: str | Path, device: str = "cpu") -> LoadedModel:
    """Rebuild a checkpoint's model (``mpfas.models.checkpoint``); :class:`PredictError` names the file
    when it is missing, unreadable, of an old schema or does not fit its architecture.
    ``models:/<name>@<alias>`` and ``models:/<name>/<version>`` load the registered version's
    checkpoint from the tracking store (:func:`mpfas.tracking.registry.resolve_checkpoint`)."""
    if str(path).startswith("models:/"):
        return _load_registered(str(path), device)
    from mpfas.models.checkpoint import CheckpointError
    from mpfas.models.checkpoint import load_model as load

    path = Path(path)
    if not path.is_file():
        raise PredictError(f"{path}: checkpoint not found (train it first, or pass --model)")
    try:
        model, ckpt = load(path, device)
    except CheckpointError as exc:
        raise PredictError(str(exc)) from None
    return LoadedModel(model=model, path=path, device=str(device), checkpoint=ckpt)


def _load_registered(model_uri: str, device: str) -> LoadedModel:
    """A registered model version's checkpoint, downloaded to a temporary folder and loaded."""
    from mpfas.tracking import TrackingError, tracking_uri
    from mpfas.tracking.registry import resolve_checkpoint

    with tempfile.TemporaryDirectory(prefix="mpfas-registered-") as tmp:
        try:
            path = resolve_checkpoint(model_uri, tmp, tracking_uri())
        except TrackingError as exc:
            raise PredictError(str(exc)) from None
        loaded = load_model(path, device)
    return replace(loaded, path=Path(model_uri))


# ------------------------------------------------------------------ inputs


@dataclass
class FaceResult:
    frame: int  # frame number in the video (0 for an image)
    score: float
    live: bool
    prob: float  # MTCNN confidence
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in input pixels
    face_path: str = ""  # where the aligned crop was saved (--save-faces)


@dataclass
class InputResult:
    """One image or video: per-face scores and, for the input, their mean."""

    input: str
    kind: str  # image | video | "" when it could not be told
    frames: int = 0  # frames looked at
    faces: list[FaceResult] = field(default_factory=list)
    frames_without_face: list[int] = field(default_factory=list)
    error: str = ""
    threshold: float = DEFAULT_THRESHOLD
    score_frames: list[int] = field(default_factory=list)  # faces averaged into ``score``

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def score(self) -> float | None:
        """The video score: mean of the frame scores of ``score_frames`` (docs/method.md); an image's
        is its face's."""
        used = [f.score for f in self.faces if f.frame in self.score_frames]
        return float(np.mean(used)) if used else None

    @property
    def live(self) -> bool | None:
        return None if self.score is None else bool(self.score >= self.threshold)


def sweep_dead_temp(prefix: str) -> list[Path]:
    """Remove ``<temp>/<prefix><pid>-*`` folders whose process is gone (a SIGKILL skips the
    cleanup of a TemporaryDirectory); the removed folders."""
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(f"{prefix}*-*"):
        pid = folder.name[len(prefix):].split("-", 1)[0]
        if not pid.isdigit() or not folder.is_dir():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        except PermissionError:
            pass  # alive, another user's
    return removed


def media_kind(path: Path) -> Kind | None:
    ext = path.suffix.lower()
    return "image" if ext in IMAGE_EXTS else "video" if ext in VIDEO_EXTS else None


def discover(paths: Iterable[str | Path]) -> list[Path | InputResult]:
    """What to score, in argument order: files (folders walked recursively for image and
    video extensions, sorted) or, for a path that does not exist or holds no such file,
    its failed :class:`InputResult`."""
    items: list[Path | InputResult] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and media_kind(f))
            if not found:
                items.append(InputResult(str(raw), "", error=f"{raw}: folder holds no image or video file "
                                                             f"({', '.join(sorted(IMAGE_EXTS | VIDEO_EXTS))})"))
            items += found
        elif p.is_file():
            items.append(p)  # an explicit file is tried whatever its extension
        elif p.exists():  # a FIFO, a socket, a device: nothing to seek in
            items.append(InputResult(str(raw), "", error=f"{raw}: not a regular file or folder"))
        else:
            items.append(InputResult(str(raw), "", error=f"{raw}: no such file or folder"))
    return items


def _decode_image(path: Path) -> np.ndarray | None:
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return None
    return cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None


def read_frames(path: Path, cfg: ExtractConfig) -> tuple[Kind, list[int], list[np.ndarray]]:
    """BGR frames of an image (one, frame 0) or a video (sampled like the extract stage).

    Video frames make the extract stage's encode round trip (lossless for png, lossy
    for jpg) so they reach the detector as they would in the pipeline.
    """
    from mpfas.preprocess.frames import VideoReadError, read_sampled_frames

    kind = media_kind(path)
    if kind in ("image", None):
        img = _decode_image(path)
        if img is not None:
            return "image", [0], [img]
        if kind == "image":
            raise InputError(f"{path}: cannot decode the image (unreadable or not an image)")
    try:
        sampled = read_sampled_frames(path, cfg.frames_per_video, cfg.decode)
    except VideoReadError as exc:
        what = "video" if kind == "video" else "image or video"
        raise InputError(f"{path}: cannot read it as an {what} ({exc.reason}: {exc.detail})") from None
    images = sampled.images
    if cfg.image_ext != "png":
        images = [cv2.imdecode(np.frombuffer(atomic.encode_image(im, cfg.image_ext), np.uint8), cv2.IMREAD_COLOR)
                  for im in images]
    return "video", list(sampled.indices), images


# ------------------------------------------------------------------ prediction


class Predictor:
    """Detect, align and score faces of one input at a time with a loaded checkpoint.

    ``faces_dir`` keeps the aligned crops (one folder per input); without it they go
    to a temporary folder removed by :meth:`close`. The crops are written as PNG and
    scored from disk, the exact path evaluation takes.
    """

    def __init__(self, loaded: LoadedModel, params: Params, threshold: float | None = None,
                 batch_size: int | None = None, faces_dir: str | Path | None = None, detector: Any = None) -> None:
        self.loaded = loaded
        params = loaded.checkpoint.params_for(params, loaded.path)  # faces cut as its training faces were
        self.params = params
        if threshold is not None:
            self.threshold, self.threshold_source = float(threshold), "--threshold"
        elif loaded.threshold is not None:
            self.threshold, self.threshold_source = loaded.threshold, "checkpoint (source-val EER)"
        else:
            self.threshold, self.threshold_source = DEFAULT_THRESHOLD, "default 0.5 (the checkpoint saved none)"
        self.batch_size = batch_size or params.score.batch_size
        if not faces_dir:
            sweep_dead_temp("mpfas-predict-")
        self._tmp = None if faces_dir else tempfile.TemporaryDirectory(prefix=f"mpfas-predict-{os.getpid()}-")
        self.faces_dir = Path(faces_dir) if faces_dir else Path(self._tmp.name)
        self.keep_faces = faces_dir is not None
        if detector is None:
            from mpfas.preprocess.align import detector_for

            detector = detector_for(params.align, loaded.device)
        self.detector = detector
        self._count = 0

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def predict_file(self, path: str | Path) -> InputResult:
        """Score one file; problems come back in ``result.error``, never as an exception."""
        path = Path(path)
        self._count += 1
        result = InputResult(str(path), media_kind(path) or "", threshold=self.threshold)
        try:
            self._predict(path, result)
        except InputError as exc:
            result.error = str(exc)
        return result

    def _predict(self, path: Path, result: InputResult) -> None:
        from mpfas.models.inference import score_frames
        from mpfas.preprocess.align import align_frames

        cfg = self.params.align
        kind, indices, images = read_frames(path, self.params.extract)
        result.kind, result.frames = kind, len(images)
        folder = self.faces_dir / f"{self._count:05d}_{_safe(path.stem)}"
        crops: list[tuple[int, Any, Path]] = []
        for idx, aligned in zip(indices, align_frames(images, self.detector, cfg)):
            if aligned is None:
                result.frames_without_face.append(idx)
                continue
            crop_path = folder / f"f{idx:05d}.png"
            atomic.write_image(crop_path, aligned.crop)
            crops.append((idx, aligned.face, crop_path))
        if not crops:
            where = "the image" if kind == "image" else f"any of the {len(images)} sampled frames"
            raise InputError(f"{path}: no face found in {where} (MTCNN, align.min_face_size={cfg.min_face_size}, "
                             f"align.detect_max_side={cfg.detect_max_side})")
        # the video score averages the faces evaluation would pick (score.faces_per_video: first
        # and last when 2; 0 = all), so it is comparable with the checkpoint's threshold
        from mpfas.core.sampling import pick_evenly

        result.score_frames = pick_evenly([idx for idx, _, _ in crops], self.params.score.faces_per_video)
        m = self.loaded
        scores = score_frames(m.model, [c[2] for c in crops], m.input_size, self.batch_size, m.device)
        for (idx, face, crop_path), score in zip(crops, scores):
            result.faces.append(FaceResult(
                frame=idx, score=float(score), live=bool(score >= self.threshold), prob=face.prob,
                box=tuple(round(v, 2) for v in face.box),
                face_path=crop_path.as_posix() if self.keep_faces else ""))


def _safe(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return keep[:80] or "input"


# ------------------------------------------------------------------ output


def _decision(live: bool | None) -> str:
    return "" if live is None else ("live" if live else "spoof")


def result_dict(r: InputResult) -> dict[str, Any]:
    out: dict[str, Any] = {"input": r.input, "kind": r.kind, "status": "ok" if r.ok else "error"}
    if r.error:
        out["error"] = r.error
    out.update(score=r.score, decision=_decision(r.live), score_frames=r.score_frames, frames=r.frames,
               frames_without_face=r.frames_without_face,
               faces=[{"frame": f.frame, "score": f.score, "decision": _decision(f.live),
                       "det_prob": round(f.prob, 6), "box": list(f.box),
                       **({"face_path": f.face_path} if f.face_path else {})} for f in r.faces])
    return out


def to_json(results: Sequence[InputResult], loaded: LoadedModel, threshold: float, threshold_source: str) -> str:
    """The whole run as one JSON document (the model, the threshold, every input)."""
    from mpfas.core.atomic import json_safe

    doc = {
        "model": {"checkpoint": loaded.path.as_posix(), "protocol": loaded.protocol, "iteration": loaded.iteration,
                  "selection": loaded.selection, **{k: loaded.model_config.get(k)
                                                    for k in ("backbone", "input_size", "pattern")},
                  "preprocess": loaded.checkpoint.preprocess.as_dict()},
        "threshold": threshold,
        "threshold_source": threshold_source,
        "decision_rule": "live iff score >= threshold (score: higher = live)",
        "inputs": [result_dict(r) for r in results],
    }
    return json.dumps(json_safe(doc), indent=2, allow_nan=False)


def to_csv(results: Sequence[InputResult]) -> str:
    """One row per scored face; an input without one gets a single row with its error."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()

    def fmt(x: float | None) -> str:
        return "" if x is None else f"{x:.6f}"

    for r in results:
        common = {"input": r.input, "kind": r.kind, "status": "ok" if r.ok else "error",
                  "score": fmt(r.score), "decision": _decision(r.live), "threshold": fmt(r.threshold),
                  "error": r.error}
        if not r.faces:
            writer.writerow(common)
        for f in r.faces:
            x1, y1, x2, y2 = f.box
            writer.writerow({**common, "frame": f.frame, "face_score": fmt(f.score), "face_decision": _decision(f.live),
                             "det_prob": f"{f.prob:.6f}", "x1": x1, "y1": y1, "x2": x2, "y2": y2,
                             "face_path": f.face_path})
    return buf.getvalue()
