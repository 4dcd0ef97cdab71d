"""Preprocessing benchmark: our extract + align against the official approach, side by side.

    python bench/preprocess.py --source profiles --markdown bench-preprocess.md

Ours: ``extract.frames_per_video`` evenly spaced frames per video (``runtime.extract_workers``
processes), MTCNN batched per video on copies downscaled to ``align.detect_max_side``,
5-point warp, everything written to disk as the stages do. Official (the HFN+MP
preprocessing): decode every frame, run MTCNN at full resolution on every frame one
at a time, warp and PNG-encode every crop. Both use one MTCNN loaded before the clock
starts (a one-off per stage run) and the same torch thread count.

Inputs (``--source``): ``profiles`` writes, per real-dataset profile (bench/profiles.py:
resolution, frame rate, length, codec, GOP), ``--videos`` videos (default 2); the other
sources are the demo (``auto``/``repo``/``synth``) and ``astronaut`` (one size).

Projected hours: per video, ours is measured whole; the official approach's decode of
every frame is measured whole, its per-frame detect + warp + encode on
``--official-frames`` frames per video (plus the frames we sample) and multiplied by
the video's frame count (``--official-frames 0``: every frame, nothing projected).
Per profile, the hours are that per-video time times the real dataset's videos of the
profile (O 4950, C 600, I 1200, M 280, Y 3497); a worker-pool start per profile is in
ours, so ours is an upper bound.

Agreement, on what the warp uses: for every frame the official side detects, our
detector (downscaled, batched as the align stage batches) against full-resolution
MTCNN on the same decoded frame: 5-point landmark NME (mean point distance over the
official inter-ocular distance) and the aligned crops' mean absolute difference
(0-255). Goal: NME <= 5 % (or no face in both) on >= 95 % of frames per profile. Our
crops for the frames the pipeline sampled are checked to be the files it wrote.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from mpfas.core.config import load_params
from mpfas.core.sampling import even_indices
from mpfas.data import BUILT_IN, Label, VideoRecord, adapter_for, dataset_name, dataset_root, read_index
from mpfas.preprocess.extract import run_extract
from mpfas.preprocess.warp import warp_face

sys.path.insert(0, str(Path(__file__).resolve().parent))
from profiles import DATASET_VIDEOS, profiles, write_video  # a sibling module of this script

DATASET_CODES = BUILT_IN  # O, C, I, M, Y
DATASET_NAMES = {code: dataset_name(code) for code in DATASET_CODES}
OFFICIAL_MIN_FACE = 20  # MTCNN default, as the official preprocessing ran it
NME_GOAL, RATE_GOAL, SPEEDUP_GOAL = 0.05, 0.95, 20.0

# torch and MTCNN are imported inside the functions that need them: the extract
# workers are spawned processes that re-import this script, and should stay light.


@dataclass
class Group:
    """Videos timed and projected together: one profile, or one dataset of the demo."""

    key: str
    code: str
    root: Path
    records: list[VideoRecord]
    real_videos: int  # the real dataset's videos this group stands for
    note: str = ""


def pick(records_by_code: dict[str, list[VideoRecord]], n: int) -> list[VideoRecord]:
    """Round-robin over datasets, each spread evenly over its index: deterministic and mixed."""
    spread = {}
    for code, recs in records_by_code.items():
        step = max(1, len(recs) // max(1, math.ceil(n / len(records_by_code))))
        spread[code] = recs[::step] + [r for i, r in enumerate(recs) if i % step]
    out: list[VideoRecord] = []
    while len(out) < n and any(spread.values()):
        for code in records_by_code:
            if spread[code] and len(out) < n:
                out.append(spread[code].pop(0))
    return out


def profile_groups(args) -> tuple[list[Group], str]:
    """``--videos`` videos (default 2) per profile, written once into the work dir."""
    root = Path(args.workdir) / ("profiles-lfw" if args.lfw else "profiles")
    groups = []
    for p in profiles(args.profiles):
        recs = []
        for v in range(args.videos or 2):
            rel = f"{p.key}/v{v:02d}{p.suffix}"
            recs.append(VideoRecord(p.code, rel, subject=str(v), split="train", label=Label.LIVE))
            path = root / rel
            if not path.is_file():
                print(f"writing {rel} ({p.size[0]}x{p.size[1]}, {args.frames or p.frames} frames, {p.codec}) ...",
                      flush=True)
                write_video(path, p, seed=v, frames=args.frames, lfw=args.lfw)
        seconds = (args.frames or p.frames) / p.fps
        mbit = np.mean([(root / r.relpath).stat().st_size for r in recs]) * 8 / 1e6 / seconds
        gop = f", GOP {p.gop_s:g} s, {p.b_frames} B" if p.codec == "h264" else ""
        note = f"{p.size[0]}x{p.size[1]} {p.fps} fps {p.codec} {p.suffix}{gop}, ~{mbit:.1f} Mbit/s"
        groups.append(Group(p.key, p.code, root, recs, p.videos, note))
    return groups, "dataset profiles (bench/profiles.py)" + (", LFW faces in every other video" if args.lfw else "")


def find_groups(args, params) -> tuple[list[Group], str]:
    if args.source == "profiles":
        return profile_groups(args)
    roots, records, source = find_videos(args, params)
    videos = pick(records, args.videos or sum(len(r) for r in records.values()))
    groups = [Group(c, c, roots[c], [r for r in videos if r.dataset == c], DATASET_VIDEOS.get(c, 0))
              for c in records]
    return [g for g in groups if g.records], source


def find_videos(args, params) -> tuple[dict[str, Path], dict[str, list[VideoRecord]], str]:
    index_dir = Path("data/index")
    if args.source in ("auto", "repo") and all((index_dir / f"{c}.csv").is_file() for c in DATASET_CODES):
        roots = {c: dataset_root(params.data, c) for c in DATASET_CODES}
        if all(r.is_dir() for r in roots.values()):
            return roots, {c: read_index(index_dir / f"{c}.csv") for c in DATASET_CODES}, "data/index + data roots"
    if args.source == "astronaut":
        return astronaut_videos(args)
    if args.source == "repo":
        sys.exit("error: --source repo, but data/index/*.csv or the dataset roots are missing; run `dvc repro raw`")
    from mpfas.demo import synthesize_demo

    out = Path(args.workdir) / "demo"
    cfg = replace(params.demo, scale=args.scale,
                  subjects=max(2, math.ceil(args.videos / 20)) if args.videos else params.demo.subjects)
    stamp = out / "bench-demo.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == asdict(cfg):
        print(f"reusing the demo in {out}")
    else:
        print(f"synthesising a demo ({cfg.subjects} subjects per dataset, scale {cfg.scale}) in {out} ...", flush=True)
        synthesize_demo(cfg, out, progress=False)
        stamp.write_text(json.dumps(asdict(cfg)))
    roots = {c: out / DATASET_NAMES[c] for c in DATASET_CODES}
    records = {c: adapter_for(c).scan(roots[c]).records for c in DATASET_CODES}
    return roots, records, f"synthetic demo (scale {args.scale})"


def astronaut_videos(args) -> tuple[dict[str, Path], dict[str, list[VideoRecord]], str]:
    """Real-dataset-sized videos (``--size``, ``--frames``) of skimage's astronaut, drifting slowly."""
    from skimage import data

    frames = args.frames or 150
    w, h = (int(v) for v in args.size.lower().split("x"))
    root = Path(args.workdir) / f"astronaut-{w}x{h}-{frames}"
    face = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    side = int(0.8 * h)
    face = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
    records = []
    for v in range(args.videos or 4):
        rel = f"astro/v{v:03d}.avi"
        records.append(VideoRecord("O", rel, subject=str(v), split="train", label=list(Label)[v % 3]))
        path = root / rel
        if path.is_file():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (w, h))
        for i in range(frames):
            img = np.full((h, w, 3), 60 + 10 * v, np.uint8)
            x = (w - side) // 2 + int(0.05 * w * np.sin(i / 7 + v))
            y = (h - side) // 2
            img[y:y + side, x:x + side] = face
            writer.write(img)
        writer.release()
    return {"O": root}, {"O": records}, f"astronaut videos {w}x{h}, {frames} frames"


@dataclass
class Ours:
    extract_s: float
    align_s: float
    sampled: dict[str, list[int]]  # video_id -> frames extracted
    images: dict[tuple[str, int], Path]  # extracted frame files
    crops: dict[tuple[str, int], Path]  # aligned faces written

    @property
    def total_s(self) -> float:
        return self.extract_s + self.align_s


def run_ours(group: Group, out: Path, params, detector) -> Ours:
    """The extract and align stages on the group's videos, from scratch."""
    from mpfas.preprocess.align import run_align

    shutil.rmtree(out, ignore_errors=True)  # timed from scratch, never resumed
    t0 = time.perf_counter()
    run_extract(group.records, group.root, out / "frames", replace(params.extract, max_failure_rate=1.0),
                rel_to=out, dataset=group.code, progress=False)
    t1 = time.perf_counter()
    cfg = replace(params.align, max_failed_videos={c: 1.0 for c in DATASET_CODES})
    run_align(group.records, out / "frames" / "frames.csv", out / "faces", cfg, rel_to=out, detector=detector,
              dataset=group.code, progress=False)
    t2 = time.perf_counter()
    sampled: dict[str, list[int]] = {}
    images, crops = {}, {}
    with open(out / "frames" / "frames.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            sampled.setdefault(row["video_id"], []).append(int(row["frame"]))
            images[(row["video_id"], int(row["frame"]))] = out / row["path"]
    with open(out / "faces" / "faces.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            crops[(row["video_id"], int(row["frame"]))] = out / row["path"]
    return Ours(t1 - t0, t2 - t1, sampled, images, crops)


@dataclass
class Official:
    """Per video: frames decoded, decode seconds, detect+warp+encode seconds on ``detected`` frames."""

    frames: dict[str, int] = field(default_factory=dict)
    decode_s: dict[str, float] = field(default_factory=dict)
    detect_s: dict[str, float] = field(default_factory=dict)
    detected: dict[str, int] = field(default_factory=dict)
    faces: dict[tuple[str, int], object] = field(default_factory=dict)  # Face or None
    crops: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    images: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)  # the detected frames, for ours

    def video_s(self, vid: str) -> float:
        """Projected seconds for the whole video: every frame decoded and detected."""
        return self.decode_s[vid] + self.detect_s[vid] / max(1, self.detected[vid]) * self.frames[vid]


def run_official(group: Group, params, detector, sampled: dict[str, list[int]], per_video: int) -> Official:
    """Decode every frame; full-resolution MTCNN + warp + PNG on ``per_video`` evenly spaced frames and
    the ones we sampled (``per_video`` 0: on every frame)."""
    from mpfas.preprocess.detect import select_main

    res = Official()
    for rec in group.records:
        vid = rec.video_id
        cap = cv2.VideoCapture(str(group.root / rec.relpath), cv2.CAP_FFMPEG)
        n_hint = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        chosen = None if per_video <= 0 or n_hint <= 0 else set(even_indices(n_hint, per_video)) | set(
            sampled.get(vid, []))
        i, detect_s, t0 = 0, 0.0, time.perf_counter()
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            if chosen is None or i in chosen:
                t = time.perf_counter()
                face = select_main(detector.detect_all([cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)])[0],
                                   params.align.select)
                crop = None
                if face is not None:
                    crop = warp_face(bgr, face.landmarks, params.align.crop_size, params.align.padding)
                    cv2.imencode(".png", crop)
                detect_s += time.perf_counter() - t
                res.faces[(vid, i)], res.images[(vid, i)] = face, bgr
                if crop is not None:
                    res.crops[(vid, i)] = crop
            i += 1
        total = time.perf_counter() - t0
        cap.release()
        res.frames[vid], res.detect_s[vid], res.decode_s[vid] = i, detect_s, total - detect_s
        res.detected[vid] = sum(k[0] == vid for k in res.faces)
    return res


def nme(ours: np.ndarray, ref: np.ndarray) -> float:
    """Mean 5-point distance over the reference's inter-ocular (eye centre) distance."""
    iod = float(np.linalg.norm(ref[0] - ref[1]))
    return float(np.linalg.norm(ours - ref, axis=1).mean() / iod) if iod > 0 else math.inf


def agreement(group: Group, ours: Ours, off: Official, params, detector) -> dict:
    """Our detector on the frames the official side detected, batched per video as align batches."""
    from mpfas.preprocess.align import align_frames
    from mpfas.preprocess.detect import box_iou

    cfg = params.align
    nmes, mads, ious, misses = [], [], [], []
    both_none = ours_only = official_only = reproduced = pipeline_frames = 0
    for rec in group.records:
        vid = rec.video_id
        keys = sorted(k for k in off.faces if k[0] == vid)
        piped = [k for k in keys if k in ours.images]
        extra = [k for k in keys if k not in ours.images]
        # the pipeline's frames as align saw them (the extracted files), the rest as decoded
        batches = [(piped, [cv2.imread(str(ours.images[k]), cv2.IMREAD_COLOR) for k in piped]),
                   (extra, [off.images[k] for k in extra])]
        for ks, imgs in batches:
            for k, got in zip(ks, align_frames(imgs, detector, cfg)):
                ref = off.faces[k]
                if k in ours.images:
                    pipeline_frames += 1
                    written = cv2.imread(str(ours.crops[k])) if k in ours.crops else None
                    same = (got is None and written is None) or (
                        got is not None and written is not None and np.array_equal(got.crop, written))
                    reproduced += same
                if got is None and ref is None:
                    both_none += 1
                elif got is None:
                    official_only += 1
                    misses.append([vid, k[1], "no face in ours"])
                elif ref is None:
                    ours_only += 1
                    misses.append([vid, k[1], "no face in the official"])
                else:
                    nmes.append(nme(got.face.landmarks, ref.landmarks))
                    if nmes[-1] > NME_GOAL:
                        misses.append([vid, k[1], round(nmes[-1], 4)])
                    mads.append(float(np.abs(got.crop.astype(np.int16) - off.crops[k]).mean()))
                    ious.append(box_iou(got.face.box, ref.box))
    n = len(nmes) + both_none + ours_only + official_only
    good = sum(v <= NME_GOAL for v in nmes) + both_none
    return {"frames": n, "good": good, "rate": good / n if n else 0.0,
            "nme_median": float(np.median(nmes)) if nmes else math.nan,
            "nme_p95": float(np.percentile(nmes, 95)) if nmes else math.nan,
            "nme_max": float(np.max(nmes)) if nmes else math.nan,
            "crop_mad_median": float(np.median(mads)) if mads else math.nan,
            "crop_mad_max": float(np.max(mads)) if mads else math.nan,
            "box_iou_mean": float(np.mean(ious)) if ious else math.nan,
            "ours_only": ours_only, "official_only": official_only, "no_face_both": both_none,
            "pipeline_frames": pipeline_frames, "pipeline_crops_reproduced": reproduced,
            "misses": misses}  # [video, frame, NME or why] of every frame off the goal


def group_result(group: Group, ours: Ours, off: Official, agr: dict) -> dict:
    vids = [r.video_id for r in group.records]
    n = len(vids)
    ours_s = ours.total_s / n
    off_s = sum(off.video_s(v) for v in vids) / n
    frames = sum(off.frames[v] for v in vids) / n
    detected = sum(off.detected[v] for v in vids) / n
    # disk: what extract and align wrote per video, times the real videos (DVC's cache copy not counted)
    frame_bytes = sum(path.stat().st_size for path in ours.images.values()) / n
    face_bytes = sum(path.stat().st_size for path in ours.crops.values()) / n
    return {"key": group.key, "dataset": group.code, "note": group.note, "videos_run": n,
            "real_videos": group.real_videos, "frames_per_video": frames, "official_detected_per_video": detected,
            "ours_s_per_video": ours_s, "ours_extract_s": ours.extract_s, "ours_align_s": ours.align_s,
            "official_s_per_video": off_s, "official_decode_s_per_video": sum(off.decode_s[v] for v in vids) / n,
            "official_projected": detected < frames,
            "ours_hours": ours_s * group.real_videos / 3600, "official_hours": off_s * group.real_videos / 3600,
            "speedup": off_s / ours_s if ours_s > 0 else math.inf, "agreement": agr,
            "frames_mb_per_video": frame_bytes / 1e6, "faces_mb_per_video": face_bytes / 1e6,
            "frames_gb": frame_bytes * group.real_videos / 1e9, "faces_gb": face_bytes * group.real_videos / 1e9}


def markdown(results: list[dict], header: str) -> str:
    """The bench tables: per profile, then per dataset and in total."""
    lines = [header, "",
             "| profile | video | real videos | frames / video | ours s / video | official s / video | "
             "ours h | official h | speed-up | NME <= 5 % | NME median / max | crop MAD median / max | "
             "our crops = pipeline's |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        a = r["agreement"]
        star = "*" if r["official_projected"] else ""
        lines.append(
            f"| {r['key']} | {r['note']} | {r['real_videos']} | {r['frames_per_video']:.0f} | "
            f"{r['ours_s_per_video']:.2f} | {r['official_s_per_video']:.1f}{star} | {r['ours_hours']:.2f} | "
            f"{r['official_hours']:.1f}{star} | **{r['speedup']:.0f}x** | {a['good']}/{a['frames']} "
            f"({a['rate']:.0%}) | {a['nme_median']:.2%} / {a['nme_max']:.2%} | {a['crop_mad_median']:.1f} / "
            f"{a['crop_mad_max']:.1f} | {a['pipeline_crops_reproduced']}/{a['pipeline_frames']} |")
    lines += ["", "| dataset | videos | ours h | official h | speed-up | frames GB | faces GB |",
              "|---|---|---|---|---|---|---|"]
    rows = []
    keys = ("real_videos", "ours_hours", "official_hours", "frames_gb", "faces_gb")
    for code in dict.fromkeys(r["dataset"] for r in results):
        rs = [r for r in results if r["dataset"] == code]
        rows.append((f"{code} {DATASET_NAMES.get(code, code)}", *(sum(r[k] for r in rs) for k in keys)))
    rows.append(("**total**", *(sum(row[i] for row in rows) for i in range(1, len(keys) + 1))))
    for name, videos, oh, bh, fgb, cgb in rows:
        lines.append(f"| {name} | {videos} | {oh:.2f} | {bh:.1f} | {bh / oh if oh else math.inf:.0f}x | "
                     f"{fgb:.1f} | {cgb:.2f} |")
    if any(r["official_projected"] for r in results):
        lines += ["", "\\* official: every frame decoded (measured); MTCNN + warp + PNG measured on the "
                  "frames it detected per video and multiplied by the frame count."]
    lines += ["", "Frames GB, faces GB: the bytes extract and align wrote per video here (frames at full "
              "resolution, faces at align.crop_size) times the real videos; the profiles' synthetic scenes may "
              "compress better than camera footage."]
    return "\n".join(lines) + "\n"


def override(params, sets: list[str]):
    """Apply ``section.key=value`` overrides (extract/align only), typed like the default."""
    for item in sets:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        if section not in ("extract", "align") or not hasattr(getattr(params, section), name):
            sys.exit(f"error: --set {item}: only extract.* and align.* keys can be overridden")
        cfg = getattr(params, section)
        typed = type(getattr(cfg, name))(value)
        new = replace(cfg, **{name: typed})
        new.validate()
        params = replace(params, **{section: new})
    return params


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", choices=["profiles", "auto", "repo", "synth", "astronaut"], default="profiles",
                    help="profiles: videos shaped like each real dataset's (default); auto: data/index + data/raw "
                         "if present, else synthesise the demo; repo; synth; astronaut: one size (--size, --frames)")
    ap.add_argument("--videos", type=int, default=0,
                    help="profiles: videos per profile (default 2); otherwise videos in all (default 0: all)")
    ap.add_argument("--profiles", default="", help="profiles to run, comma-separated keys or codes (default all)")
    ap.add_argument("--frames", type=int, default=0,
                    help="frames per video (profiles: default each profile's length; astronaut: default 150)")
    ap.add_argument("--lfw", action="store_true",
                    help="profiles: every other video shows a 25-px LFW face upsampled (blurry; see bench/profiles.py)")
    ap.add_argument("--official-frames", type=int, default=12,
                    help="frames per video the official side detects, evenly spaced, besides the ones we sample; "
                         "its per-frame cost is projected to every frame (0: detect every frame)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for both (default 1)")
    ap.add_argument("--size", default="1920x1080", help="astronaut videos: frame size WxH (OULU-NPU: 1920x1080)")
    ap.add_argument("--scale", type=float, default=1.0, help="demo frame-size multiplier when synthesising")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--workdir", default="", help="keep inputs and outputs here (default: a temp dir, removed)")
    ap.add_argument("--json", default="", help="also write the results as JSON here")
    ap.add_argument("--markdown", default="", help="also write the tables as Markdown here")
    ap.add_argument("--device", default="cpu", help="where MTCNN runs, for both (cpu, cuda)")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override an extract/align param for ours, e.g. --set align.detect_max_side=320")
    args = ap.parse_args()

    import torch

    from mpfas.preprocess.align import detector_for
    from mpfas.preprocess.detect import FaceDetector

    torch.set_num_threads(args.threads)
    params = override(load_params(args.params), args.set)
    tmp = None
    if not args.workdir:
        tmp = tempfile.TemporaryDirectory(prefix="mpfas-bench-")
        args.workdir = tmp.name
    work = Path(args.workdir)
    started, load0 = time.perf_counter(), os.getloadavg()[0]
    groups, source = find_groups(args, params)
    print(f"{sum(len(g.records) for g in groups)} videos from {source}: "
          + ", ".join(f"{g.key} {len(g.records)}" for g in groups))
    settings = (f"extract.frames_per_video={params.extract.frames_per_video}, "
                f"runtime.extract_workers={params.runtime.extract_workers}, "
                f"extract.decode={params.extract.decode}, align.detect_max_side={params.align.detect_max_side}, "
                f"align.min_face_size={params.align.min_face_size}; torch threads {args.threads}, MTCNN on "
                f"{args.device}; official: min_face_size {OFFICIAL_MIN_FACE}, full resolution")
    print(f"settings: {settings}", flush=True)
    ours_det = detector_for(params.align, device=args.device, threads=args.threads)
    official_det = FaceDetector(max_side=0, min_face_size=OFFICIAL_MIN_FACE, select=params.align.select,
                                threads=args.threads, device=args.device)
    results = []
    for g in groups:
        ours = run_ours(g, work / "ours" / g.key, params, ours_det)
        off = run_official(g, params, official_det, ours.sampled, args.official_frames)
        agr = agreement(g, ours, off, params, ours_det)
        r = group_result(g, ours, off, agr)
        results.append(r)
        print(f"{g.key:>10}: ours {r['ours_s_per_video']:.2f} s/video, official {r['official_s_per_video']:.1f} "
              f"s/video ({r['frames_per_video']:.0f} frames), {r['speedup']:.0f}x; NME <= 5 % on {agr['good']}/"
              f"{agr['frames']} frames, median {agr['nme_median']:.2%}, max {agr['nme_max']:.2%}", flush=True)
    load1 = os.getloadavg()[0]
    header = (f"Preprocessing, projected to the real datasets ({source}; {settings}; "
              f"{os.cpu_count()} CPUs, load average {load0:.1f} at start, {load1:.1f} at end; bench wall time "
              f"{time.perf_counter() - started:.0f} s)")
    table = markdown(results, header)
    print("\n" + table)
    worst = min((r["agreement"]["rate"] for r in results), default=0.0)
    slowest = min((r["speedup"] for r in results), default=0.0)
    print(f"goals: NME <= 5 % on >= 95 % of frames at every profile: {'met' if worst >= RATE_GOAL else 'NOT met'} "
          f"(worst {worst:.0%}); speed-up >= {SPEEDUP_GOAL:.0f}x at every profile: "
          f"{'met' if slowest >= SPEEDUP_GOAL else 'NOT met'} (lowest {slowest:.0f}x)")
    if args.markdown:
        Path(args.markdown).write_text(table)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "source": source, "settings": settings, "threads": args.threads, "load_average": [load0, load1],
            "groups": results, "device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu",
        }, indent=2) + "\n")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
