"""Throughput of one HFN+MP training iteration on synthetic tensors.

Reports meta-iterations/s, images/s (forward+backward images per second: K meta-test
batches + the meta-train batches), achieved TFLOP/s (counted with
torch.utils.flop_counter over one iteration) and peak memory, for

* demo:  resnet18, 128 px, 4+4 per domain, K=4 (params.yaml defaults)
* paper: resnet50, 256 px, 4+4 per domain, K=4 (the official setting)

On CUDA each config runs twice in the same process: fp32 (NCHW) and bf16 autocast +
channels_last, and model FLOPs utilisation (MFU) against the card's dense peak.
CPU peak memory is the process's max RSS, so configs run smallest first.

    python bench/train_step.py                       # both configs, defaults per device
    python bench/train_step.py --configs demo --iters 10 --json bench.json
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import resource
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

from mpfas.config import ModelConfig, TrainConfig
from mpfas.models import build_model
from mpfas.training.data import DomainBatch
from mpfas.training.step import Optimisers, meta_iteration


@dataclass(frozen=True)
class BenchConfig:
    name: str
    backbone: str
    input_size: int
    batch_live: int = 4
    batch_spoof: int = 4
    inner_loops: int = 4
    meta_train_domains: int = 2


CONFIGS = {
    "demo": BenchConfig("demo", "resnet18", 128),
    "paper": BenchConfig("paper", "resnet50", 256),
}

# Dense peak TFLOP/s (no sparsity) by precision, for MFU; the first key contained in the
# device name wins, so the PCIe/NVL variants come before their SXM names. fp32 is the
# non-tensor-core FP32 rate; tf32 the tensor-core rate that cuDNN convolutions use by default
# in "fp32" (torch.backends.cudnn.allow_tf32). Sources: NVIDIA's datasheets, which quote the
# tensor-core rates with 2:4 sparsity (halved here): H100 Tensor Core GPU datasheet (SXM, PCIe,
# NVL columns), H200 Tensor Core GPU product brief (SXM and NVL), A100 datasheet (SXM 80GB).
PEAK_TFLOPS = {
    "H100 PCIe": {"bf16": 756.0, "tf32": 378.0, "fp32": 51.0},
    "H100 NVL": {"bf16": 835.5, "tf32": 417.5, "fp32": 60.0},
    "H100": {"bf16": 989.0, "tf32": 494.5, "fp32": 67.0},  # SXM5
    "H200 NVL": {"bf16": 835.5, "tf32": 417.5, "fp32": 60.0},
    "H200": {"bf16": 989.0, "tf32": 494.5, "fp32": 67.0},  # SXM
    "A100": {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5},
}


def peak_tflops(precision: str, override: float | None) -> float | None:
    """The current card's dense peak for ``precision`` (a PEAK_TFLOPS column), or None."""
    if override:
        return override
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    for key, peaks in PEAK_TFLOPS.items():
        if key in name:
            return peaks[precision]
    return None


def batch(cfg: BenchConfig, domain: str, device: torch.device, channels_last: bool) -> DomainBatch:
    n = cfg.batch_live + cfg.batch_spoof
    rgb = torch.rand(n, 3, cfg.input_size, cfg.input_size, device=device)
    if channels_last:
        rgb = rgb.contiguous(memory_format=torch.channels_last)
    is_live = torch.tensor([1] * cfg.batch_live + [0] * cfg.batch_spoof, device=device)
    return DomainBatch(domain, rgb, is_live)


def make_optimizers(model: torch.nn.Module, meta_lr: float, inner_loops: int,
                    momentum: float = 0.9) -> tuple[torch.optim.SGD, torch.optim.SGD]:
    """(MP, HFN) SGD optimisers as the training loop builds them: MP lr = meta_lr x K."""
    mp_opt = torch.optim.SGD(model.pattern_parameters(), lr=meta_lr * inner_loops, momentum=momentum)
    hfn_opt = torch.optim.SGD(model.hfn_parameters(), lr=meta_lr, momentum=momentum)
    return mp_opt, hfn_opt


def mfu_peak(precision: str, device: torch.device, override: float | None) -> tuple[str | None, float | None]:
    """The peak the run can reach: bf16, or tf32 where cuDNN may use it for fp32 convolutions
    (PyTorch's default), else fp32."""
    if device.type != "cuda":
        return None, None
    kind = "bf16" if precision == "bf16" else ("tf32" if torch.backends.cudnn.allow_tf32 else "fp32")
    return kind, peak_tflops(kind, override)


def sync(device: torch.device) -> None:
    """Wait for queued CUDA work, so wall-clock timings cover it."""
    if device.type == "cuda":
        torch.cuda.synchronize()


def count_flops(step: Callable[[], object]) -> int:
    """Run ``step`` once under torch's FLOP counter and return its FLOPs."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return counter.get_total_flops()


def timed(step: Callable[[], object], iters: int, device: torch.device) -> tuple[float, float]:
    """(wall seconds, CPU seconds of all threads) per call of ``step``, over ``iters`` calls."""
    sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(iters):
        step()
    sync(device)
    return (time.perf_counter() - t0) / iters, (time.process_time() - c0) / iters


def run(cfg: BenchConfig, device: torch.device, bf16: bool, iters: int, warmup: int, algorithm: str,
        peak_override: float | None) -> dict:
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(ModelConfig(backbone=cfg.backbone, input_size=cfg.input_size)).to(device)
    channels_last = bf16 and device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    mp_opt, hfn_opt = make_optimizers(model, meta_lr=1e-3, inner_loops=cfg.inner_loops)
    n_test = cfg.inner_loops if algorithm == "alternating" else 1
    # the batches are made once, outside the timing: each iteration draws the same ones
    # (meta-test "T" last, as the training loop's shuffled domain list ends)
    domains = [f"S{i}" for i in range(cfg.meta_train_domains)] + ["T"]
    pools = {"T": itertools.cycle([batch(cfg, "T", device, channels_last) for _ in range(n_test)])}
    pools.update({d: itertools.repeat(batch(cfg, d, device, channels_last)) for d in domains[:-1]})
    images = (n_test + cfg.meta_train_domains) * (cfg.batch_live + cfg.batch_spoof)
    train_cfg = TrainConfig(algorithm=algorithm, inner_loops=cfg.inner_loops, first_order=False,
                            precision="bf16" if bf16 else "fp32")

    def step() -> None:  # the training loop's own iteration
        meta_iteration(model, Optimisers(mp_opt, hfn_opt), lambda d: next(pools[d]), domains, train_cfg, device)

    flops = count_flops(step)  # also the first warm-up iteration
    for _ in range(max(0, warmup - 1)):
        step()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds, cpu_seconds = timed(step, iters, device)
    achieved = flops / seconds / 1e12
    precision = "bf16" if bf16 and device.type == "cuda" else "fp32"
    peak_kind, peak = mfu_peak(precision, device, peak_override)
    result = {
        "config": cfg.name, "backbone": cfg.backbone, "input_size": cfg.input_size,
        "batch_per_domain": f"{cfg.batch_live}+{cfg.batch_spoof}", "inner_loops": cfg.inner_loops,
        "algorithm": algorithm, "device": device.type, "precision": precision,
        "channels_last": channels_last, "iters": iters,
        "seconds_per_iteration": round(seconds, 4),
        "iterations_per_second": round(1 / seconds, 4),
        # CPU time of all threads per iteration: divided by the thread count, the wall time
        # on an otherwise idle machine (wall time above includes waiting for other work)
        "cpu_seconds_per_iteration": round(cpu_seconds, 4),
        "images_per_second": round(images / seconds, 2),
        "images_per_iteration": images,
        "tflop_per_iteration": round(flops / 1e12, 4),
        "achieved_tflops": round(achieved, 4),
        "mfu": round(achieved / peak, 4) if peak else None,
        "mfu_peak": f"{peak_kind} {peak}" if peak else None,
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
    }
    if device.type == "cuda":
        result["peak_cuda_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
        result["gpu"] = torch.cuda.get_device_name()
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=["demo", "paper"], choices=sorted(CONFIGS))
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--algorithm", default="alternating", choices=["alternating", "bilevel"])
    ap.add_argument("--iters", type=int, help="timed iterations (default: 10 on CUDA; 3 demo / 1 paper on CPU)")
    ap.add_argument("--warmup", type=int, help="warm-up iterations, the first one counts FLOPs (default 3 / 1)")
    ap.add_argument("--input-size", type=int, help="override every config's input size (what-if)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--peak-tflops", type=float, help="override the card's dense peak TFLOP/s for MFU")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    results = []
    for name in args.configs:
        cfg = CONFIGS[name]
        if args.input_size:
            cfg = dataclasses.replace(cfg, name=f"{name}@{args.input_size}px", input_size=args.input_size)
        cpu_iters = 3 if name == "demo" else 1
        iters = args.iters or (10 if device.type == "cuda" else cpu_iters)
        warmup = args.warmup if args.warmup is not None else (3 if device.type == "cuda" else 1)
        for bf16 in ([False, True] if device.type == "cuda" else [False]):
            res = run(cfg, device, bf16, iters, warmup, args.algorithm, args.peak_tflops)
            results.append(res)
            print(json.dumps(res), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
