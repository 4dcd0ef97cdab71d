"""Throughput of one HFN+MP training iteration on synthetic tensors.

Reports meta-iterations/s, images/s (forward+backward images per second: K meta-test
batches + the meta-train batches), achieved TFLOP/s (counted with
torch.utils.flop_counter over one iteration), the share of wall time spent outside the
model's forward, the backward passes and the optimiser steps, and peak memory, for

* demo:  efficientnet_lite0, 128 px, 4+4 per domain, K=2 (params.yaml defaults)
* paper: resnet50, 256 px, 4+4 per domain, K=4 (the official setting)

``--variant`` picks the step's execution settings (``mpfas.train.execution``): ``plain``
is NCHW on CPU (``channels_last: auto``: channels_last on CUDA only), ``optimised``
is OPTIMISED below, ``both`` runs the two interleaved in one process (A, B, A, B, ... so that
load from other jobs hits both alike) from the same weights on the same batches and prints
the speed-up and how far their losses and weights ended apart.

On CUDA each config also runs in bf16 autocast (channels_last), and model FLOPs utilisation
(MFU) against the card's dense peak. CPU peak memory is the process's max RSS, so configs
run smallest first (with ``both``, the two variants' models share the process).

    python bench/train_step.py                       # both configs, defaults per device
    python bench/train_step.py --configs paper --variant both --warmup 2 --iters 3
    python bench/train_step.py --configs demo --iters 10 --json bench.json
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import resource
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mpfas.core.config import ModelConfig, TrainConfig, load_params
from mpfas.methods.hfn_mp.step import Optimisers, meta_iteration
from mpfas.models import build_model
from mpfas.train.data import DomainBatch
from mpfas.train.execution import channels_last, prepare_model

ROOT = Path(__file__).resolve().parents[1]


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
    "demo": BenchConfig("demo", "efficientnet_lite0", 128, inner_loops=2),
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


def batch(cfg: BenchConfig, domain: str, device: torch.device) -> DomainBatch:
    """A domain batch in NCHW; ``meta_iteration`` gives it the model's memory format, as in training."""
    n = cfg.batch_live + cfg.batch_spoof
    rgb = torch.rand(n, 3, cfg.input_size, cfg.input_size, device=device)
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


PLAIN: dict[str, object] = {"channels_last": "auto"}
OPTIMISED: dict[str, object] = {"channels_last": True}
"""What ``--variant optimised`` sets in the train section (``mpfas.train.execution``);
the README's bench table says what each candidate gave."""


@dataclass
class PhaseTimes:
    """Wall seconds inside the model's forward, the backward passes and the optimiser steps,
    summed over the iterations during which ``active`` is set."""

    forward: float = 0.0
    backward: float = 0.0
    optimizer: float = 0.0
    active: bool = False

    def inside(self) -> float:
        return self.forward + self.backward + self.optimizer


@contextmanager
def phase_timers(model: torch.nn.Module, optimisers: Sequence[torch.optim.Optimizer], device: torch.device,
                 times: PhaseTimes) -> Iterator[None]:
    """Add each phase's wall time to ``times``: module hooks around the model's forward,
    optimiser hooks around ``step``, and a wrapper around ``Tensor.backward`` and
    ``torch.autograd.grad`` (what the alternating and bilevel steps call), restored on exit.
    On CUDA every boundary synchronises, so time these iterations apart from the timed ones."""
    starts: dict[str, float] = {}

    def begin(phase: str) -> None:
        if times.active:
            sync(device)
            starts[phase] = time.perf_counter()

    def end(phase: str) -> None:
        if times.active and phase in starts:
            sync(device)
            setattr(times, phase, getattr(times, phase) + time.perf_counter() - starts.pop(phase))

    def wrap(fn: Callable[..., object]) -> Callable[..., object]:
        def timed_call(*args: object, **kwargs: object) -> object:
            begin("backward")
            try:
                return fn(*args, **kwargs)
            finally:
                end("backward")
        return timed_call

    handles = [model.register_forward_pre_hook(lambda *_: begin("forward")),
               model.register_forward_hook(lambda *_: end("forward"))]
    for opt in optimisers:
        handles += [opt.register_step_pre_hook(lambda *_: begin("optimizer")),
                    opt.register_step_post_hook(lambda *_: end("optimizer"))]
    backward, grad = torch.Tensor.backward, torch.autograd.grad
    torch.Tensor.backward, torch.autograd.grad = wrap(backward), wrap(grad)
    try:
        yield
    finally:
        torch.Tensor.backward, torch.autograd.grad = backward, grad
        for handle in handles:
            handle.remove()


@dataclass
class Case:
    """One variant at one precision: its model, optimisers, step and measurements."""

    variant: str
    precision: str
    train_cfg: TrainConfig
    model: torch.nn.Module
    optimisers: Optimisers
    step: Callable[[], dict[str, float]]
    times: PhaseTimes = field(default_factory=PhaseTimes)
    warmup_seconds: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    stats: dict[str, float] = field(default_factory=dict)


def make_case(cfg: BenchConfig, variant: str, precision: str, algorithm: str, device: torch.device,
              batches: dict[str, list[DomainBatch]]) -> Case:
    """The training loop's model, optimisers and iteration for ``variant``, from seed 0's
    weights, drawing ``batches`` in the same order as every other case."""
    train_cfg = dataclasses.replace(load_params(ROOT / "params.yaml").train, algorithm=algorithm,
                                    inner_loops=cfg.inner_loops, first_order=False, precision=precision,
                                    **(OPTIMISED if variant == "optimised" else PLAIN))
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(ModelConfig(method="hfn_mp", backbone=cfg.backbone, input_size=cfg.input_size,
                                        pattern="meta", pretrained="random", channel_order="rgb",
                                        pyramid_init="official")).to(device)
    model = prepare_model(model, train_cfg, device)
    model.train()
    opt = Optimisers(*make_optimizers(model, meta_lr=1e-3, inner_loops=cfg.inner_loops))
    pools = {d: itertools.cycle(b) for d, b in batches.items()}
    domains = list(batches)  # meta-test "T" last, as the training loop's shuffled domain list ends

    def step() -> dict[str, float]:  # the training loop's own iteration
        return meta_iteration(model, opt, lambda d: next(pools[d]), domains, train_cfg, device)

    return Case(variant, precision, train_cfg, model, opt, step)


def run(cfg: BenchConfig, device: torch.device, variants: Sequence[str], iters: int, warmup: int,
        algorithm: str, peak_override: float | None) -> list[dict]:
    """Time ``variants`` (at fp32, and bf16 on CUDA) interleaved: every warm-up and timed
    iteration runs each case once, in turn. Returns one result per case, then (two variants)
    their comparison."""
    torch.manual_seed(0)
    n_test = cfg.inner_loops if algorithm == "alternating" else 1
    # made once, outside the timing: each iteration draws the same ones
    batches = {f"S{i}": [batch(cfg, f"S{i}", device)] for i in range(cfg.meta_train_domains)}
    batches["T"] = [batch(cfg, "T", device) for _ in range(n_test)]
    images = (n_test + cfg.meta_train_domains) * (cfg.batch_live + cfg.batch_spoof)
    precisions = ["fp32", "bf16"] if device.type == "cuda" else ["fp32"]
    cases = [make_case(cfg, v, p, algorithm, device, batches) for p in precisions for v in variants]
    flops: dict[str, int] = {}
    for i in range(warmup):
        for case in cases:
            t0 = time.perf_counter()
            if i == 0 and case.precision not in flops:
                flops[case.precision] = count_flops(case.step)
            else:
                case.step()
            sync(device)
            case.warmup_seconds.append(time.perf_counter() - t0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    stack = ExitStack()
    for case in cases:
        stack.enter_context(phase_timers(case.model, [o for o in (case.optimisers.mp, case.optimisers.hfn) if o],
                                         device, case.times))
    with stack:
        for _ in range(iters):
            for case in cases:
                case.times.active = device.type == "cpu"  # CUDA: phases in an iteration of their own
                sync(device)
                t0, c0 = time.perf_counter(), time.process_time()
                case.stats = case.step()
                sync(device)
                case.wall.append(time.perf_counter() - t0)
                case.cpu.append(time.process_time() - c0)
                case.times.active = False
        phase_wall = {}
        for case in cases:
            if device.type == "cuda":
                case.times.active = True
                phase_wall[id(case)], _ = timed(case.step, 1, device)
                case.times.active = False
            else:
                phase_wall[id(case)] = sum(case.wall)
    results = [result(case, cfg, device, images, flops.get(case.precision), phase_wall[id(case)], algorithm,
                      peak_override) for case in cases]
    for precision in precisions:
        pair = [c for c in cases if c.precision == precision]
        if len(pair) == 2:
            results.append(compare(*pair))
    return results


def result(case: Case, cfg: BenchConfig, device: torch.device, images: int, flops: int | None,
           phase_wall: float, algorithm: str, peak_override: float | None) -> dict:
    seconds, cpu_seconds = statistics.mean(case.wall), statistics.mean(case.cpu)
    achieved = flops / seconds / 1e12 if flops else None
    peak_kind, peak = mfu_peak(case.precision, device, peak_override)
    out = {
        "config": cfg.name, "variant": case.variant, "backbone": cfg.backbone, "input_size": cfg.input_size,
        "batch_per_domain": f"{cfg.batch_live}+{cfg.batch_spoof}", "inner_loops": cfg.inner_loops,
        "algorithm": algorithm, "device": device.type, "precision": case.precision,
        "channels_last": channels_last(case.train_cfg, device),
        "threads": torch.get_num_threads(), "iters": len(case.wall),
        "seconds_per_iteration": round(seconds, 4),
        "iterations_per_second": round(1 / seconds, 4),
        # CPU time of all threads per iteration: divided by the thread count, the wall time
        # on an otherwise idle machine (wall time above includes waiting for other work)
        "cpu_seconds_per_iteration": round(cpu_seconds, 4),
        # the first of the first variant includes counting FLOPs
        "warmup_seconds": [round(s, 2) for s in case.warmup_seconds],
        "images_per_second": round(images / seconds, 2),
        "images_per_iteration": images,
        "tflop_per_iteration": round(flops / 1e12, 4) if flops else None,
        "achieved_tflops": round(achieved, 4) if achieved else None,
        "mfu": round(achieved / peak, 4) if peak and achieved else None,
        "mfu_peak": f"{peak_kind} {peak}" if peak else None,
        # wall time outside the model's forward, the backward passes and the optimiser steps:
        # batch moves and layout changes, losses, zero_grad, requires_grad toggles, Python
        "phase_seconds": {k: round(getattr(case.times, k), 3) for k in ("forward", "backward", "optimizer")},
        "share_outside_fwd_bwd_opt": round(1 - case.times.inside() / phase_wall, 4),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
    }
    if device.type == "cuda":
        out["peak_cuda_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
        out["gpu"] = torch.cuda.get_device_name()
    return out


def compare(plain: Case, optimised: Case) -> dict:
    """Speed-up of ``optimised`` over ``plain`` measured in the same run, and how far their
    weights and last losses are apart after the same iterations from the same start."""
    weights = dict(plain.model.named_parameters())
    diffs = [(p - weights[n]).abs().max().item() for n, p in optimised.model.named_parameters()]
    return {
        "compare": f"{optimised.variant} vs {plain.variant}", "precision": plain.precision,
        "speedup_wall": round(statistics.mean(plain.wall) / statistics.mean(optimised.wall), 3),
        "speedup_cpu": round(statistics.mean(plain.cpu) / statistics.mean(optimised.cpu), 3),
        "iterations_run": len(plain.wall) + len(plain.warmup_seconds),
        "last_losses": {k: [plain.stats[k], optimised.stats[k]] for k in plain.stats},
        "max_abs_weight_diff": max(diffs),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=["demo", "paper"], choices=sorted(CONFIGS))
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--algorithm", default="alternating", choices=["alternating", "bilevel"])
    ap.add_argument("--variant", default="plain", choices=["plain", "optimised", "both"],
                    help="execution settings: params.yaml's defaults, OPTIMISED, or both interleaved")
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
    variants = ["plain", "optimised"] if args.variant == "both" else [args.variant]
    results = []
    for name in args.configs:
        cfg = CONFIGS[name]
        if args.input_size:
            cfg = dataclasses.replace(cfg, name=f"{name}@{args.input_size}px", input_size=args.input_size)
        cpu_iters = 3 if name == "demo" else 1
        iters = args.iters or (10 if device.type == "cuda" else cpu_iters)
        warmup = args.warmup if args.warmup is not None else (3 if device.type == "cuda" else 1)
        for res in run(cfg, device, variants, iters, max(1, warmup), args.algorithm, args.peak_tflops):
            results.append(res)
            print(json.dumps(res), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
