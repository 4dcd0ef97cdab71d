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
the same bytes as an uninterrupted one. That bookkeeping is :mod:`.jobs`; this module
only decodes and writes one video's frames.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from mpfas.core import atomic
from mpfas.core.config import ExtractConfig
from mpfas.core.errors import MpfasError
from mpfas.data import VideoRecord
from mpfas.preprocess.disk import check_free_space
from mpfas.preprocess.frames import VideoReadError, read_sampled_frames
from mpfas.preprocess.jobs import (
    Issue,
    VideoJob,
    VideoJobs,
    check_folders,
    checksum,
    file_checksum,
    fingerprint,
    rel_path,
    write_failures,
)

log = logging.getLogger(__name__)

FRAMES_COLUMNS = ["video_id", "frame", "path", "checksum"]
EXTRACT_VERSION = 1  # bump when the extraction logic changes what is written


class ExtractError(MpfasError):
    """Too many videos of a dataset could not be read."""


@dataclass(frozen=True)
class _Job(VideoJob):
    video_path: str
    frames_per_video: int
    image_ext: str
    decode: str
    video_checksum: str | None = None  # None: the video cannot be read

    def inspected(self) -> _Job:
        return replace(self, video_checksum=file_checksum(self.video_path))

    def matches(self, marker: dict) -> bool:
        """A video that is gone keeps intact frames (nothing to redo); one that changed is redone."""
        return self.video_checksum is None or marker.get("video_checksum") == self.video_checksum

    def ensure_repairable(self, damaged: Path) -> None:
        if self.video_checksum is None:
            raise ExtractError(f"{damaged}: missing or corrupt, and its video {self.video_path} cannot "
                               "be read to remake it; restore the video, or remove it from the index")


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


def extract_video(job: _Job, folder: Path) -> dict:
    """Sample, encode and write one video's frames; returns its marker's content."""
    marker: dict[str, Any] = {"video_checksum": job.video_checksum, "frames": [], "issues": []}
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
    workers = 1 if workers is None else workers
    folders = check_folders(records, out_dir)
    fp = extract_fingerprint(cfg)
    jobs = [_Job(rec.video_id, folder, fp, str(root / rec.relpath), cfg.frames_per_video, cfg.image_ext, cfg.decode)
            for folder, rec in folders.items()]
    plan = VideoJobs.check(jobs, out_dir, files="frames", keep_top=("frames.csv", "failures.csv"),
                           label=f"extract {dataset}", threads=workers)
    check_free_space([job.video_path for job in plan.todo], cfg.frames_per_video, cfg.image_ext, out_dir,
                     f"extract {dataset}")
    markers, counts = plan.run(extract_video, workers, progress)

    frame_rows, issues = [], []
    for folder, rec in folders.items():
        marker = markers[rec.video_id]
        for f in marker["frames"]:
            frame_rows.append({"video_id": rec.video_id, "frame": f["frame"],
                               "path": rel_path(out_dir / folder / f["file"], rel_to), "checksum": f["checksum"]})
        issues += [Issue(rec.video_id, i["reason"], i["detail"], i["severity"]) for i in marker["issues"]]
    atomic.write_csv(out_dir / "frames.csv", frame_rows, FRAMES_COLUMNS)
    write_failures(out_dir / "failures.csv", issues)

    errors = sum(i.severity == "error" for i in issues)
    rate = errors / len(folders) if folders else 0.0
    summary = ExtractSummary(
        dataset=dataset, videos=len(folders), skipped=counts.kept, processed=counts.done, frames=len(frame_rows),
        errors=errors, warnings=sum(i.severity == "warning" for i in issues), failure_rate=round(rate, 6),
        failures_by_reason=dict(sorted(Counter(i.reason for i in issues).items())), removed=counts.removed,
        repaired=counts.repaired, repaired_files=counts.repaired_files,
    )
    for issue in issues:
        log.warning("extract %s: %s %s: %s (%s)", dataset, issue.severity, issue.video_id, issue.reason, issue.detail)
    if rate > cfg.max_failure_rate:
        raise ExtractError(
            f"extract {dataset}: {errors} of {len(folders)} videos gave no frame ({rate:.1%}), more than "
            f"extract.max_failure_rate={cfg.max_failure_rate}; see {out_dir / 'failures.csv'}"
        )
    return summary
