"""Preprocessing benchmark: our extract + align against the official approach, in one run.

    python bench/preprocess.py --videos 40

Ours: ``extract.frames_per_video`` evenly spaced frames per video (parallel worker
processes), MTCNN batched per video on copies downscaled to ``align.detect_max_side``,
5-point warp, everything written to disk as the stages do. Baseline (the official
HFN+MP preprocessing): decode every frame, run MTCNN on every full-resolution frame
one at a time, warp and PNG-encode every crop. Both load MTCNN inside the timed
region and use the same torch thread count. Agreement: on every frame we sampled,
our box against the baseline's box for the same frame (IoU >= 0.9 counts as agreeing;
both finding no face agrees too).

Videos come from ``data/index`` + the demo under ``data/raw`` when present, else a
small demo is synthesised into a temp dir (``--scale`` sets its frame-size
multiplier). ``--source astronaut`` writes real-dataset-sized videos instead
(e.g. ``--size 1920x1080 --frames 150``, like OULU-NPU), where sampling and
downscaling both pay off.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import cv2
import numpy as np

from mpfas.config import load_params
from mpfas.datasets import BUILT_IN, VideoRecord, adapter_for, dataset_name, read_index
from mpfas.preprocess.extract import run_extract
from mpfas.preprocess.warp import warp_face

DATASET_CODES = BUILT_IN  # the benchmark's datasets: the four of the paper
DATASET_NAMES = {code: dataset_name(code) for code in DATASET_CODES}
OFFICIAL_MIN_FACE = 20  # MTCNN default, as the official preprocessing ran it

# torch and MTCNN are imported inside the functions that need them: the extract
# workers are spawned processes that re-import this script, and should stay light.


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


def find_videos(args, params) -> tuple[dict[str, Path], dict[str, list[VideoRecord]], str]:
    index_dir = Path("data/index")
    if args.source in ("auto", "repo") and all((index_dir / f"{c}.csv").is_file() for c in DATASET_CODES):
        roots = {c: params.data.root(c) for c in DATASET_CODES}
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

    from mpfas.datasets import Label

    w, h = (int(v) for v in args.size.lower().split("x"))
    root = Path(args.workdir) / f"astronaut-{w}x{h}-{args.frames}"
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
        for i in range(args.frames):
            img = np.full((h, w, 3), 60 + 10 * v, np.uint8)
            x = (w - side) // 2 + int(0.05 * w * np.sin(i / 7 + v))
            y = (h - side) // 2
            img[y:y + side, x:x + side] = face
            writer.write(img)
        writer.release()
    return {"O": root}, {"O": records}, f"astronaut videos {w}x{h}, {args.frames} frames"


def run_ours(videos, roots, out: Path, params, threads: int, device: str = "cpu") -> dict:
    from mpfas.preprocess.align import detector_for, run_align

    shutil.rmtree(out, ignore_errors=True)  # timed from scratch, never resumed
    t0 = time.perf_counter()
    for code in DATASET_CODES:
        recs = [r for r in videos if r.dataset == code]
        if recs:
            run_extract(recs, roots[code], out / "frames" / code, replace(params.extract, max_failure_rate=1.0),
                        rel_to=out, progress=False)
    t1 = time.perf_counter()
    cfg = replace(params.align, max_failed_videos={c: 1.0 for c in DATASET_CODES})
    detector = detector_for(cfg, device=device, threads=threads)
    for code in DATASET_CODES:
        recs = [r for r in videos if r.dataset == code]
        if recs:
            run_align(recs, out / "frames" / code / "frames.csv", out / "faces" / code, cfg, rel_to=out,
                      detector=detector, progress=False)
    t2 = time.perf_counter()
    sampled: dict[tuple[str, int], tuple | None] = {}
    for code in DATASET_CODES:
        if not (out / "frames" / code / "frames.csv").is_file():
            continue
        with open(out / "frames" / code / "frames.csv", newline="") as fh:
            for row in csv.DictReader(fh):
                sampled[(row["video_id"], int(row["frame"]))] = None
        with open(out / "faces" / code / "faces.csv", newline="") as fh:
            for row in csv.DictReader(fh):
                sampled[(row["video_id"], int(row["frame"]))] = tuple(float(row[k]) for k in ("x1", "y1", "x2", "y2"))
    return {"extract_s": t1 - t0, "align_s": t2 - t1, "total_s": t2 - t0, "boxes": sampled}


def run_baseline(videos, roots, params, threads: int, device: str = "cpu") -> dict:
    """The official approach: every frame decoded, MTCNN on every full-resolution frame, every crop encoded."""
    from mpfas.preprocess.detect import FaceDetector, select_main

    t0 = time.perf_counter()
    detector = FaceDetector(max_side=0, min_face_size=OFFICIAL_MIN_FACE, select=params.align.select,
                            threads=threads, device=device)
    boxes: dict[tuple[str, int], tuple | None] = {}
    frames = 0
    for rec in videos:
        cap = cv2.VideoCapture(str(roots[rec.dataset] / rec.relpath))
        i = 0
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            faces = detector.detect_all([cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)])[0]
            face = select_main(faces, params.align.select)
            boxes[(rec.video_id, i)] = face.box if face else None
            if face is not None:
                crop = warp_face(bgr, face.landmarks, params.align.crop_size, params.align.padding)
                cv2.imencode(".png", crop)
            i += 1
        cap.release()
        frames += i
    return {"total_s": time.perf_counter() - t0, "frames": frames, "boxes": boxes}


def agreement(ours: dict, base: dict, min_iou: float) -> dict:
    from mpfas.preprocess.detect import box_iou

    agree, ious, ours_only, base_only, both_none = 0, [], 0, 0, 0
    for key, box in ours.items():
        ref = base.get(key)
        if box is None and ref is None:
            agree += 1
            both_none += 1
        elif box is None:
            base_only += 1
        elif ref is None:
            ours_only += 1
        else:
            iou = box_iou(box, ref)
            ious.append(iou)
            agree += iou >= min_iou
    n = len(ours)
    return {"frames": n, "agree": agree, "rate": agree / n if n else 0.0,
            "mean_iou": float(np.mean(ious)) if ious else 0.0, "min_iou": float(np.min(ious)) if ious else 0.0,
            "ours_only": ours_only, "baseline_only": base_only, "no_face_both": both_none}


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
    ap.add_argument("--videos", type=int, default=0, help="videos to process, spread over O, C, I, M (default 0: all)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for both (default 1)")
    ap.add_argument("--source", choices=["auto", "repo", "synth", "astronaut"], default="auto",
                    help="auto: data/index + data/raw if present, else synthesise the demo; repo; synth; "
                         "astronaut: real-dataset-sized videos (--size, --frames) of one face")
    ap.add_argument("--size", default="1920x1080", help="astronaut videos: frame size WxH (OULU-NPU: 1920x1080)")
    ap.add_argument("--frames", type=int, default=150, help="astronaut videos: frames per video (OULU-NPU ~150)")
    ap.add_argument("--scale", type=float, default=1.0, help="demo frame-size multiplier when synthesising")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--workdir", default="", help="keep outputs here (default: a temp dir, removed)")
    ap.add_argument("--json", default="", help="also write the results as JSON here")
    ap.add_argument("--min-iou", type=float, default=0.9)
    ap.add_argument("--device", default="cpu", help="where MTCNN runs, for both (cpu, cuda)")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override an extract/align param for ours, e.g. --set align.detect_max_side=320")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    params = override(load_params(args.params), args.set)
    tmp = None
    if not args.workdir:
        tmp = tempfile.TemporaryDirectory(prefix="mpfas-bench-")
        args.workdir = tmp.name
    work = Path(args.workdir)
    roots, records, source = find_videos(args, params)
    videos = pick(records, args.videos or sum(len(r) for r in records.values()))
    counts = {c: sum(r.dataset == c for r in videos) for c in DATASET_CODES if c in records}
    print(f"{len(videos)} videos from {source}: " + ", ".join(f"{c} {n}" for c, n in counts.items()))
    print(f"settings: extract.frames_per_video={params.extract.frames_per_video}, extract.workers="
          f"{params.extract.workers}, align.detect_max_side={params.align.detect_max_side}, "
          f"align.min_face_size={params.align.min_face_size}, torch threads {args.threads}, "
          f"MTCNN on {args.device}", flush=True)

    ours = run_ours(videos, roots, work / "ours", params, args.threads, args.device)
    base = run_baseline(videos, roots, params, args.threads, args.device)
    agr = agreement(ours["boxes"], base["boxes"], args.min_iou)
    n = len(videos)
    ours_vps, base_vps = n / ours["total_s"], n / base["total_s"]
    speedup = base["total_s"] / ours["total_s"]
    print(f"ours     : {ours['total_s']:7.2f} s  {ours_vps:6.2f} videos/s  (extract {ours['extract_s']:.2f} s, "
          f"align {ours['align_s']:.2f} s; {agr['frames']} frames)")
    print(f"baseline : {base['total_s']:7.2f} s  {base_vps:6.2f} videos/s  ({base['frames']} frames, all detected)")
    print(f"speed-up : {speedup:.1f}x  (target >= 10x)")
    print(f"agreement: {agr['agree']}/{agr['frames']} sampled frames ({agr['rate']:.1%}) with box IoU >= "
          f"{args.min_iou} or no face in both (target >= 95%); mean IoU {agr['mean_iou']:.3f}, min "
          f"{agr['min_iou']:.3f}; face only in ours {agr['ours_only']}, only in baseline {agr['baseline_only']}, "
          f"in neither {agr['no_face_both']}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "videos": n, "source": source, "per_dataset": counts, "threads": args.threads,
            "ours_s": ours["total_s"], "ours_extract_s": ours["extract_s"], "ours_align_s": ours["align_s"],
            "baseline_s": base["total_s"], "baseline_frames": base["frames"],
            "ours_videos_per_s": ours_vps, "baseline_videos_per_s": base_vps, "speedup": speedup,
            "agreement": agr, "device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu",
        }, indent=2) + "\n")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
