"""Resumable per-video jobs: the bookkeeping the ``extract`` and ``align`` stages share.

Each video writes into its own folder under the stage's output root, and a
``.done.json`` marker, written last, records the fingerprint of what shaped the
output (params, inputs) and the content checksum of every file written. A re-run
keeps a video only when its marker carries the job's fingerprint and every file
still has its recorded checksum; otherwise the folder is cleared and the video
redone (``repaired`` when files were found missing or corrupt). Folders of videos
no longer indexed and temp files of a killed run are removed first. A stage then
rebuilds its CSVs from the markers, so an interrupted-then-resumed run writes the
same bytes as an uninterrupted one. A stage supplies only its job (a
:class:`VideoJob` subclass carrying what its worker needs) and the worker that
fills one video's folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import signal
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Generic, Self, TypeVar

from tqdm import tqdm

from mpfas.core import atomic
from mpfas.core.errors import MpfasError
from mpfas.core.rows import escapes, path_problem
from mpfas.data import VideoRecord

log = logging.getLogger(__name__)

MARKER = ".done.json"
FAILURE_COLUMNS = ["video_id", "frame", "severity", "reason", "detail"]


@dataclass(frozen=True)
class Issue:
    """One problem with a video (``frame`` is None) or one of its frames.

    ``severity`` is ``error`` when nothing usable came out of it (counted against the
    stage's failure limit) and ``warning`` when output was still written.
    """

    video_id: str
    reason: str
    detail: str
    severity: str = "error"
    frame: int | None = None

    def row(self) -> dict[str, Any]:
        return {"video_id": self.video_id, "frame": "" if self.frame is None else self.frame,
                "severity": self.severity, "reason": self.reason, "detail": self.detail}


def write_failures(path: Path, issues: Iterable[Issue]) -> Path:
    """A stage's ``failures.csv``."""
    return atomic.write_csv(path, (i.row() for i in issues), FAILURE_COLUMNS)


# ----------------------------------------------------------------- folders, markers, checksums

def video_folder(relpath: str) -> str:
    """The per-video output folder: the relative path without its extension."""
    return Path(relpath).with_suffix("").as_posix()


def check_folders(records: Sequence[VideoRecord], out_dir: Path | None = None) -> dict[str, VideoRecord]:
    """Map output folder -> record; refuse two videos that would share or nest folders, and a
    folder outside ``out_dir`` (``..``, absolute, a symlink out): its reset would delete files there."""
    out: dict[str, VideoRecord] = {}
    for rec in records:
        folder = video_folder(rec.relpath)
        problem = path_problem(folder, f"the output folder {out_dir or '.'}")
        if problem:  # the index names it so
            raise MpfasError(f"{rec.video_id}: {problem}; fix the dataset index")
        if out_dir is not None and escapes(out_dir / folder, out_dir):  # the output tree leads out
            raise MpfasError(f"{rec.video_id}: {folder!r} is outside the output folder {out_dir}: a symlinked "
                             f"folder leads out; remove that link from {out_dir}")
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


# ----------------------------------------------------------------- the job runner

@dataclass(frozen=True)
class VideoJob:
    """One video: its folder (relative to the output root) and the fingerprint its marker must carry.

    Stages subclass it with what their worker needs (picklable, for worker processes)
    and override the hooks when more than the fingerprint decides whether to keep.
    """

    video_id: str
    folder: str
    fingerprint: str

    def inspected(self) -> Self:
        """This job after looking at its inputs (extract hashes the video); runs in a checking thread."""
        return self

    def matches(self, marker: dict) -> bool:
        """Whether an earlier marker with this fingerprint also fits the inputs as inspected."""
        return True

    def ensure_repairable(self, damaged: Path) -> None:
        """Raise when the missing or corrupt file ``damaged`` cannot be remade."""


J = TypeVar("J", bound=VideoJob)
Worker = Callable[[Any, Path], dict]  # (job, its folder) -> the marker's stage-specific content


@dataclass(frozen=True)
class JobCounts:
    """What a run did: a stage's ``skipped``, ``processed``, ``removed``, ``repaired`` metrics."""

    kept: int  # finished by an earlier run and intact
    done: int  # run now
    removed: int  # folders of videos no longer indexed
    repaired: int  # of ``done``: videos whose files were missing or corrupt
    repaired_files: int


@dataclass
class VideoJobs(Generic[J]):
    """The videos of one stage run after :meth:`check`: markers to keep and jobs to (re)do."""

    out_dir: Path
    label: str  # "extract O": log lines and the progress bar
    markers: dict[str, dict]  # video id -> marker; the kept ones until :meth:`run` adds the rest
    todo: list[J]
    damaged: dict[Path, int]  # folder -> files missing or corrupt under an otherwise valid marker
    removed: list[str]

    @classmethod
    def check(cls, jobs: Sequence[J], out_dir: Path, *, files: str, keep_top: Iterable[str], label: str,
              threads: int = 1) -> VideoJobs[J]:
        """Sweep ``out_dir`` (temp files, stale folders), then keep or queue each job.

        ``files`` is the marker's list of written files (``frames``, ``faces``);
        ``keep_top`` the stage's own top-level files; ``threads`` hash in parallel.
        """
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic.remove_temp_files(out_dir)
        removed = remove_stale(out_dir, [job.folder for job in jobs], keep_top)
        if removed:
            log.info("%s: removed %d folder(s) of videos no longer indexed", label, len(removed))
        log.info("%s: checking %d video(s) against earlier output", label, len(jobs))
        look = partial(_check, out_dir=out_dir, files=files)
        if threads <= 1 or len(jobs) <= 1:
            checked = [look(job) for job in jobs]
        else:
            with ThreadPoolExecutor(min(threads, len(jobs))) as pool:
                checked = list(pool.map(look, jobs))
        plan = cls(out_dir, label, {}, [], {}, removed)
        for job, marker, damaged in checked:
            if marker is not None:
                plan.markers[job.video_id] = marker
            else:
                plan.todo.append(job)
            if damaged:
                plan.damaged[out_dir / job.folder] = damaged
        if plan.markers:
            log.info("%s: %d video(s) already done, %d to do", label, len(plan.markers), len(plan.todo))
        if plan.damaged:
            log.warning("%s: %d file(s) of %d video(s) missing or corrupt, remaking them (e.g. %s)", label,
                        sum(plan.damaged.values()), len(plan.damaged), next(iter(plan.damaged)))
        return plan

    def run(self, work: Worker, workers: int = 1, progress: bool = True) -> tuple[dict[str, dict], JobCounts]:
        """Run ``work`` on every queued job: folder cleared first, marker written last.

        With ``workers > 1`` the jobs run in spawned processes (``work`` and the jobs
        must pickle, and the calling script needs the ``__main__`` guard); otherwise
        in this process. Returns every video's marker (by video id) and the counts.
        """
        counts = JobCounts(kept=len(self.markers), done=len(self.todo), removed=len(self.removed),
                           repaired=len(self.damaged), repaired_files=sum(self.damaged.values()))
        one = partial(_run_one, work, self.out_dir)
        for job, marker in zip(self.todo, _map(one, self.todo, workers, self.label, progress)):
            self.markers[job.video_id] = marker
        return self.markers, counts


def _check(job: J, out_dir: Path, files: str) -> tuple[J, dict | None, int]:
    """(the inspected job, its marker if it can be kept, how many of its files are damaged)."""
    job = job.inspected()
    folder = out_dir / job.folder
    marker = read_marker(folder)
    if (not marker or marker.get("fingerprint") != job.fingerprint or not isinstance(marker.get(files), list)
            or not recorded_checksums(marker[files]) or not job.matches(marker)):
        return job, None, 0
    damaged = damaged_files(folder, marker[files])
    if damaged:
        job.ensure_repairable(folder / damaged[0])
        return job, None, len(damaged)
    return job, marker, 0


def _run_one(work: Worker, out_dir: Path, job: VideoJob) -> dict:
    folder = out_dir / job.folder
    reset_folder(folder)
    marker = {"video_id": job.video_id, "fingerprint": job.fingerprint, **work(job, folder)}
    atomic.write_json(folder / MARKER, marker)
    return marker


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


def _map(fn: Callable[[Any], Any], jobs: Sequence[Any], workers: int, desc: str,
         progress: bool = True) -> Iterator[Any]:
    """Run ``fn`` over ``jobs`` in ``workers`` processes (inline when 1); yield results in order."""
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
