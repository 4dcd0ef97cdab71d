"""Prepared GPU check: the paper-configuration HFN+MP model, trained and scored in fp32 and bf16.

    python bench/gpu_check.py                        # on one CUDA GPU, a few minutes in all
    python bench/gpu_check.py --device cpu --tiny    # the same code path in seconds (self-test)

1. Builds the paper configuration (ResNet-50, 256 px, Meta Pattern, BGR input, official
   pyramid init) from random backbones on purpose, or from ``--pretrained FILE``.
2. Runs warm-up + timed iterations of the official alternating step (K=4, 4 live + 4 spoof
   per domain, SGD as the training loop builds it) in fp32 and in bf16, from the same
   initial weights on the same batches of demo faces; reports s/iteration, images/s, TFLOP/s,
   MFU, peak memory and both loss trajectories.
3. Scores the same faces (rendered from the demo's face photos: live portraits and their
   halftone prints) with the fp32-trained weights in fp32 and in bf16, as
   ``mpfas.models.inference.score_frames`` does, and compares the scores; compares the weights of
   the two training runs.
4. Runs the evaluation metrics on both score vectors and times scoring (faces/s).
5. Trains a third time in fp32 with the step replayed from one CUDA graph (``train.cuda_graph``;
   on CPU the eager stand-in of tests/test_cuda_graph.py), from the same weights on the same
   batches, and holds it to the fp32 run by the same loss and score bounds (``graph`` in the JSON).
6. Prints a table, writes JSON (``$OUT/gpu_check.json``, else ``bench/out/gpu_check.json``)
   and a PASS/FAIL verdict against ``Bounds``. Exit status 0 PASS, 1 FAIL, 2 unusable device.

Like the training loop, CUDA runs use channels_last in both precisions and leave
``cudnn.benchmark`` and TF32 convolutions at PyTorch's defaults (``--strict-fp32`` turns TF32
off). On CPU, bf16 autocast is a no-op in this codebase (``mpfas.models.inference.autocast``), so
the "bf16" run is fp32 and every agreement is exact: the CPU mode tests the code, not bf16.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from train_step import BenchConfig, count_flops, make_optimizers, mfu_peak, sync, timed

from mpfas.core import metrics
from mpfas.core.config import ModelConfig
from mpfas.methods.hfn_mp.algorithms import alternating_step
from mpfas.methods.hfn_mp.graph import CudaGraph, Eager, GraphedStep
from mpfas.models import build_model
from mpfas.models.inference import score_batch
from mpfas.train.data import DomainBatch
from mpfas.train.rng import seed_everything

PRECISIONS = ("fp32", "bf16")
GRAPH = "fp32-cuda-graph"  # report.train's key of the fp32 run replayed from one CUDA graph
PAPER = BenchConfig("paper", "resnet50", 256)
TINY = BenchConfig("tiny", "resnet18", 64, batch_live=1, batch_spoof=1, inner_loops=2)
CPU_NOTE = ("CPU: bf16 autocast is a no-op in this codebase, so the bf16 run is fp32 and the "
            "comparison is exact by construction; it tests the code path, not bf16")

TRAIN_POOL = 64  # training faces (32 portraits + their prints); the scored faces are others
Batches = list[tuple[list[DomainBatch], list[DomainBatch]]]
State = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Bounds:
    """What PASS means. Scores are in [0, 1]; bf16 keeps 8 significant bits (rounding ~2**-9 =
    0.2 % relative), so rounding through ~50 layers moves a score by ~1e-3."""

    # an order of magnitude above rounding drift, small next to a trained model's live/attack gap
    score_mean_abs: float = 0.02
    score_max_abs: float = 0.05
    # AUC/EER/HTER depend on the order of the scores only; 0.99 lets a few near-ties swap
    spearman: float = 0.99
    # at most 1 decision in 100 may change at the threshold
    flip_fraction: float = 0.01
    # Ranks and flips are judged only where the fp32 scores vary well beyond bf16 rounding: with
    # a score std of 0.01, noise of ~1e-3 still leaves Spearman ~0.995 (normal scores). A randomly
    # initialised model scores every face within ~1e-3 of one value; ordering such near-ties is
    # noise in either precision, so there they are reported, not judged
    min_score_std: float = 0.01
    # Training in bf16 is judged by where it ends, not step by step: on the same batches the
    # two runs drift apart like any chaotic trajectory (first GPU run, 63 steps of ResNet-50
    # from random init: per-step loss gap 0.023 within 13 steps, 0.053 by the end, while both
    # reached held-out AUC 1.0). Mean loss over the last ``final_steps`` steps may differ by
    # this fraction of the fp32 value (that run: 4 %) ...
    final_loss_rel: float = 0.10
    final_steps: int = 10
    # ... and the bf16-trained model, scored in bf16, may lose this much held-out AUC against
    # the fp32-trained one scored in fp32 (judged where the fp32 scores spread, as above)
    auc_drop: float = 0.02


@dataclass(frozen=True)
class CheckConfig:
    device: str = "cuda"
    bench: BenchConfig = PAPER
    pretrained: str = ModelConfig.RANDOM
    meta_lr: float = 1e-3  # params.yaml train.meta_lr: MP lr = meta_lr x K, HFN lr = meta_lr
    momentum: float = 0.9
    warmup: int = 3  # the first warm-up step also counts the FLOPs
    iters: int = 60
    faces: int = 256
    score_batch: int = 32
    threshold: float = 0.5
    seed: int = 0
    strict_fp32: bool = False
    peak_tflops: float | None = None

    def model_config(self) -> ModelConfig:
        return ModelConfig(method="hfn_mp", backbone=self.bench.backbone, input_size=self.bench.input_size,
                           pattern="meta", pretrained=self.pretrained, channel_order="bgr", pyramid_init="official")

    @property
    def images_per_iteration(self) -> int:
        b = self.bench
        return (b.inner_loops + b.meta_train_domains) * (b.batch_live + b.batch_spoof)


@dataclass
class TrainRun:
    precision: str
    seconds_per_iteration: float
    images_per_second: float
    tflop_per_iteration: float
    achieved_tflops: float
    peak_kind: str | None  # which PEAK_TFLOPS column MFU is against (tf32 when cuDNN may use it)
    peak_tflops: float | None
    mfu: float | None
    peak_memory_gib: float | None  # torch.cuda.max_memory_allocated over the timed iterations
    losses: list[dict[str, float]]  # every step, warm-up included


@dataclass
class ScoreRun:
    precision: str
    faces_per_second: float
    output_dtype: str  # dtype of the model's logits: shows whether bf16 autocast was active
    peak_memory_gib: float | None
    metrics_seconds: float
    metrics: dict[str, float | str]


@dataclass
class Agreement:
    score_mean_abs: float
    score_max_abs: float
    score_std_fp32: float
    spearman: float | None
    kendall: float | None
    flip_fraction: float
    final_loss_rel: float  # |mean last-steps loss bf16 - fp32| / fp32, meta-test and meta-train
    auc_fp32: float | None  # fp32-trained, fp32-scored
    auc_bf16_trained: float | None  # bf16-trained, bf16-scored
    # informational: how far the two trajectories drifted
    weights_rel_l2: float
    update_rel_l2: float | None  # ||w_bf16 - w_fp32|| / ||w_fp32 - w_init||
    loss_max_abs: float
    # bf16-trained + bf16-scored against fp32-trained + fp32-scored, informational
    end_to_end: dict[str, float | None] = field(default_factory=dict)


@dataclass
class Check:
    name: str
    value: float | str | None
    bound: str
    status: str  # pass | fail | not judged
    note: str = ""


@dataclass
class Report:
    environment: dict[str, Any]
    config: dict[str, Any]
    bounds: dict[str, float]
    train: dict[str, TrainRun] = field(default_factory=dict)
    score: dict[str, ScoreRun] = field(default_factory=dict)
    agreement: Agreement | None = None
    graph: dict[str, Any] | None = None  # the CUDA-graph fp32 run against the plain fp32 run
    checks: list[Check] = field(default_factory=list)
    verdict: str = "FAIL"
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    phase: str = "start"
    phase_seconds: dict[str, float] = field(default_factory=dict)
    wall_seconds: float = 0.0

    def enter(self, phase: str) -> None:
        """Start ``phase`` (named in an OOM report), closing the previous one's timing."""
        now = time.perf_counter()
        if self.phase != "start":
            self.phase_seconds[self.phase] = now - self._since
        self.phase, self._since = phase, now


# ---------------------------------------------------------------- inputs


def make_batches(cfg: CheckConfig, device: torch.device) -> Batches:
    """(meta-train, meta-test) batches for every step, shared by both precisions: live portraits
    and their halftone prints (``demo_faces`` with another seed than the scored faces), so the
    model learns to tell them apart and its scores spread enough for the rank checks to count."""
    b, channels_last = cfg.bench, device.type == "cuda"  # channels_last as the training loop
    pool, labels = demo_faces(TRAIN_POOL, b.input_size, cfg.seed + 1)
    live, spoof = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    rng = np.random.default_rng(cfg.seed)

    def domain_batch(name: str) -> DomainBatch:
        pick = np.concatenate([rng.choice(live, b.batch_live, replace=False),
                               rng.choice(spoof, b.batch_spoof, replace=False)])
        rgb = pool[torch.from_numpy(pick)].to(device)
        if channels_last:
            rgb = rgb.contiguous(memory_format=torch.channels_last)
        return DomainBatch(name, rgb, torch.from_numpy(labels[pick]).to(device))

    return [([domain_batch(f"S{d}") for d in range(b.meta_train_domains)],
             [domain_batch("T") for _ in range(b.inner_loops)])
            for _ in range(cfg.warmup + cfg.iters)]


def demo_faces(n: int, size: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """``n`` faces in [0, 1] from the demo's face photos, and labels: even = a live portrait on
    a random background, odd = the same crop as a halftone print. Real photos, not noise,
    so the scores differ from face to face."""
    import cv2

    from mpfas.demo.attacks import PRINTERS, halftone
    from mpfas.demo.faces import identity_pool, make_portrait

    pool, printers = identity_pool(), list(PRINTERS.values())
    rng = np.random.default_rng(seed)
    faces = []
    for k in range((n + 1) // 2):
        portrait = make_portrait(pool[k % len(pool)], seed=seed + k // len(pool))
        alpha = portrait.alpha[..., None]
        rgb = portrait.rgb * alpha + rng.uniform(0.2, 0.8, 3).astype(np.float32) * (1 - alpha)
        live = rgb[32:232, 20:220]  # 200 x 200 around the face centre
        for crop in (live, halftone(live, printers[k % len(printers)])):
            faces.append(cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=cv2.INTER_AREA))
    rgb = torch.from_numpy(np.clip(np.stack(faces[:n]), 0, 1)).permute(0, 3, 1, 2).float().contiguous()
    return rgb, (1 - np.arange(n) % 2).astype(np.int64)


# ---------------------------------------------------------------- training


def cpu_state(model: torch.nn.Module) -> State:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def build(cfg: CheckConfig, device: torch.device) -> torch.nn.Module:
    hfn_log = logging.getLogger("mpfas.models.hfn")
    level = hfn_log.level
    with warnings.catch_warnings():  # random init is on purpose here (said in the report)
        warnings.simplefilter("ignore")
        hfn_log.setLevel(logging.ERROR)
        try:
            model = build_model(cfg.model_config()).to(device)
        finally:
            hfn_log.setLevel(level)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def peak_memory_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def train_run(model: torch.nn.Module, init: State, batches: Batches, cfg: CheckConfig,
              device: torch.device, precision: str, graph_flops: int | None = None) -> tuple[TrainRun, State]:
    """Warm-up + timed alternating steps from ``init``, one batch set per step. With
    ``graph_flops`` (the plain run's count) the steps replay one CUDA graph (``GraphedStep``),
    captured in the first warm-up step."""
    model.load_state_dict(init)
    model.train()
    mp_opt, hfn_opt = make_optimizers(model, cfg.meta_lr, cfg.bench.inner_loops, cfg.momentum)
    pending = iter(batches)
    losses: list[dict[str, float]] = []
    graphed = None
    if graph_flops is not None:
        backend = CudaGraph() if device.type == "cuda" else Eager()
        graphed = GraphedStep(model, mp_opt, hfn_opt, device, precision, backend)

    def step() -> None:
        meta_train, meta_test = next(pending)
        if graphed is not None:
            stats = graphed(meta_train, meta_test)
        else:
            stats = alternating_step(model, mp_opt, hfn_opt, meta_train, meta_test, device,
                                     precision=precision, sync=None)
        losses.append({k: stats[k] for k in ("meta_test_loss", "meta_train_loss")})

    if graph_flops is None:
        flops = count_flops(step)
    else:
        flops = graph_flops
        step()  # captures
    for _ in range(cfg.warmup - 1):
        step()
    sync(device)
    reset_peak_memory(device)
    seconds, _ = timed(step, cfg.iters, device)
    achieved = flops / seconds / 1e12
    kind, peak = mfu_peak(precision, device, cfg.peak_tflops)
    run = TrainRun(precision=precision, seconds_per_iteration=seconds,
                   images_per_second=cfg.images_per_iteration / seconds, tflop_per_iteration=flops / 1e12,
                   achieved_tflops=achieved, peak_kind=kind, peak_tflops=peak,
                   mfu=achieved / peak if peak else None, peak_memory_gib=peak_memory_gib(device),
                   losses=losses)
    return run, cpu_state(model)


# ---------------------------------------------------------------- scoring and evaluation


@torch.no_grad()
def score_faces(model: torch.nn.Module, faces: torch.Tensor, batch_size: int, device: torch.device,
                precision: str) -> tuple[np.ndarray, str]:
    """Frame scores as ``mpfas.models.inference.score_frames`` computes them (eval mode, forward in
    ``precision``, score in fp32), for faces already in memory; also the logits' dtype."""
    model.eval()
    scores, dtype = [], ""
    for start in range(0, len(faces), batch_size):
        batch_scores, out_dtype = score_batch(model, faces[start : start + batch_size], device, precision)
        dtype = str(out_dtype).removeprefix("torch.")
        scores.append(batch_scores)
    return np.concatenate(scores).astype(np.float64), dtype


def evaluate_scores(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float | str]:
    """The evaluate stage's metrics on one score vector (an error string if they are undefined)."""
    where = "gpu_check scores"
    try:
        eer, eer_threshold = metrics.eer(scores, labels, where)
        hter, hter_threshold = metrics.best_hter(scores, labels, where)
        at = metrics.error_rates(scores, labels, threshold, where)
        return {"auc": metrics.roc_auc(scores, labels, where), "eer": eer, "eer_threshold": eer_threshold,
                "best_hter": hter, "best_hter_threshold": hter_threshold,
                "far": at.far, "frr": at.frr, "hter": at.hter}
    except ValueError as exc:  # NaN scores after a diverged run
        return {"error": str(exc)}


def score_run(model: torch.nn.Module, state: State, faces: torch.Tensor, labels: np.ndarray,
              cfg: CheckConfig, device: torch.device, precision: str) -> tuple[ScoreRun, np.ndarray]:
    """Score ``faces`` with ``state`` in ``precision`` (timed after one warm-up batch), then
    the metrics."""
    model.load_state_dict(state)
    score_faces(model, faces[: cfg.score_batch], cfg.score_batch, device, precision)
    sync(device)
    reset_peak_memory(device)
    t0 = time.perf_counter()
    scores, dtype = score_faces(model, faces, cfg.score_batch, device, precision)
    seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    results = evaluate_scores(scores, labels, cfg.threshold)
    run = ScoreRun(precision=precision, faces_per_second=len(faces) / seconds, output_dtype=dtype,
                   peak_memory_gib=peak_memory_gib(device), metrics_seconds=time.perf_counter() - t1,
                   metrics=results)
    return run, scores


# ---------------------------------------------------------------- agreement and verdict


def rank_correlations(a: np.ndarray, b: np.ndarray) -> tuple[float | None, float | None]:
    """(Spearman, Kendall tau-b); None where undefined (constant or non-finite scores)."""
    from scipy.stats import kendalltau, spearmanr

    if not (np.isfinite(a).all() and np.isfinite(b).all()) or a.std() == 0 or b.std() == 0:
        return None, None
    return float(spearmanr(a, b)[0]), float(kendalltau(a, b)[0])


def weight_distance(a: State, b: State, names: Sequence[str]) -> float:
    """||a - b|| over the parameters ``names`` (float64, so equal weights give exactly 0)."""
    return math.sqrt(sum(float((a[n].double() - b[n].double()).square().sum()) for n in names))


def weight_norm(a: State, names: Sequence[str]) -> float:
    return math.sqrt(sum(float(a[n].double().square().sum()) for n in names))


def loss_gap(runs: dict[str, TrainRun], other: str = "bf16") -> float:
    """Largest per-step difference of the fp32 and ``other`` run's losses (meta-test and meta-train)."""
    pairs = zip(runs["fp32"].losses, runs[other].losses)
    return float(np.max([abs(a[k] - b[k]) for a, b in pairs for k in a]))  # NaN stays NaN


def final_loss_gap(runs: dict[str, TrainRun], steps: int, other: str = "bf16") -> float:
    """Relative gap of the mean loss over the last ``steps`` steps between the fp32 and ``other``
    run, the worse of the two losses."""
    def mean(run: TrainRun, key: str) -> float:
        return float(np.mean([step[key] for step in run.losses[-steps:]]))

    keys = runs["fp32"].losses[0].keys()
    return max(abs(mean(runs[other], k) - mean(runs["fp32"], k)) / abs(mean(runs["fp32"], k)) for k in keys)


def auc_or_none(scores: np.ndarray, labels: np.ndarray) -> float | None:
    try:
        return metrics.roc_auc(scores, labels, "gpu_check scores")
    except ValueError:  # NaN scores after a diverged run
        return None


def agreement(scores: dict[str, np.ndarray], end_to_end: np.ndarray, labels: np.ndarray, states: dict[str, State],
              init: State, names: Sequence[str], runs: dict[str, TrainRun], threshold: float,
              final_steps: int) -> Agreement:
    s32, s16 = scores["fp32"], scores["bf16"]
    diff = np.abs(s32 - s16)
    spearman, kendall = rank_correlations(s32, s16)
    gap = weight_distance(states["bf16"], states["fp32"], names)
    moved = weight_distance(states["fp32"], init, names)
    e2e = np.abs(s32 - end_to_end)
    return Agreement(
        score_mean_abs=float(diff.mean()), score_max_abs=float(diff.max()), score_std_fp32=float(s32.std()),
        spearman=spearman, kendall=kendall,
        flip_fraction=float(np.mean((s32 >= threshold) != (s16 >= threshold))),
        final_loss_rel=final_loss_gap(runs, final_steps),
        auc_fp32=auc_or_none(s32, labels), auc_bf16_trained=auc_or_none(end_to_end, labels),
        weights_rel_l2=gap / weight_norm(states["fp32"], names),
        update_rel_l2=gap / moved if moved > 0 else None,
        loss_max_abs=loss_gap(runs),
        end_to_end={"score_mean_abs": float(e2e.mean()), "score_max_abs": float(e2e.max()),
                    "spearman": rank_correlations(s32, end_to_end)[0]})


def bounded(name: str, value: float | None, bound: float, upper: bool = True, judged: bool = True,
            note: str = "") -> Check:
    """A check of ``value`` <= ``bound`` (>= unless ``upper``); a missing or NaN value fails."""
    sign = "<=" if upper else ">="
    if not judged:
        return Check(name, value, f"{sign} {bound:g}", "not judged", note)
    ok = value is not None and math.isfinite(value) and (value <= bound if upper else value >= bound)
    return Check(name, value, f"{sign} {bound:g}", "pass" if ok else "fail", note)


def auc_drop(agree: Agreement) -> float | None:
    if agree.auc_fp32 is None or agree.auc_bf16_trained is None:
        return None
    return agree.auc_fp32 - agree.auc_bf16_trained


def judge(report: Report, bounds: Bounds, device: torch.device) -> list[Check]:
    agree, runs = report.agreement, report.train
    finite = all(math.isfinite(v) for r in runs.values() for step in r.losses for v in step.values())
    spread = agree.score_std_fp32 >= bounds.min_score_std
    why = "" if spread else (f"fp32 scores std {agree.score_std_fp32:.2g} < {bounds.min_score_std:g}: "
                             "near-constant model, its ranks and decisions are rounding noise")
    bf16 = report.score["bf16"].output_dtype
    checks = [
        Check("losses finite", finite, "all steps", "pass" if finite else "fail"),
        bounded(f"final loss rel gap (last {bounds.final_steps})", agree.final_loss_rel, bounds.final_loss_rel),
        bounded("AUC drop, bf16-trained", auc_drop(agree), bounds.auc_drop, judged=spread, note=why),
        bounded("score mean |diff|", agree.score_mean_abs, bounds.score_mean_abs),
        bounded("score max |diff|", agree.score_max_abs, bounds.score_max_abs),
        bounded("spearman", agree.spearman, bounds.spearman, upper=False, judged=spread, note=why),
        bounded("flips at threshold", agree.flip_fraction, bounds.flip_fraction, judged=spread, note=why),
    ]
    if report.graph is not None:
        g = report.graph
        checks += [bounded(f"CUDA graph: final loss rel gap (last {bounds.final_steps})", g["final_loss_rel"],
                           bounds.final_loss_rel),
                   bounded("CUDA graph: score mean |diff|", g["score_mean_abs"], bounds.score_mean_abs),
                   bounded("CUDA graph: score max |diff|", g["score_max_abs"], bounds.score_max_abs)]
    if device.type == "cuda":
        checks.append(Check("bf16 autocast active", bf16, "bfloat16", "pass" if bf16 == "bfloat16" else "fail"))
    else:
        checks.append(Check("bf16 autocast active", bf16, "bfloat16", "not judged", CPU_NOTE))
    return checks


# ---------------------------------------------------------------- the check


def environment(device: torch.device) -> dict[str, Any]:
    env: dict[str, Any] = {"device": device.type, "torch": torch.__version__, "cuda": torch.version.cuda,
                           "python": platform.python_version(), "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(device_name=props.name, gpu_memory_gib=props.total_memory / 2**30,
                   cudnn=torch.backends.cudnn.version(), tf32_convs=torch.backends.cudnn.allow_tf32,
                   tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
                   cudnn_benchmark=torch.backends.cudnn.benchmark)
    else:
        env["device_name"] = platform.processor() or platform.machine()
    return env


def run_check(cfg: CheckConfig, report: Report, bounds: Bounds) -> None:
    """Everything between the device check and the verdict; ``report.phase`` says where it is."""
    device = torch.device(cfg.device)
    report.enter("model build")
    seed_everything(cfg.seed)
    model = build(cfg, device)
    init = cpu_state(model)
    names = [n for n, _ in model.named_parameters()]
    report.enter("inputs")
    batches = make_batches(cfg, device)
    faces, labels = demo_faces(cfg.faces, cfg.bench.input_size, cfg.seed)

    states: dict[str, State] = {}
    for precision in PRECISIONS:
        report.enter(f"training {precision}")
        report.train[precision], states[precision] = train_run(model, init, batches, cfg, device, precision)
    report.enter("training fp32, CUDA graph")
    flops = round(report.train["fp32"].tflop_per_iteration * 1e12)
    report.train[GRAPH], states[GRAPH] = train_run(model, init, batches, cfg, device, "fp32", graph_flops=flops)
    del batches

    scores: dict[str, np.ndarray] = {}
    for precision in PRECISIONS:  # the same (fp32-trained) weights in both precisions
        report.enter(f"scoring {precision}")
        report.score[precision], scores[precision] = score_run(model, states["fp32"], faces, labels, cfg,
                                                               device, precision)
    report.enter("scoring bf16-trained in bf16")
    model.load_state_dict(states["bf16"])
    end_to_end, _ = score_faces(model, faces, cfg.score_batch, device, "bf16")
    report.enter("scoring the CUDA-graph-trained weights in fp32")
    model.load_state_dict(states[GRAPH])
    graph_scores, _ = score_faces(model, faces, cfg.score_batch, device, "fp32")
    report.enter("agreement")
    report.agreement = agreement(scores, end_to_end, labels, states, init, names, report.train, cfg.threshold,
                                 bounds.final_steps)
    report.graph = graph_agreement(report.train, states, scores["fp32"], graph_scores, names, bounds.final_steps,
                                   "torch.cuda.CUDAGraph" if device.type == "cuda" else "eager (CPU stand-in)")


def graph_agreement(runs: dict[str, TrainRun], states: dict[str, State], plain: np.ndarray, graphed: np.ndarray,
                    names: Sequence[str], final_steps: int, backend: str) -> dict[str, Any]:
    """The CUDA-graph run against the plain fp32 run: speed-up, losses, weights and scores."""
    diff = np.abs(plain - graphed)
    return {"backend": backend,
            "speedup": runs["fp32"].seconds_per_iteration / runs[GRAPH].seconds_per_iteration,
            "final_loss_rel": final_loss_gap(runs, final_steps, GRAPH), "loss_max_abs": loss_gap(runs, GRAPH),
            "weights_rel_l2": weight_distance(states[GRAPH], states["fp32"], names)
            / weight_norm(states["fp32"], names),
            "score_mean_abs": float(diff.mean()), "score_max_abs": float(diff.max())}


def finish(report: Report, bounds: Bounds, device: torch.device) -> None:
    if report.agreement is not None:
        report.checks = judge(report, bounds, device)
    ok = report.error is None and report.agreement is not None
    report.verdict = "PASS" if ok and all(c.status != "fail" for c in report.checks) else "FAIL"


# ---------------------------------------------------------------- output


def jsonable(obj: Any) -> Any:
    """Dataclasses as dicts, non-finite floats as null (strict JSON)."""
    if hasattr(obj, "__dataclass_fields__"):
        obj = asdict(obj)
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    return obj


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == 0 or abs(value) < 1e-3 or abs(value) >= 1e5:
            return f"{value:.{digits}g}"
        return f"{value:.1f}" if abs(value) >= 100 else f"{value:.{digits}f}"
    return str(value)


def rows(title: str, header: Sequence[str], body: Sequence[Sequence[Any]]) -> list[str]:
    table = [list(header)] + [[fmt(v) for v in row] for row in body]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = [title] + ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    return [*lines, ""]


def render(report: Report, path: Path) -> str:
    env, cfg = report.environment, report.config
    bench = cfg["bench"]
    cuda = f", cuDNN {env['cudnn']}, TF32 convs {env['tf32_convs']}" if "cudnn" in env else ""
    out = [f"HFN+MP GPU check on {env['device_name']} ({env['device']}) | torch {env['torch']}, "
           f"CUDA {env['cuda']}{cuda}",
           f"model {bench['backbone']} {bench['input_size']} px, pattern meta, bgr, official pyramid init, "
           f"weights {cfg['pretrained']} | K={bench['inner_loops']}, {bench['batch_live']}+{bench['batch_spoof']} "
           f"per domain, {bench['meta_train_domains']} meta-train domains | {cfg['warmup']} warm-up + "
           f"{cfg['iters']} timed iterations", ""]
    out += [f"note: {n}" for n in report.notes] + ([""] if report.notes else [])
    train = [report.train.get(p) for p in PRECISIONS]
    if all(train):
        out += rows("training", ["", *PRECISIONS], [
            ["s/iteration", *(r.seconds_per_iteration for r in train)],
            ["images/s", *(r.images_per_second for r in train)],
            ["TFLOP/iteration", *(r.tflop_per_iteration for r in train)],
            ["achieved TFLOP/s", *(r.achieved_tflops for r in train)],
            ["MFU (vs peak)", *(f"{fmt(r.mfu)} ({r.peak_kind} {fmt(r.peak_tflops)})" if r.mfu else "-" for r in train)],
            ["peak memory GiB", *(r.peak_memory_gib for r in train)]])
        out += rows("loss per step (warm-up first): meta-test / meta-train", ["step", *PRECISIONS, "max |diff|"], [
            [i + 1, f"{fmt(a['meta_test_loss'])} / {fmt(a['meta_train_loss'])}",
             f"{fmt(b['meta_test_loss'])} / {fmt(b['meta_train_loss'])}", float(np.max([abs(a[k] - b[k]) for k in a]))]
            for i, (a, b) in enumerate(zip(train[0].losses, train[1].losses))])
    score = [report.score.get(p) for p in PRECISIONS]
    if all(score):
        keys = ["auc", "eer", "best_hter", "far", "frr", "hter"]
        out += rows(f"scoring {cfg['faces']} faces with the fp32-trained weights (metrics vs synthetic labels; "
                    f"far/frr/hter at {cfg['threshold']})", ["", *PRECISIONS], [
            ["faces/s", *(s.faces_per_second for s in score)],
            ["output dtype", *(s.output_dtype for s in score)],
            ["peak memory GiB", *(s.peak_memory_gib for s in score)],
            *[[k, *(s.metrics.get(k, "n/a") for s in score)] for k in keys]])
    if report.agreement is not None:
        a = report.agreement
        out += rows("fp32 vs bf16", ["", "value"], [
            ["score |diff| mean / max", f"{fmt(a.score_mean_abs)} / {fmt(a.score_max_abs)}"],
            ["fp32 score std", a.score_std_fp32],
            ["spearman / kendall", f"{fmt(a.spearman)} / {fmt(a.kendall)}"],
            [f"decisions flipped at {cfg['threshold']}", a.flip_fraction],
            ["final loss rel gap", a.final_loss_rel],
            ["held-out AUC: fp32-trained / bf16-trained", f"{fmt(a.auc_fp32)} / {fmt(a.auc_bf16_trained)}"],
            ["drift (info): weights rel L2 (vs update)", f"{fmt(a.weights_rel_l2)} ({fmt(a.update_rel_l2)})"],
            ["drift (info): loss max |diff| per step", a.loss_max_abs],
            ["bf16 train+score: score |diff| mean / max, spearman",
             f"{fmt(a.end_to_end['score_mean_abs'])} / {fmt(a.end_to_end['score_max_abs'])}, "
             f"{fmt(a.end_to_end['spearman'])}"]])
    if report.graph is not None and GRAPH in report.train:
        g, run = report.graph, report.train[GRAPH]
        out += rows(f"fp32 replayed from one CUDA graph ({g['backend']}) vs plain fp32", ["", "value"], [
            ["s/iteration (speed-up)", f"{fmt(run.seconds_per_iteration)} ({fmt(g['speedup'])}x)"],
            ["MFU", run.mfu],
            ["final loss rel gap / loss max |diff|", f"{fmt(g['final_loss_rel'])} / {fmt(g['loss_max_abs'])}"],
            ["weights rel L2", g["weights_rel_l2"]],
            ["score |diff| mean / max", f"{fmt(g['score_mean_abs'])} / {fmt(g['score_max_abs'])}"]])
    if report.checks:
        out += rows("checks", ["status", "check", "value", "bound", "note"],
                    [[c.status.upper(), c.name, c.value, c.bound, c.note] for c in report.checks])
    out.append("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in report.phase_seconds.items()))
    if report.error:
        out.append(f"ERROR: {report.error}")
    out.append(f"VERDICT: {report.verdict}  ({report.wall_seconds:.1f} s; JSON: {path})")
    return "\n".join(out)


def default_json() -> Path:
    out = os.environ.get("OUT")
    return Path(out) / "gpu_check.json" if out else Path(__file__).resolve().parent / "out" / "gpu_check.json"


def write_json(report: Report, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(jsonable(report), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------- command line


def parse(argv: list[str] | None) -> tuple[CheckConfig, Path, int | None]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--tiny", action="store_true",
                    help="resnet18, 64 px, 1+1 per domain, K=2, 1 warm-up + 2 iterations, 16 faces")
    ap.add_argument("--pretrained", default=ModelConfig.RANDOM, metavar="PATH",
                    help="local torchvision ResNet weights file (default: random init, on purpose)")
    ap.add_argument("--iters", type=int, help="timed iterations (default 60; tiny 2)")
    ap.add_argument("--warmup", type=int, help="warm-up iterations, >= 1, the first counts FLOPs (default 3; tiny 1)")
    ap.add_argument("--faces", type=int, help="faces scored, >= 2 (default 256; tiny 16)")
    ap.add_argument("--score-batch", type=int, help="scoring batch size (default 32; tiny 8)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--strict-fp32", action="store_true", help="no TF32 in the fp32 reference (cuDNN and matmul)")
    ap.add_argument("--peak-tflops", type=float, help="override the card's dense peak TFLOP/s for MFU")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    ap.add_argument("--json", type=Path, help="where to write the JSON (default $OUT/gpu_check.json, "
                                              "else bench/out/gpu_check.json)")
    args = ap.parse_args(argv)
    base = (CheckConfig(bench=TINY, warmup=1, iters=2, faces=16, score_batch=8) if args.tiny else CheckConfig())
    given = {"iters": args.iters, "warmup": args.warmup, "faces": args.faces, "score_batch": args.score_batch}
    cfg = replace(base, device=args.device, pretrained=args.pretrained, seed=args.seed,
                  strict_fp32=args.strict_fp32, peak_tflops=args.peak_tflops,
                  **{k: v for k, v in given.items() if v is not None})
    if cfg.warmup < 1 or cfg.iters < 1 or cfg.faces < 2 or cfg.score_batch < 1:
        ap.error("--warmup, --iters and --score-batch must be >= 1 and --faces >= 2")
    return cfg, args.json or default_json(), args.threads


def main(argv: list[str] | None = None) -> int:
    cfg, path, threads = parse(argv)
    if cfg.device == "cuda" and not torch.cuda.is_available():
        print(f"gpu_check: --device cuda, but torch {torch.__version__} (CUDA {torch.version.cuda or 'none'}) "
              "sees no CUDA device; use --device cpu --tiny for the CPU self-test", file=sys.stderr)
        return 2
    if threads:
        torch.set_num_threads(threads)
    if cfg.strict_fp32:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    device = torch.device(cfg.device)
    bounds = Bounds()
    report = Report(environment=environment(device), config=jsonable(cfg), bounds=asdict(bounds))
    if cfg.pretrained == ModelConfig.RANDOM:
        report.notes.append("random backbone weights on purpose: the rank and flip checks count only once "
                            "training on the demo faces has spread the scores (std >= "
                            f"{bounds.min_score_std:g}); more --iters or --pretrained FILE spread them further")
    if device.type == "cpu":
        report.notes.append(CPU_NOTE)
    t0 = time.perf_counter()
    try:
        run_check(cfg, report, bounds)
    except torch.cuda.OutOfMemoryError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        report.error = f"CUDA out of memory during {report.phase}: {first}"
    report.enter("done")
    report.wall_seconds = time.perf_counter() - t0
    finish(report, bounds, device)
    write_json(report, path)
    print(render(report, path), flush=True)
    return 0 if report.verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
