"""Write the synthetic demo: every registered dataset with a demo plan (O, C, I, M, Y), in its
original layout and containers; an image dataset gets one-frame images.

``demo.size: small`` gives each domain ``demo.subjects`` identities with about
five videos each (layout.plan); ``full`` writes the official file lists, 10527
videos (full.full_plan), and ignores ``demo.subjects``. Either way every video
is one independent job for the worker processes, so the cost per video does not
depend on how many there are; ``demo.frames`` and ``demo.scale`` set that cost.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mpfas.core.config import DemoConfig
from mpfas.data import BUILT_IN, DatasetSpec, dataset_codes, dataset_name, dataset_spec, demo_codes, register_dataset
from mpfas.data.base import IMAGE_EXTENSIONS
from mpfas.demo import full
from mpfas.demo.faces import Identity, assign_identities, reuse_identities
from mpfas.demo.layout import VideoSpec, plan
from mpfas.demo.render import render_video

log = logging.getLogger(__name__)

MARKER = "SYNTHETIC_DEMO.txt"
FOURCC = {".avi": "MJPG", ".mov": "mp4v", ".mp4": "mp4v"}  # written and read back by OpenCV's FFmpeg
_TMP_DIR = ".demo-tmp"


@dataclass(frozen=True)
class DomainPlan:
    """What one domain gets: its videos, side files (relative path -> text) and identities."""

    videos: list[VideoSpec]
    side_files: dict[str, str]
    identities: list[Identity]


def plan_demo(cfg: DemoConfig) -> dict[str, DomainPlan]:
    """Every domain's plan, with no rendering (cheap enough to check the full layouts in tests)."""
    codes = demo_codes()
    if cfg.size == "full":
        files = {code: full.full_plan(code) for code in codes}
        log.info("demo.size=full: the official file lists, %d videos; demo.subjects (%d) is ignored",
                 sum(len(videos) for videos, _ in files.values()), cfg.subjects)
        identities = reuse_identities(cfg.seed, full.subjects(codes))
        return {code: DomainPlan(*files[code], identities[code]) for code in codes}
    if cfg.size != "small":
        raise ValueError(f"demo.size: {cfg.size!r}; expected small or full")
    identities = assign_identities(cfg.seed, cfg.subjects, codes)
    return {code: DomainPlan(*plan(code, cfg.subjects, cfg.seed), identities[code]) for code in codes}


@dataclass(frozen=True)
class _Job:
    spec: VideoSpec
    identity: Identity
    index: int
    seed: int
    frames: int
    fps: int
    scale: float
    tmp: str
    dest: str


def write_video(path: Path, frames: list[np.ndarray], fps: float) -> None:
    """Write uint8 RGB frames with the container's fourcc; check it reads back.

    An image path (an image dataset's one-frame video) gets the single frame.
    """
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        if len(frames) != 1 or not cv2.imwrite(str(path), np.ascontiguousarray(frames[0][..., ::-1])):
            raise RuntimeError(f"{path}: cannot write {len(frames)} frame(s) as one image")
        return
    fourcc = FOURCC[path.suffix.lower()]
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), float(fps), (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"{path}: OpenCV cannot write {fourcc} into {path.suffix}")
    try:
        for frame in frames:
            writer.write(np.ascontiguousarray(frame[..., ::-1]))
    finally:
        writer.release()
    cap = cv2.VideoCapture(str(path))
    ok, _ = cap.read()
    cap.release()
    if not ok:
        raise RuntimeError(f"{path}: written but OpenCV cannot read it back ({fourcc})")


def _init_worker(added: tuple[DatasetSpec, ...] = ()) -> None:
    """One OpenCV thread per worker; register the datasets the parent added at run time
    (a fresh spawned process only knows the built-in ones)."""
    cv2.setNumThreads(1)
    for spec in added:
        if spec.code not in dataset_codes():
            register_dataset(spec)


def _run(job: _Job) -> str:
    frames = render_video(job.spec, job.identity, job.seed, job.frames, job.fps, job.scale, job.index)
    tmp, dest = Path(job.tmp), Path(job.dest)
    write_video(tmp, frames, job.fps)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dest)
    return job.dest


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _prepare_root(root: Path) -> None:
    """Start from an empty dataset root; only ever delete a previous demo."""
    if root.exists():
        if (root / MARKER).is_file():
            shutil.rmtree(root)
        elif any(root.iterdir()):
            raise FileExistsError(f"{root}: exists, is not empty and is not a demo written by mpfas "
                                  f"(no {MARKER}); refusing to overwrite it (check data.demo_root)")
    root.mkdir(parents=True, exist_ok=True)


def synthesize_demo(cfg: DemoConfig, out_root: Path, progress: bool = True, workers: int = 2,
                    codes: Sequence[str] | None = None) -> None:
    """Write ``out_root/<dataset name>/...`` for each demo dataset in ``codes`` (default: all; same
    seed -> same videos, whichever others are written: each dataset draws from its own streams)."""
    cfg.validate()
    out_root = Path(out_root)
    plans = {code: plan for code, plan in plan_demo(cfg).items() if codes is None or code in codes}
    tmp_dir = out_root / _TMP_DIR
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True)
    jobs: list[_Job] = []
    for code, domain in plans.items():
        root = out_root / dataset_name(code)
        _prepare_root(root)
        frames = 1 if dataset_spec(code).media == "image" else cfg.frames
        _write_text(root / MARKER, _marker_text(code, cfg, domain.identities))
        for rel, text in domain.side_files.items():
            _write_text(root / rel, text)
        for i, spec in enumerate(domain.videos):
            ext = Path(spec.relpath).suffix
            jobs.append(_Job(spec, domain.identities[spec.subject], i, cfg.seed, frames, cfg.fps, cfg.scale,
                             str(tmp_dir / f"{code}-{i:04d}{ext}"), str(root / spec.relpath)))
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(jobs), desc="demo videos", unit="video")
    try:
        if workers <= 1:
            _init_worker()
            for job in jobs:
                _run(job)
                if bar:
                    bar.update()
        else:
            # spawn: safe even when the parent already runs torch/OpenCV threads
            added = tuple(dataset_spec(code) for code in plans if code not in BUILT_IN)
            with mp.get_context("spawn").Pool(min(workers, len(jobs)), initializer=_init_worker,
                                              initargs=(added,)) as pool:
                for _ in pool.imap_unordered(_run, jobs):
                    if bar:
                        bar.update()
    finally:
        if bar:
            bar.close()
    shutil.rmtree(tmp_dir, ignore_errors=True)


def _marker_text(code: str, cfg: DemoConfig, identities: list[Identity]) -> str:
    size = f"subjects={cfg.subjects}" if cfg.size == "small" else "size=full"
    return (
        f"Synthetic {dataset_name(code)} demo written by mpfas.demo (not the real dataset).\n"
        f"Same folder and file names as the original; faces are package sample photos with\n"
        f"simulated cameras and simulated print / replay attacks.\n"
        f"seed={cfg.seed} {size} frames={cfg.frames} fps={cfg.fps} scale={cfg.scale}\n"
        f"identities: {', '.join(i.name for i in identities)}\n"
    )
