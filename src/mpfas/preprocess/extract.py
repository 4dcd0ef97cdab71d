"""The ``extract`` stage: sampled frames of every indexed video, resumable and parallel.

Layout under ``out_dir`` (``data/frames/<code>``): one folder per video named after
its relative path without the extension, holding ``f<frame:05d>.<ext>`` images and a
``.done.json`` marker written last. The marker carries a fingerprint of the params
that shape the output, the content checksum of the video and that of every frame
written. A re-run keeps a video only when its params and video content are unchanged
and every frame still has its recorded checksum; frames found missing or corrupt are
remade from the video (counted as ``repaired``), and when the video itself is gone
the stage fails naming the frame. ``frames.csv`` and ``failures.csv`` are rebuilt
from the markers at the end of every run, so an interrupted-then-resumed run writes
the same bytes as an uninterrupted one. The resume and integrity helpers here are
shared with the ``align`` stage.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import signal
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .. import atomic
from ..config import ExtractConfig
from ..datasets import VideoRecord
from ..errors import MpfasError
from ..rows import escapes, path_problem
from .frames import VideoReadError, read_sampled_frames

log = logging.getLogger(__name__)

MARKER = ".done.json"
FRAMES_COLUMNS = ["video_id", "frame", "path", "checksum"]
FAILURE_COLUMNS = ["video_id", "frame", "severity", "reason", "detail"]
EXTRACT_VERSION = 1  # bump when the extraction logic changes what is written


class ExtractError(MpfasError):
    """Too many videos of a dataset could not be read."""


# ----------------------------------------------------------------- shared helpers

@dataclass(frozen=True)
class Issue:
    """One problem with a video (``frame`` is None) or one of its frames.

    ``severity`` is ``error`` when nothing usable came out of it (counted against
    ``max_failure_rate``) and ``warning`` when output was still written.
    """

    video_id: str
    reason: str
    detail: str
    severity: str = "error"
    frame: int | None = None

    def row(self) -> dict[str, Any]:
        return {"video_id": self.video_id, "frame": "" if self.frame is None else self.frame,
                "severity": self.severity, "reason": self.reason, "detail": self.detail}


def video_folder(relpath: str) -> str:
    """The per-video output folder: the relative path without its extension."""
    p = Path(relpath)
    return p.with_suffix("").as_posix()


def check_folders(records: Sequence[VideoRecord], out_dir: Path | None = None) -> dict[str, VideoRecord]:
    """Map output folder -> record; refuse two videos that would share or nest folders, and a
    folder outside ``out_dir`` (``..``, absolute, a symlink out): its reset would delete files there."""
    out: dict[str, VideoRecord] = {}
    for rec in records:
        folder = video_folder(rec.relpath)
        problem = path_problem(folder, f"the output folder {out_dir or '.'}")
        if problem is None and out_dir is not None and escapes(out_dir / folder, out_dir):
            problem = f"{folder!r} is outside the output folder {out_dir}: a symlinked folder leads out"
        if problem:
            raise MpfasError(f"{rec.video_id}: {problem}; fix the dataset index")
        if folder in out:
            raise MpfasError(f"{rec.video_id} and {out[folder].video_id} would share the output folder "
                             f"{folder!r}; rename one of them")
        out[folder] = rec
    for folder in out:
        parent = Path(folder).parent
        while parent != Path("."):
            if parent.as_posix() in out:
                raise MpfasError(f"output folder {folder!r} would sit inside another video's folder "
                                 f"{parent.as_posix()!r}")
            parent = parent.parent
    return out


def fingerprint(obj: Any) -> str:
    """A short stable hash of JSON-able data (params that shape an output)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.blake2b(blob, digest_size=8).hexdigest()


def checksum(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def file_checksum(path: str | Path) -> str | None:
    """:func:`checksum` of a file's content, read in chunks; None when it cannot be read."""
    digest = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)  # releases the GIL: threads hash in parallel
    except OSError:
        return None
    return digest.hexdigest()


def damaged_files(folder: Path, entries: Iterable[dict]) -> list[str]:
    """Names of the marker's ``entries`` (``file``, ``checksum``) missing or unlike their checksum."""
    return [e["file"] for e in entries if file_checksum(folder / e["file"]) != e.get("checksum")]


def recorded_checksums(entries: Iterable[dict]) -> bool:
    """Whether every entry carries a checksum (markers of earlier versions did not)."""
    return all(e.get("checksum") for e in entries)


def read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None


def reset_folder(folder: Path) -> None:
    """Forget a video's old output: marker first (so a kill here means 'not done'), then files."""
    (folder / MARKER).unlink(missing_ok=True)
    if folder.is_dir():
        for child in folder.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()


def remove_stale(out_dir: Path, expected: Iterable[str], keep_top: Iterable[str]) -> list[str]:
    """Delete video folders under ``out_dir`` that are not expected any more; return them.

    A video folder is one that holds files. Top-level files other than ``keep_top``
    (the stage's CSVs) are removed too, then empty folders are pruned.
    """
    expected = set(expected)
    keep_top = set(keep_top)
    removed: list[str] = []
    if not out_dir.is_dir():
        return removed
    for dirpath, dirnames, filenames in os.walk(out_dir, topdown=True):
        rel = Path(dirpath).relative_to(out_dir).as_posix()
        if rel == ".":
            for name in filenames:
                if name not in keep_top:
                    (Path(dirpath) / name).unlink()
            continue
        if filenames and rel not in expected:
            shutil.rmtree(dirpath)
            dirnames[:] = []
            removed.append(rel)
    for dirpath, _dirnames, _filenames in sorted(os.walk(out_dir, topdown=False), reverse=True):
        if Path(dirpath) != out_dir and not any(Path(dirpath).iterdir()):
            Path(dirpath).rmdir()
    return removed


def rel_path(path: Path, rel_to: Path) -> str:
    """POSIX path of ``path`` relative to ``rel_to`` (the repo root in the pipeline)."""
    return Path(os.path.relpath(path, rel_to)).as_posix()


def _die_with_parent() -> None:
    """Worker initializer: on Linux, get SIGKILLed when the parent dies (no orphan writers)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass


def run_jobs(fn: Callable[[Any], Any], jobs: Sequence[Any], workers: int, desc: str,
             progress: bool = True) -> Iterator[Any]:
    """Run ``fn`` over ``jobs`` in ``workers`` processes (inline when 1); yield results as they finish."""
    bar = tqdm(total=len(jobs), desc=desc, unit="video", disable=not progress or not jobs)
    try:
        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                yield fn(job)
                bar.update()
            return
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx,
                                 initializer=_die_with_parent) as pool:
            for result in pool.map(fn, jobs, chunksize=1):
                yield result
                bar.update()
    finally:
        bar.close()


# ----------------------------------------------------------------- the extract stage

@dataclass(frozen=True)
class _Job:
    video_id: str
    video_path: str
    folder: str
    fingerprint: str
    frames_per_video: int
    image_ext: str
    decode: str
    video_checksum: str | None = None  # None: the video cannot be read


@dataclass(frozen=True)
class _Check:
    """What an earlier run left for one video: a marker to keep, or the job to redo."""

    job: _Job
    kept: dict | None  # the marker, when params, video and every frame check out
    damaged: int = 0  # frames found missing or corrupt under an otherwise valid marker


@dataclass
class ExtractSummary:
    dataset: str
    videos: int
    skipped: int  # finished in an earlier run with the same params
    processed: int
    frames: int
    errors: int  # videos with no frame
    warnings: int
    failure_rate: float
    failures_by_reason: dict[str, int] = field(default_factory=dict)
    removed: int = 0  # folders of videos no longer in the index
    repaired: int = 0  # of ``processed``: videos redone because frames were missing or corrupt
    repaired_files: int = 0  # the frames found missing or corrupt

    def as_dict(self) -> dict:
        return asdict(self)


def extract_fingerprint(cfg: ExtractConfig) -> str:
    return fingerprint({"version": EXTRACT_VERSION, "frames_per_video": cfg.frames_per_video,
                        "image_ext": cfg.image_ext, "decode": cfg.decode})


def check_video(job: _Job) -> _Check:
    """Hash the video, then keep its earlier output only if params, video and frames all match.

    A video that is gone keeps intact frames (nothing to redo) but cannot remake damaged
    ones: that fails with :class:`ExtractError` naming the frame.
    """
    video = file_checksum(job.video_path)
    job = replace(job, video_checksum=video)
    folder = Path(job.folder)
    marker = read_marker(folder)
    if (not marker or marker.get("fingerprint") != job.fingerprint
            or not recorded_checksums(marker.get("frames", []))
            or (video is not None and marker.get("video_checksum") != video)):
        return _Check(job, None)
    damaged = damaged_files(folder, marker["frames"])
    if damaged and video is None:
        raise ExtractError(f"{folder / damaged[0]}: missing or corrupt, and its video {job.video_path} cannot "
                           "be read to remake it; restore the video, or remove it from the index")
    return _Check(job, None if damaged else marker, len(damaged))


def _check_all(jobs: Sequence[_Job], workers: int) -> list[_Check]:
    """:func:`check_video` for every job, hashing in ``workers`` threads (hashlib frees the GIL)."""
    if workers <= 1 or len(jobs) <= 1:
        return [check_video(job) for job in jobs]
    with ThreadPoolExecutor(min(workers, len(jobs))) as pool:
        return list(pool.map(check_video, jobs))


def extract_video(job: _Job) -> dict:
    """Sample, encode and write one video's frames; the marker (returned) is written last."""
    folder = Path(job.folder)
    reset_folder(folder)
    marker: dict[str, Any] = {"video_id": job.video_id, "fingerprint": job.fingerprint,
                              "video_checksum": job.video_checksum, "frames": [], "issues": []}
    try:
        sampled = read_sampled_frames(job.video_path, job.frames_per_video, job.decode)  # type: ignore[arg-type]
    except VideoReadError as exc:
        marker["issues"].append({"reason": exc.reason, "detail": exc.detail, "severity": "error"})
    else:
        for idx, image in zip(sampled.indices, sampled.images):
            data = atomic.encode_image(image, job.image_ext)
            name = f"f{idx:05d}.{job.image_ext}"
            atomic.write_bytes(folder / name, data)
            marker["frames"].append({"frame": idx, "file": name, "checksum": checksum(data),
                                     "height": int(image.shape[0]), "width": int(image.shape[1])})
        marker.update(decoded_count=sampled.decoded_count, reported_count=sampled.reported_count,
                      method=sampled.method)
        if sampled.truncated:
            marker["issues"].append({"reason": "truncated", "severity": "warning", "detail":
                                     f"container reports {sampled.reported_count} frames, only "
                                     f"{sampled.decoded_count} decode; sampled from those"})
        if sampled.decoded_count < job.frames_per_video and sampled.method != "image":  # an image has one
            marker["issues"].append({"reason": "few_frames", "severity": "warning", "detail":
                                     f"{sampled.decoded_count} frame(s), fewer than "
                                     f"extract.frames_per_video={job.frames_per_video}"})
    atomic.write_json(folder / MARKER, marker)
    return marker


def run_extract(records: Sequence[VideoRecord], root: str | Path, out_dir: str | Path, cfg: ExtractConfig,
                workers: int | None = None, *, rel_to: str | Path = ".", dataset: str = "",
                progress: bool = True) -> ExtractSummary:
    """Extract ``cfg.frames_per_video`` frames of every record's video (``root/relpath``).

    Writes ``out_dir/frames.csv`` (paths relative to ``rel_to``) and
    ``out_dir/failures.csv``; raises :class:`ExtractError` naming the dataset and
    ``extract.max_failure_rate`` when too many videos gave no frame (after writing both).
    With ``workers > 1`` videos run in spawned processes, so a calling script needs
    the usual ``if __name__ == "__main__":`` guard.
    """
    root, out_dir, rel_to = Path(root), Path(out_dir), Path(rel_to)
    dataset = dataset or (records[0].dataset if records else out_dir.name)
    workers = cfg.workers if workers is None else workers
    folders = check_folders(records, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic.remove_temp_files(out_dir)
    removed = remove_stale(out_dir, folders, keep_top=("frames.csv", "failures.csv"))
    if removed:
        log.info("extract %s: removed %d folder(s) of videos no longer indexed", dataset, len(removed))

    fp = extract_fingerprint(cfg)
    log.info("extract %s: hashing %d video(s) and earlier frames to see what is done", dataset, len(folders))
    checks = _check_all([_Job(rec.video_id, str(root / rec.relpath), str(out_dir / folder), fp,
                              cfg.frames_per_video, cfg.image_ext, cfg.decode)
                         for folder, rec in folders.items()], workers)
    markers = {c.job.video_id: c.kept for c in checks if c.kept is not None}
    todo = [c.job for c in checks if c.kept is None]
    repaired = [c for c in checks if c.damaged and c.kept is None]
    skipped = len(markers)
    if skipped:
        log.info("extract %s: %d video(s) already done, %d to do", dataset, skipped, len(todo))
    if repaired:
        log.warning("extract %s: %d frame(s) of %d video(s) missing or corrupt, remaking them (e.g. %s)",
                    dataset, sum(c.damaged for c in repaired), len(repaired), repaired[0].job.folder)
    for marker in run_jobs(extract_video, todo, workers, f"extract {dataset}", progress):
        markers[marker["video_id"]] = marker

    frame_rows, issues = [], []
    for folder, rec in folders.items():
        marker = markers[rec.video_id]
        for f in marker["frames"]:
            frame_rows.append({"video_id": rec.video_id, "frame": f["frame"],
                               "path": rel_path(out_dir / folder / f["file"], rel_to), "checksum": f["checksum"]})
        issues += [Issue(rec.video_id, i["reason"], i["detail"], i["severity"]) for i in marker["issues"]]
    atomic.write_csv(out_dir / "frames.csv", frame_rows, FRAMES_COLUMNS)
    atomic.write_csv(out_dir / "failures.csv", (i.row() for i in issues), FAILURE_COLUMNS)

    errors = sum(i.severity == "error" for i in issues)
    rate = errors / len(folders) if folders else 0.0
    summary = ExtractSummary(
        dataset=dataset, videos=len(folders), skipped=skipped, processed=len(todo), frames=len(frame_rows),
        errors=errors, warnings=sum(i.severity == "warning" for i in issues), failure_rate=round(rate, 6),
        failures_by_reason=dict(sorted(Counter(i.reason for i in issues).items())), removed=len(removed),
        repaired=len(repaired), repaired_files=sum(c.damaged for c in repaired),
    )
    for issue in issues:
        log.warning("extract %s: %s %s: %s (%s)", dataset, issue.severity, issue.video_id, issue.reason, issue.detail)
    if rate > cfg.max_failure_rate:
        raise ExtractError(
            f"extract {dataset}: {errors} of {len(folders)} videos gave no frame ({rate:.1%}), more than "
            f"extract.max_failure_rate={cfg.max_failure_rate}; see {out_dir / 'failures.csv'}"
        )
    return summary
