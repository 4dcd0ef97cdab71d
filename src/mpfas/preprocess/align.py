"""The ``align`` stage: detect the main face in every extracted frame and warp it to the template.

Layout under ``out_dir`` (``data/faces/<code>``) mirrors the extract stage: one folder
per video with ``f<frame:05d>.png`` crops and a ``.done.json`` marker written last,
whose fingerprint covers the align params and the checksums of the input frames
(from ``frames.csv``), so changed params or re-extracted frames redo the video. The
marker also records each face's content checksum: a re-run verifies them and redoes a
video whose faces are missing or corrupt (counted as ``repaired``). Input frames are
checked against their ``frames.csv`` checksums as they are read; one that differs
cannot give the face it gave before, so the stage fails naming it (re-run extract).
``faces.csv`` and ``failures.csv`` are rebuilt from the markers on every run.

A frame without a face is recorded and skipped: the official MTCNN misses faces in a
few percent of real frames (4.7 % on Replay-Attack). Only a video none of whose
sampled frames has a face is a failure (``no_face_in_video``): it has nothing to
train or score on, so the manifests leave it out, and the stage stops when such
videos exceed ``align.max_failed_videos.<code>`` of the dataset.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mpfas.core import atomic
from mpfas.core.config import AlignConfig
from mpfas.core.errors import MpfasError
from mpfas.core.rows import FrameEntry, read_frames_index
from mpfas.data import Label, VideoRecord, dataset_codes, dataset_name
from mpfas.preprocess.detect import Face, FaceDetector
from mpfas.preprocess.jobs import (
    Issue,
    VideoJob,
    VideoJobs,
    check_folders,
    checksum,
    fingerprint,
    read_marker,
    rel_path,
    write_failures,
)
from mpfas.preprocess.warp import warp_face

log = logging.getLogger(__name__)

FACES_COLUMNS = ["video_id", "frame", "path", "prob", "x1", "y1", "x2", "y2"]
ALIGN_VERSION = 1  # bump when the alignment logic changes what is written
CLASSES = [label.value for label in Label]


NO_FACE_IN_VIDEO = "no_face_in_video"
_LEGACY_VIDEO_REASONS = {"no_face_video"}  # written into markers by earlier versions; now derived


class AlignError(MpfasError):
    """Too many videos of a dataset have no detectable face in any sampled frame, or an
    input frame is not the one ``frames.csv`` records."""


@dataclass
class AlignSummary:
    """``metrics/align/<code>.json``.

    ``videos`` = ``videos_with_faces`` + ``videos_without_face`` + ``videos_without_frames``.
    Only ``videos_without_face_rate`` (of the videos that have frames) is held against
    ``max_failed_videos``; videos without frames are the extract stage's failures.
    """

    dataset: str
    videos: int
    videos_with_faces: int
    skipped: int
    processed: int
    frames: int
    faces: int
    detection_rate: float  # frames with an aligned face / frames
    frames_without_face: int  # no face found, or the frame could not be decoded
    frames_without_face_rate: float
    videos_without_face: int  # frames extracted, none with a face: the failed videos
    videos_without_face_rate: float  # of the videos that have frames
    videos_without_frames: int
    max_failed_videos: float  # the align.max_failed_videos.<code> limit applied
    failures_by_reason: dict[str, int] = field(default_factory=dict)
    per_class: dict[str, dict[str, Any]] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    repaired: int = 0  # of ``processed``: videos redone because faces were missing or corrupt
    repaired_files: int = 0  # the faces found missing or corrupt

    def as_dict(self) -> dict:
        return asdict(self)


def align_params(cfg: AlignConfig) -> dict[str, Any]:
    return {"crop_size": cfg.crop_size, "padding": cfg.padding, "detect_max_side": cfg.detect_max_side,
            "select": cfg.select, "min_face_size": cfg.min_face_size}


def detector_for(cfg: AlignConfig, device: str = "cpu", threads: int | None = 1) -> FaceDetector:
    """The MTCNN detector the align params describe (``threads``: see :class:`FaceDetector`)."""
    return FaceDetector(max_side=cfg.detect_max_side, min_face_size=cfg.min_face_size, select=cfg.select,
                        device=device, threads=threads)


@dataclass(frozen=True)
class AlignedFace:
    """A frame's main face (full-frame pixels) and its crop warped to the template."""

    face: Face
    crop: np.ndarray  # crop_size x crop_size, the frame's channel order


def align_frames(images: Sequence[np.ndarray], detector: FaceDetector, cfg: AlignConfig) -> list[AlignedFace | None]:
    """Detect the main face of every BGR frame and warp it (None: no face); the align stage
    and ``predict`` both cut faces here, so a face is the same crop in either."""
    if not images:
        return []
    faces = detector.detect([cv2.cvtColor(img, cv2.COLOR_BGR2RGB) for img in images])
    return [None if face is None else AlignedFace(face, warp_face(img, face.landmarks, cfg.crop_size, cfg.padding))
            for img, face in zip(images, faces)]


def _load_bgr(path: Path, expected: str = "") -> np.ndarray | None:
    """The frame as BGR, None if it cannot be decoded; :class:`AlignError` if it is not the
    frame ``frames.csv`` recorded (``expected`` checksum): the extract stage must remake it."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        data = None
    if expected and (data is None or checksum(data.tobytes()) != expected):
        raise AlignError(f"{path}: missing, or unlike the checksum frames.csv records for it; re-run the "
                         "extract stage (`dvc repro`), which remakes it")
    if data is None:
        return None
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    return img


@dataclass(frozen=True)
class _Job(VideoJob):
    entries: tuple[FrameEntry, ...]  # the video's frames in frames.csv


def align_video(job: _Job, folder: Path, cfg: AlignConfig, detector: FaceDetector, rel_to: Path) -> dict:
    """Detect, select and warp the main face of each frame of one video; returns its marker's content."""
    marker: dict[str, Any] = {"faces": [], "issues": [], "frames": len(job.entries)}
    images, kept = [], []
    for e in job.entries:
        img = _load_bgr(rel_to / e.path, e.checksum)
        if img is None:
            marker["issues"].append({"frame": e.frame, "reason": "unreadable_frame", "severity": "error",
                                     "detail": f"cannot decode {e.path}"})
            continue
        images.append(img)
        kept.append(e)
    for e, aligned in zip(kept, align_frames(images, detector, cfg)):
        if aligned is None:
            marker["issues"].append({"frame": e.frame, "reason": "no_face", "severity": "error",
                                     "detail": f"MTCNN found no face (min_face_size={cfg.min_face_size} at "
                                               f"detect_max_side={cfg.detect_max_side})"})
            continue
        face = aligned.face
        data = atomic.encode_image(aligned.crop, "png")
        name = f"f{e.frame:05d}.png"
        atomic.write_bytes(folder / name, data)
        marker["faces"].append({"frame": e.frame, "file": name, "checksum": checksum(data),
                                "prob": round(face.prob, 6), "box": [round(v, 2) for v in face.box]})
    return marker


_DETECTORS: dict[tuple[Any, ...], FaceDetector] = {}


def _align_with_own_detector(job: _Job, folder: Path, cfg: AlignConfig, rel_to: Path, device: str) -> dict:
    """``align_video`` in a worker process, with the detector it built at its first video."""
    key = (*align_params(cfg).items(), device)
    if key not in _DETECTORS:
        _DETECTORS[key] = detector_for(cfg, device)
    return align_video(job, folder, cfg, _DETECTORS[key], rel_to)


def check_frames_listed(frames_csv: str | Path, frames: dict[str, list[FrameEntry]],
                        folders: dict[str, VideoRecord]) -> None:
    """Every video's ``frames.csv`` rows are the frames extract recorded writing (its per-video
    markers): a ``frames.csv`` that lost rows would otherwise drop those faces without a word."""
    frames_dir = Path(frames_csv).parent
    for folder, rec in folders.items():
        marker = read_marker(frames_dir / folder)
        if not marker or not isinstance(marker.get("frames"), list):
            continue  # extract wrote nothing for it (a failed video): nothing can be missing
        wrote = sorted(f.get("frame") for f in marker["frames"])
        listed = [e.frame for e in frames.get(rec.video_id, [])]
        if listed != wrote:
            raise AlignError(f"{frames_csv}: lists {len(listed)} of the {len(wrote)} frames extract wrote for "
                             f"{rec.video_id}; the file is incomplete or edited: re-run extract "
                             f"(dvc repro -f -s extract@{rec.dataset})")


def run_align(records: Sequence[VideoRecord], frames_csv: str | Path, out_dir: str | Path, cfg: AlignConfig, *,
              rel_to: str | Path = ".", metrics_path: str | Path | None = None,
              sheet_path: str | Path | None = None, detector: FaceDetector | None = None,
              device: str = "cpu", dataset: str = "", progress: bool = True, workers: int = 1) -> AlignSummary:
    """Align the frames listed in ``frames_csv`` for every record of one dataset.

    ``workers`` > 1 aligns videos in that many processes, each with its own MTCNN (one torch
    thread each, as in one process: the faces are the same for any count); a given ``detector``
    aligns in this process.

    ``dataset`` is the dataset code (O, C, I, M; by default the records' own), which
    picks the limit ``align.max_failed_videos.<code>``. Writes ``out_dir/faces.csv``,
    ``out_dir/failures.csv`` and, when given, the metrics JSON and the contact sheet
    first, then raises :class:`AlignError` when the share of videos without a face in
    any sampled frame exceeds that limit.
    """
    out_dir, rel_to = Path(out_dir), Path(rel_to)
    dataset = dataset or (records[0].dataset if records else out_dir.name)
    limit = cfg.failed_video_limit(dataset)
    frames = read_frames_index(frames_csv, rel_to)
    folders = check_folders(records, out_dir)
    check_frames_listed(frames_csv, frames, folders)
    params = align_params(cfg)
    jobs = []
    for folder, rec in folders.items():
        entries = tuple(frames.get(rec.video_id, []))
        fp = fingerprint({"version": ALIGN_VERSION, **params,
                          "frames": [[e.frame, e.path, e.checksum] for e in entries]})
        jobs.append(_Job(rec.video_id, folder, fp, entries))
    plan = VideoJobs.check(jobs, out_dir, files="faces", keep_top=("faces.csv", "failures.csv"),
                           label=f"align {dataset}")
    if plan.todo and detector is None and workers <= 1:
        detector = detector_for(cfg, device)
    work = (partial(align_video, cfg=cfg, detector=detector, rel_to=rel_to) if detector is not None
            else partial(_align_with_own_detector, cfg=cfg, rel_to=rel_to, device=device))
    markers, counts = plan.run(work, workers=workers, progress=progress)

    face_rows, issues = [], []
    for folder, rec in folders.items():
        marker = markers[rec.video_id]
        if marker["frames"] == 0:
            issues.append(Issue(rec.video_id, "no_frames", "the extract stage gave no frame (see its failures.csv)",
                                "warning"))
        for f in marker["faces"]:
            x1, y1, x2, y2 = f["box"]
            face_rows.append({"video_id": rec.video_id, "frame": f["frame"],
                              "path": rel_path(out_dir / folder / f["file"], rel_to), "prob": f"{f['prob']:.6f}",
                              "x1": f"{x1:.2f}", "y1": f"{y1:.2f}", "x2": f"{x2:.2f}", "y2": f"{y2:.2f}"})
        issues += [Issue(rec.video_id, i["reason"], i["detail"], i["severity"], i["frame"])
                   for i in marker["issues"] if i["reason"] not in _LEGACY_VIDEO_REASONS]
        if marker["frames"] and not marker["faces"]:
            issues.append(Issue(rec.video_id, NO_FACE_IN_VIDEO,
                                f"none of the {marker['frames']} sampled frame(s) has a face; the video is left "
                                f"out of the manifests and counts against align.max_failed_videos.{dataset}",
                                "error"))
    atomic.write_csv(out_dir / "faces.csv", face_rows, FACES_COLUMNS)
    write_failures(out_dir / "failures.csv", issues)

    summary = _summarise(dataset, folders, markers, issues, counts.kept, counts.done, params, limit)
    summary.repaired, summary.repaired_files = counts.repaired, counts.repaired_files
    if metrics_path is not None:
        atomic.write_json(metrics_path, summary.as_dict())
    if sheet_path is not None:
        write_contact_sheet(sheet_path, folders, markers, out_dir, dataset)
    if summary.videos_without_face_rate > limit:
        name = f"{dataset} ({dataset_name(dataset)})" if dataset in dataset_codes() else dataset
        judged = summary.videos - summary.videos_without_frames
        what = (f"{summary.videos_without_face} of {judged} videos have no face in any sampled frame"
                if judged else f"none of the {summary.videos} videos has extracted frames")
        raise AlignError(
            f"align {name}: {what} ({summary.videos_without_face_rate:.1%}), more than "
            f"align.max_failed_videos.{dataset}={limit}; see {out_dir / 'failures.csv'}"
        )
    return summary


def _summarise(dataset: str, folders: dict[str, VideoRecord], markers: dict[str, dict], issues: list[Issue],
               skipped: int, processed: int, params: dict, limit: float) -> AlignSummary:
    per_class: dict[str, dict[str, Any]] = {}
    for cls in CLASSES:
        recs = [r for r in folders.values() if r.label.value == cls]
        n_frames = sum(markers[r.video_id]["frames"] for r in recs)
        n_faces = sum(len(markers[r.video_id]["faces"]) for r in recs)
        with_faces = sum(bool(markers[r.video_id]["faces"]) for r in recs)
        per_class[cls] = {"videos": len(recs), "videos_with_faces": with_faces,
                          "frames": n_frames, "faces": n_faces,
                          "detection_rate": round(n_faces / n_frames, 6) if n_frames else 0.0}
    frames = sum(m["frames"] for m in markers.values())
    faces = sum(len(m["faces"]) for m in markers.values())
    frame_errors = sum(i.severity == "error" and i.frame is not None for i in issues)
    videos = len(folders)
    without_frames = sum(not m["frames"] for m in markers.values())
    without_face = sum(bool(m["frames"]) and not m["faces"] for m in markers.values())
    judged = videos - without_frames
    return AlignSummary(
        dataset=dataset, videos=videos, videos_with_faces=sum(bool(m["faces"]) for m in markers.values()),
        skipped=skipped, processed=processed, frames=frames, faces=faces,
        detection_rate=round(faces / frames, 6) if frames else 0.0,
        frames_without_face=frame_errors,
        frames_without_face_rate=round(frame_errors / frames, 6) if frames else 0.0,
        videos_without_face=without_face,
        # no video with frames at all is a failure of the whole dataset, as before
        videos_without_face_rate=round(without_face / judged, 6) if judged else (1.0 if videos else 0.0),
        videos_without_frames=without_frames, max_failed_videos=limit,
        failures_by_reason=dict(sorted(Counter(i.reason for i in issues).items())),
        per_class=per_class, params=params,
    )


def write_contact_sheet(path: str | Path, folders: dict[str, VideoRecord], markers: dict[str, dict],
                        out_dir: Path, dataset: str, per_row: int = 8, thumb: int = 96) -> Path:
    """One row of aligned faces per class (live, print, replay), spread evenly over the index."""
    label_w, pad = 150, 4
    rows = []
    for cls in CLASSES:
        faces = [out_dir / folder / f["file"] for folder, rec in folders.items() if rec.label.value == cls
                 for f in markers[rec.video_id]["faces"]]
        if len(faces) > per_row:
            faces = [faces[round(i * (len(faces) - 1) / (per_row - 1))] for i in range(per_row)]
        row = np.full((thumb + 2 * pad, label_w + per_row * (thumb + pad) + pad, 3), 255, np.uint8)
        n_videos = sum(rec.label.value == cls for rec in folders.values())
        cv2.putText(row, cls, (8, thumb // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 2, cv2.LINE_AA)
        cv2.putText(row, f"{n_videos} videos", (8, thumb // 2 + 24), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (60, 60, 60), 1,
                    cv2.LINE_AA)
        if not faces:
            cv2.putText(row, "no aligned faces", (label_w, thumb // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 200), 1,
                        cv2.LINE_AA)
        for j, face_path in enumerate(faces):
            img = cv2.imread(str(face_path), cv2.IMREAD_COLOR)
            if img is None:
                continue
            x = label_w + pad + j * (thumb + pad)
            row[pad:pad + thumb, x:x + thumb] = cv2.resize(img, (thumb, thumb), interpolation=cv2.INTER_AREA)
        rows.append(row)
    title = np.full((30, rows[0].shape[1], 3), 255, np.uint8)
    cv2.putText(title, f"aligned faces: {dataset}", (8, 21), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    return atomic.write_image(path, np.vstack([title, *rows]))
