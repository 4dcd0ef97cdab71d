"""Prepared GPU measurement: how long the paper's OCIM table takes on one GPU, lever by lever.

    python bench/ocim_gpu.py                        # on the GPU machine, under 10 minutes
    python bench/ocim_gpu.py --device cpu --tiny    # the same code paths on CPU (self-test, CI)

**Training** runs the real ``mpfas.train.train`` (sampler, the method's step, MLflow logging of
every iteration) in its own process, as ``dvc repro`` runs ``train@<P>``, at the paper preset
(ResNet-50 streams at 256 px, K = 4, 4 + 4 faces per domain; random backbone weights, which
cost the same) on a workspace of demo faces in the four OCIM domains. Steady-state seconds per
iteration are timed between the loop's logging calls of iteration 15 and of iteration 75 (all
the loop does per iteration, MLflow logging included where MLflow is installed; no evaluation or
checkpoint falls between). Each result says whether MLflow was there (``mlflow``).
Each lever is one run:

* ``plain``: faces cached in host memory, eager step: the code path before these levers;
* ``faces-on-device``: ``runtime.face_cache: device``;
* ``cuda-graph``: and ``train.cuda_graph: true``;
* ``N at once`` (``--concurrent``): N such runs at once on the one GPU, the CPU threads split.

**Evaluation**: the loop's own ``validate`` on the workspace's target faces, timed warm (faces
cached) at ``score.batch_size`` 32 and 256, and cold (decoding them: the one-off cache fill).
**Checkpoints**: a ``last.pt`` write, timed by saving a finished run's own ``last.pt`` again.

**Projection** per protocol: ``iterations x s/iteration + evaluations x faces / (faces/s) +
checkpoints x write + its faces' decode + the run's one-off cost`` (its wall time beyond its
iterations: start-up, capture, its last evaluation), with the OCIM counts (O 4950, C 600, I 1200, M 280
videos, 2 faces each) and the paper preset's 20,000 iterations, evaluation and checkpoint every
200; the table is the four protocols one after another, or N at a time. ``ocim_table_hours`` is
the best option measured.

**Preprocessing**: 32 videos per OCIM profile (bench/profiles.py: real resolutions, frame
rates, lengths and codecs) through the extract and align stages' functions with the machine's
cores as workers, MTCNN on CPU and on the GPU. Runs on 2 and on 32 videos separate the seconds
per video from a stage run's start-up (spawning workers, loading MTCNN), which the pipeline
pays once per dataset; ``ocim_preprocess_minutes`` projects the 7,030 videos from the faster.

Writes ``ocim_gpu.json``, ``ocim_gpu.md`` (the table for docs/benchmarks.md) and
``commands.txt`` to ``--out`` (default ``$OUT``, else bench/out/ocim_gpu).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

OCIM = {"O": 4950, "C": 600, "I": 1200, "M": 280}  # videos of each official release
PROTOCOLS = {"OCI-M": "M", "OMI-C": "C", "OCM-I": "I", "ICM-O": "O"}
FACES_PER_VIDEO = 2  # train.faces_per_video and score.faces_per_video of the paper preset


@dataclass(frozen=True)
class Size:
    """How big the measurement is: the paper's network on a GPU, or a tiny one for the self-test."""

    backbone: str = "resnet50"
    input_size: int = 256
    inner_loops: int = 4
    videos_per_class: int = 12  # per domain and class in the face workspace (2 faces each)
    warmup: int = 15
    iters: int = 60
    profile_videos: int = 32
    profile_frames: int = 0  # 0: the profile's real length


PAPER = Size()
TINY = Size("resnet18", 64, inner_loops=2, videos_per_class=3, warmup=2, iters=3, profile_videos=3,
            profile_frames=12)

LEVERS = {  # name -> params.yaml overrides, on top of the paper preset
    "plain": {"runtime.face_cache": "cpu", "train.cuda_graph": False},
    "faces-on-device": {"runtime.face_cache": "device", "train.cuda_graph": False},
    "cuda-graph": {"runtime.face_cache": "device", "train.cuda_graph": True},
}


# ---------------------------------------------------------------- the face workspace


def paper_overrides(size: Size, device: str) -> dict[str, Any]:
    """What the measurement sets on top of the paper preset: random backbones (they cost the same)
    and ``size``'s network."""
    return {"model.pretrained": "random", "model.backbone": size.backbone, "model.input_size": size.input_size,
            "align.crop_size": size.input_size, "train.inner_loops": size.inner_loops,
            "runtime.device": device, "runtime.experiment": "ocim-gpu", "runtime.resume": "never"}


def write_workspace(root: Path, size: Size) -> None:
    """Demo faces (live portraits and their halftone prints) in O, C, I, M and one manifest per
    OCIM protocol: every source video trains, every target video is evaluated (the paper's split)."""
    from gpu_check import demo_faces
    from PIL import Image

    from mpfas.manifests.build import ManifestRow, write_manifest

    n = size.videos_per_class * 2 * FACES_PER_VIDEO  # per domain: live and print videos
    videos: dict[str, list[tuple[str, int, list[str]]]] = {}
    for k, domain in enumerate(OCIM):
        faces, labels = demo_faces(n, size.input_size, seed=k)
        videos[domain] = []
        for live in (1, 0):
            idx = np.flatnonzero(labels == live)  # demo_faces alternates portraits and their prints
            for v in range(size.videos_per_class):
                vid, paths = f"{domain}/{'live' if live else 'print'}{v:03d}", []
                for f, i in enumerate(idx[v * FACES_PER_VIDEO:(v + 1) * FACES_PER_VIDEO]):
                    rel = f"data/faces/{vid}/f{f:05d}.png"
                    (root / rel).parent.mkdir(parents=True, exist_ok=True)
                    pixels = (faces[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
                    Image.fromarray(pixels).save(root / rel)
                    paths.append(rel)
                videos[domain].append((vid, live, paths))
    for protocol, target in PROTOCOLS.items():
        rows = [ManifestRow(dataset=d, domain=d, video_id=vid, subject=vid, split="train",
                            label="live" if live else "print", is_live=live, attack="" if live else "print",
                            role="target" if d == target else "source-train", faces=paths)
                for d in OCIM for vid, live, paths in videos[d]]
        write_manifest(rows, root / f"data/manifests/{protocol}.csv")


def write_params(root: Path, name: str, overrides: dict[str, Any]) -> Path:
    """params.yaml with the paper preset and ``overrides`` applied (``mpfas preset``'s own code)."""
    from mpfas.core.presets import PAPER as PRESET
    from mpfas.core.presets import apply_preset

    path = root / f"params-{name}.yaml"
    shutil.copyfile(ROOT / "params.yaml", path)
    apply_preset(path, PRESET, overrides)
    return path


# ---------------------------------------------------------------- one training run (a worker process)


def train_worker(root: Path, params_file: Path, protocol: str, out: str, warmup: int, iters: int,
                 threads: int | None) -> dict[str, Any]:
    """``train()`` of ``protocol`` in ``root``; steady s/iteration between the loop's first
    logging call of iteration ``warmup`` and of ``warmup + iters`` (whatever the loop does between,
    MLflow logging included when MLflow is there)."""
    import torch

    from mpfas.core.config import load_params
    from mpfas.train import run as run_module
    from mpfas.train import train

    if threads:
        torch.set_num_threads(threads)
    stamps: dict[int, float] = {}
    log_metrics = run_module.RunContext.log_metrics

    def stamped(self: Any, metrics: dict[str, float], it: int) -> None:  # a clock on the loop, nothing else
        stamps.setdefault(it, time.perf_counter())
        log_metrics(self, metrics, it)

    run_module.RunContext.log_metrics = stamped
    os.chdir(root)
    params = load_params(params_file)
    params = replace(params, train=replace(params.train, iterations=warmup + iters, eval_every=warmup + iters),
                     runtime=replace(params.runtime, checkpoint_every=warmup + iters))
    t0 = time.perf_counter()
    result = train(params, protocol, manifest=f"data/manifests/{protocol}.csv", faces="data/faces", out_dir=out,
                   params_file=params_file, script="bench/ocim_gpu.py")
    wall = time.perf_counter() - t0
    return {"protocol": protocol, "seconds_per_iteration": (stamps[warmup + iters] - stamps[warmup]) / iters,
            "wall_s": wall, "device": result.device, "mlflow": result.run_id is not None,
            "last_pt": str(root / out / "last.pt")}


def run_workers(root: Path, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each job in its own fresh interpreter (``--worker``), all at once; their JSON results."""
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(job)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for job in jobs]
    results = []
    for job, proc in zip(jobs, procs):
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"training worker {job['out']} failed ({proc.returncode}):\n{err[-3000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


# ---------------------------------------------------------------- evaluation and checkpoints


def evaluation_rates(root: Path, params_file: Path, device: str) -> dict[str, Any]:
    """Faces per second of the loop's ``validate`` on the workspace's faces (warm at batch 32 and
    256, and cold: decoding them)."""
    import torch

    from mpfas.core.config import load_params

    params = load_params(params_file)
    dev = torch.device(device)
    here = os.getcwd()
    os.chdir(root)  # the manifest's face paths are relative to the workspace
    try:
        return _evaluation_rates(params, dev)
    finally:
        os.chdir(here)


def _evaluation_rates(params: Any, dev: Any) -> dict[str, Any]:
    import torch

    from mpfas.manifests.build import read_manifest
    from mpfas.methods import build_model
    from mpfas.models.inference import FaceCache, score_batch
    from mpfas.train.execution import prepare_model
    from mpfas.train.loop import validate

    model = prepare_model(build_model(params.model).to(dev), params.train, dev)  # as the loop builds it
    size = params.model.input_size
    score_batch(model.eval(), torch.zeros(8, 3, size, size), dev)  # CUDA's one-off start-up, not decoding
    rows = [r for r in read_manifest("data/manifests/OCI-M.csv", "data/faces") if r.domain != "M"]
    faces = len(rows) * FACES_PER_VIDEO
    cache = FaceCache(params.model.input_size, device=dev)
    t0 = time.perf_counter()
    validate(model, rows, params, dev, "target", cache)
    cold = time.perf_counter() - t0
    out: dict[str, Any] = {"faces": faces, "cold_faces_per_s": faces / cold}
    for batch in (32, 256):
        p = replace(params, score=replace(params.score, batch_size=batch))
        validate(model, rows, p, dev, "target", cache)  # warm-up at this batch size
        t0 = time.perf_counter()
        validate(model, rows, p, dev, "target", cache)
        out[f"faces_per_s_batch{batch}"] = faces / (time.perf_counter() - t0)
    return out


def checkpoint_write_s(last_pt: str) -> float:
    """One ``last.pt`` write as the loop makes it (``checkpoint.save``: atomic), of a finished run's own."""
    from mpfas.models import checkpoint

    ckpt = checkpoint.load(last_pt)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        checkpoint.save(ckpt, Path(tmp) / "last.pt")
        return time.perf_counter() - t0


# ---------------------------------------------------------------- projection


def project(s_per_it: float, eval_rate: float, decode_rate: float, ckpt_s: float, slowdown: float = 1.0,
            startup_s: float = 0.0, iterations: int = 20000, every: int = 200) -> dict[str, float]:
    """Hours of each OCIM protocol at the paper preset (``slowdown``: evaluation and decoding
    under N runs at once, taken as the training step's; ``startup_s``: a run's one-off cost)."""
    hours = {}
    for protocol, target in PROTOCOLS.items():
        evals = iterations // every
        eval_s = evals * OCIM[target] * FACES_PER_VIDEO / eval_rate * slowdown
        decode_s = sum(OCIM.values()) * FACES_PER_VIDEO / decode_rate * slowdown
        hours[protocol] = (iterations * s_per_it + eval_s + evals * ckpt_s + decode_s + startup_s) / 3600
    return hours


def table_hours(per_protocol: dict[str, float], at_once: int) -> float:
    """The four protocols, ``at_once`` at a time: each round lasts as long as its longest."""
    values = list(per_protocol.values())
    return sum(max(values[i:i + at_once]) for i in range(0, len(values), at_once))


# ---------------------------------------------------------------- preprocessing


def write_profile_video(args: tuple[str, str, int, int]) -> str:
    from profiles import profiles, write_video

    key, path, seed, frames = args
    (profile,) = [p for p in profiles(key) if p.key == key]
    write_video(Path(path), profile, seed=seed, frames=frames)
    return path


def preprocessing(work: Path, size: Size, workers: int, device: str) -> dict[str, Any]:
    """Extract and align the videos of every OCIM profile; per profile and align device, the
    seconds per video and a stage run's start-up (worker processes, MTCNN), from runs on 2 and
    on ``size.profile_videos`` videos; projected minutes for the 7,030 videos (one run per dataset)."""
    from profiles import profiles

    chosen = [p for p in profiles() if p.code in OCIM]
    todo = [(p.key, str(work / "raw" / p.key / f"v{v:02d}{p.suffix}"), v, size.profile_frames)
            for p in chosen for v in range(size.profile_videos)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(write_profile_video, todo))
    devices = ["cpu"] + (["cuda"] if device == "cuda" else [])
    out: dict[str, Any] = {"videos_per_profile": size.profile_videos, "workers": workers,
                           "writing_s": time.perf_counter() - t0, "profiles": {}}
    for p in chosen:
        out["profiles"][p.key] = profile_stages(p, work, size.profile_videos, workers, devices)
    for dev in devices:
        steps = ("extract", f"align_{dev}")
        per_video = sum(r["real_videos"] * r[f"{s}_per_video_s"] for r in out["profiles"].values() for s in steps)
        startup = sum(max(r[f"{s}_startup_s"] for r in out["profiles"].values() if r["code"] == code)
                      for code in OCIM for s in steps)
        out[f"ocim_minutes_align_{dev}"] = (per_video + startup) / 60
    out["ocim_preprocess_minutes"] = min(out[f"ocim_minutes_align_{d}"] for d in devices)
    return out


def profile_stages(profile: Any, work: Path, n: int, workers: int, devices: list[str]) -> dict[str, Any]:
    """The extract and align stages' functions on 2 and on ``n`` videos of ``profile``."""
    from mpfas.core.config import load_params
    from mpfas.data import Label, VideoRecord
    from mpfas.preprocess.align import run_align
    from mpfas.preprocess.extract import run_extract

    params = load_params(ROOT / "params.yaml")
    align_cfg = replace(params.align, max_failed_videos={c: 1.0 for c in params.align.max_failed_videos})
    extract_cfg = replace(params.extract, max_failure_rate=1.0)
    records = [VideoRecord(profile.code, f"{profile.key}/v{v:02d}{profile.suffix}", subject=str(v), split="train",
                           label=Label.LIVE) for v in range(n)]
    row: dict[str, Any] = {"code": profile.code, "real_videos": profile.videos}
    seconds: dict[str, dict[int, float]] = {}
    for recs in (records[:2], records):
        base = work / "out" / profile.key / str(len(recs))
        t0 = time.perf_counter()
        run_extract(recs, work / "raw", base / "frames", extract_cfg, workers, rel_to=base, dataset=profile.code,
                    progress=False)
        seconds.setdefault("extract", {})[len(recs)] = time.perf_counter() - t0
        for dev in devices:
            t0 = time.perf_counter()
            summary = run_align(recs, base / "frames" / "frames.csv", base / f"faces-{dev}", align_cfg, rel_to=base,
                                dataset=profile.code, progress=False, device=dev,
                                workers=workers if dev == "cpu" else min(4, workers))
            seconds.setdefault(f"align_{dev}", {})[len(recs)] = time.perf_counter() - t0
            row[f"align_{dev}_detection_rate"] = summary.detection_rate
    for step, by_n in seconds.items():
        per_video = max(0.0, (by_n[n] - by_n[2]) / (n - 2))
        row.update({f"{step}_s": by_n[n], f"{step}_per_video_s": per_video,
                    f"{step}_startup_s": max(0.0, by_n[2] - 2 * per_video)})
    return row


# ---------------------------------------------------------------- the whole measurement


def environment(device: str) -> dict[str, Any]:
    import torch

    env = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
           "cpus": os.cpu_count(), "device": device}
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        env.update(device_name=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                   tf32_convs=torch.backends.cudnn.allow_tf32)
    else:
        env["device_name"] = platform.processor() or platform.machine()
    return env


def flops_per_iteration(size: Size, device: str) -> int:
    """FLOPs of one paper-preset meta-iteration (bench/train_step.py's counter)."""
    import torch
    from train_step import BenchConfig, batch, count_flops, make_case

    cfg, dev = BenchConfig("ocim", size.backbone, size.input_size, inner_loops=size.inner_loops), torch.device(device)
    batches = {"S0": [batch(cfg, "S0", dev)], "S1": [batch(cfg, "S1", dev)],
               "T": [batch(cfg, "T", dev) for _ in range(size.inner_loops)]}
    return count_flops(make_case(cfg, "plain", "fp32", "alternating", dev, batches).step)


def measure(args: argparse.Namespace, size: Size, save: Any) -> dict[str, Any]:
    """Training, then preprocessing (``args.parts``); ``save(report)`` after each, so that a run
    stopped by its time limit still leaves what it measured."""
    report: dict[str, Any] = {"environment": environment(args.device), "size": size.__dict__, "levers": {}}
    cpus = os.cpu_count() or 1
    if "train" in args.parts:
        measure_training(args, size, report, cpus)
        save(report)
    if "preprocess" in args.parts:
        with tempfile.TemporaryDirectory(prefix="ocim-pre-") as tmp:
            report["preprocessing"] = preprocessing(Path(tmp), size, args.workers or cpus, args.device)
            report["ocim_preprocess_minutes"] = report["preprocessing"]["ocim_preprocess_minutes"]
        save(report)
    return report


def measure_training(args: argparse.Namespace, size: Size, report: dict[str, Any], cpus: int) -> None:
    import torch
    from train_step import mfu_peak

    with tempfile.TemporaryDirectory(prefix="ocim-gpu-") as tmp:
        root = Path(tmp)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
        write_workspace(root, size)
        base = paper_overrides(size, args.device)
        files = {name: write_params(root, name, {**base, **changes}) for name, changes in LEVERS.items()}
        if args.device != "cuda":  # CPU: no CUDA graph; the graph logic is tested by tests/test_cuda_graph.py
            files.pop("cuda-graph")

        def job(lever: str, k: int, protocol: str, threads: int | None) -> dict[str, Any]:
            return {"root": str(root), "params": str(files[lever]), "protocol": protocol, "out": f"models/{lever}-{k}",
                    "warmup": size.warmup, "iters": size.iters, "threads": threads}

        flops = flops_per_iteration(size, args.device)
        kind, peak = mfu_peak("fp32", torch.device(args.device), None)
        report["flops_per_iteration"] = flops
        report["mfu_peak"] = {"kind": kind, "tflops": peak}
        for lever in files:
            (res,) = run_workers(root, [job(lever, 0, "OCI-M", None)])
            res["mfu"] = flops / res["seconds_per_iteration"] / 1e12 / peak if peak else None
            report["levers"][lever] = res
            print(f"{lever}: {res['seconds_per_iteration']:.4f} s/iteration", flush=True)
        best = min(report["levers"], key=lambda k: report["levers"][k]["seconds_per_iteration"])
        report["best_lever"] = best
        for n in args.concurrent:
            results = run_workers(root, [job(best, k + 1, list(PROTOCOLS)[k % 4], max(1, cpus // n))
                                         for k in range(n)])
            worst = max(r["seconds_per_iteration"] for r in results)
            report["levers"][f"{n} at once ({best})"] = {"seconds_per_iteration": worst, "runs": results,
                                                         "at_once": n, "mfu": n * flops / worst / 1e12 / peak
                                                         if peak else None}
            print(f"{n} at once: {worst:.4f} s/iteration each", flush=True)

        report["evaluation"] = evaluation_rates(root, files[best], args.device)
        report["checkpoint_write_s"] = checkpoint_write_s(report["levers"][best]["last_pt"])
        single = report["levers"][best]["seconds_per_iteration"]
        ev = report["evaluation"]
        if ev["faces_per_s_batch256"] > ev["faces_per_s_batch32"]:  # a lever of its own: score.batch_size 256
            report["levers"][f"{best} + score.batch_size 256"] = {**report["levers"][best], "score_batch_size": 256}
        options = {}
        for name, res in report["levers"].items():
            n = res.get("at_once", 1)
            runs = res.get("runs", [res])
            startup = max(r["wall_s"] - (size.warmup + size.iters) * r["seconds_per_iteration"] for r in runs)
            per = project(res["seconds_per_iteration"], ev[f"faces_per_s_batch{res.get('score_batch_size', 32)}"],
                          ev["cold_faces_per_s"], report["checkpoint_write_s"],
                          slowdown=res["seconds_per_iteration"] / single if n > 1 else 1, startup_s=max(0.0, startup))
            res["protocol_hours"] = per
            res["ocim_table_hours"] = options[name] = table_hours(per, n)
        report["ocim_table_option"] = min(options, key=options.get)
        report["ocim_table_hours"] = options[report["ocim_table_option"]]


def markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    lines = [f"OCIM table at the paper preset on {env['device_name']} ({env['cpus']} CPU cores), torch {env['torch']}",
             ""]
    if "ocim_table_hours" in report:
        lines += ["| lever | s/iteration | MFU | projected hours, OCIM table |", "|---|---|---|---|"]
        for name, res in report["levers"].items():
            mfu = f"{res['mfu']:.1%}" if res.get("mfu") else "-"
            lines.append(f"| {name} | {res['seconds_per_iteration']:.4f} | {mfu} | {res['ocim_table_hours']:.2f} |")
        lines += ["", f"ocim_table_hours: {report['ocim_table_hours']:.2f} ({report['ocim_table_option']})"]
    if "ocim_preprocess_minutes" in report:
        pre = report["preprocessing"]
        per_device = ", ".join(f"align on {d}: {pre[f'ocim_minutes_align_{d}']:.1f}"
                               for d in ("cpu", "cuda") if f"ocim_minutes_align_{d}" in pre)
        lines += [f"ocim_preprocess_minutes: {report['ocim_preprocess_minutes']:.1f} "
                  f"({pre['workers']} workers; {per_device})"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--tiny", action="store_true", help="resnet18 at 64 px, a few iterations, short videos")
    ap.add_argument("--concurrent", type=lambda s: [int(v) for v in s.split(",") if v], default=None,
                    help="runs at once to try, comma-separated (default 2,4; tiny: 2)")
    ap.add_argument("--parts", default="train,preprocess", help="train and/or preprocess (default both)")
    ap.add_argument("--workers", type=int, help="extract and align processes (default: the CPU count)")
    ap.add_argument("--out", type=Path, help="results folder (default $OUT, else bench/out/ocim_gpu)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)  # internal: one training run, JSON job
    args = ap.parse_args(argv)
    if args.worker:
        job = json.loads(args.worker)
        print(json.dumps(train_worker(Path(job["root"]), Path(job["params"]), job["protocol"], job["out"],
                                      job["warmup"], job["iters"], job["threads"])))
        return 0
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("ocim_gpu: --device cuda, but torch sees no CUDA device; use --device cpu --tiny for the self-test",
              file=sys.stderr)
        return 2
    size = TINY if args.tiny else PAPER
    args.concurrent = args.concurrent or ([2] if args.tiny else [2, 4])
    out_dir = args.out or (Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "bench" / "out" / "ocim_gpu")
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    (out_dir / "commands.txt").write_text(f"python bench/ocim_gpu.py {shlex.join(sys.argv[1:])}\n")

    def save(report: dict[str, Any]) -> None:
        report.update(wall_s=time.perf_counter() - t0, command=shlex.join([sys.executable, *sys.argv]))
        (out_dir / "ocim_gpu.json").write_text(json.dumps(report, indent=2) + "\n")
        (out_dir / "ocim_gpu.md").write_text(markdown(report))

    report = measure(args, size, save)
    print(markdown(report), flush=True)
    print(f"wall {report['wall_s']:.0f} s; results in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
