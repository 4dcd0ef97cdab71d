"""The training loop of one protocol: build, iterate, validate, checkpoint, log.

Per iteration the source domains are shuffled (HFN+MP: with three sources two are
meta-train and one meta-test) and the method's trainer takes one step (``mpfas.methods``).
Every ``train.eval_every`` iterations (and at the end) the model is scored on the
source-val videos (when the manifest keeps any) and on the target (recorded for the report's
paper-style and last-N views; it selects only under ``target_oracle``). ``best.pt`` is
chosen by ``train.select``:

* ``source_val``: lowest video-level HTER at the source-val EER threshold (ties: higher AUC);
* ``last``: the checkpoint at the end of the fixed budget (no source-val needed, so all
  source videos can train);
* ``target_oracle``: the method's official rule on the *target* (``Method.oracle``; HFN+MP:
  lowest frame-level HTER with the threshold swept on the target, ties keep the earlier one;
  SSDG-R: lowest video HTER at the target's EER threshold, ties keep the later one); that
  leaks the test set and is labelled so everywhere.

Under ``torchrun --nproc_per_node=N`` the same loop runs data-parallel (``distributed``):
each rank draws its own batches, gradients are averaged after every backward, and only
rank 0 validates, writes checkpoints and logs to MLflow.

``_train`` is the orchestration: build the method's model and trainer (``mpfas.methods``),
resume (``run.resume``), then per iteration the trainer's step, logging, and
``_validate_and_checkpoint``; ``run.RunContext``
holds what only rank 0 does (MLflow run, ``run.json``, ``best.pt``/``last.pt``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mpfas.core.config import ConfigError, Params
from mpfas.core.device import resolve_device
from mpfas.core.errors import MpfasError
from mpfas.core.metrics import best_hter, eer, error_rates, roc_auc
from mpfas.core.sampling import pick_evenly
from mpfas.methods import Trainer, get_method
from mpfas.models.checkpoint import Preprocess
from mpfas.models.inference import FaceCache, FaceReadError, cache_budget, score_video_frames
from mpfas.train import distributed, rng
from mpfas.train.curves import Curves
from mpfas.train.data import DomainSampler
from mpfas.train.execution import prepare_model
from mpfas.train.protocols import resolve_protocol
from mpfas.train.run import Best, RunContext, TrainResult, resume

log = logging.getLogger(__name__)

LOG_EVERY = 10
# Train settings that do not change what is learnt: a last.pt written under other values of
# these may still be resumed (e.g. raise train.iterations to train longer). The runtime section
# is outside the fingerprint whole; train.eval_every is inside (it decides which checkpoint is kept).
RESUME_FREE = ("iterations", "channels_last", "cuda_graph")


class TrainingError(MpfasError, ValueError):
    """Training cannot start or continue because of its inputs (manifest, data, settings)."""


def fingerprint(params: Params, protocol: str, manifest: Path, faces: Sequence[str],
                pretrained_sha256: str = "") -> str:
    """What ``last.pt`` must match to be resumed: the model and learning settings, how
    validation scores (it picks ``best.pt``), the preprocessing the checkpoints record, the
    manifest, the content of every face training reads (``faces``) and the pretrained
    weights file's sha256.

    Changed data under unchanged file names (another ``align.padding``, a replaced
    dataset) thus trains from scratch instead of resuming a model of the old faces.
    Output-neutral settings (``RESUME_FREE``, ``score.batch_size``, the ``runtime`` section) are left out.
    """
    train = {k: v for k, v in dataclasses.asdict(params.train).items() if k not in RESUME_FREE}
    scoring = {"faces_per_video": params.score.faces_per_video, "precision": params.score.precision}
    blob = json.dumps({"protocol": protocol, "model": dataclasses.asdict(params.model), "train": train,
                       "ssdg": dataclasses.asdict(params.ssdg),
                       "validation": scoring, "preprocess": Preprocess.from_params(params).as_dict(),
                       "manifest": hashlib.sha256(manifest.read_bytes()).hexdigest(),
                       "faces": faces_digest(faces), "pretrained_sha256": pretrained_sha256}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def training_faces(by_role: dict[str, list[Any]], params: Params) -> list[str]:
    """The face files training reads: the frames the sampler picks from source-train videos,
    and those validation scores (source-val and the target)."""
    picked = {p for r in by_role["source-train"] for p in pick_evenly(r.faces, params.train.faces_per_video)}
    picked.update(p for role in ("source-val", "target") for r in by_role[role]
                  for p in pick_evenly(r.faces, params.score.faces_per_video))
    return sorted(picked)


def faces_digest(paths: Sequence[str]) -> str:
    """One sha256 over each face's path and content; a missing face fails naming it."""
    digest = hashlib.sha256()
    for path in paths:
        try:
            content = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: aligned face not found (re-run the align stage?)") from None
        except OSError as exc:  # a folder, a FIFO, no permission: one line naming it
            raise FaceReadError(f"{path}: not a readable face file ({exc.strerror or exc})") from None
        digest.update(f"{path}\0{content}\n".encode())
    return digest.hexdigest()


def validate(model: torch.nn.Module, rows: Sequence[Any], params: Params, device: torch.device,
             prefix: str = "val", cache: FaceCache | None = None) -> dict[str, float]:
    """Video-level AUC, EER and HTER at the EER threshold, the sweep-oracle min HTER, and the
    frame-level AUC and min HTER (what the official trainer selects on).

    Videos are scored exactly as the evaluate stage scores them (``score.faces_per_video``,
    ``score.batch_size``, ``score.precision``), so the stored source-val threshold
    applies to its scores.
    """
    cfg = params.score
    per_video = score_video_frames(model, [r.faces for r in rows], params.model.input_size, cfg.batch_size,
                                   device, cfg.faces_per_video, cfg.precision, cache)
    scores = np.array([s.mean() for s in per_video])
    frames = np.concatenate(per_video)
    labels = np.array([r.is_live for r in rows])
    frame_labels = np.repeat(labels, [s.size for s in per_video])
    rate, threshold = eer(scores, labels, where=f"{prefix} videos")
    min_hter, min_threshold = best_hter(scores, labels, where=f"{prefix} videos")
    frame_min_hter, frame_min_threshold = best_hter(frames, frame_labels, where=f"{prefix} frames")
    return {
        "auc": roc_auc(scores, labels, where=f"{prefix} videos"),
        "eer": rate,
        "hter": error_rates(scores, labels, threshold, where=f"{prefix} videos").hter,
        "threshold": threshold,
        "min_hter": min_hter,
        "min_hter_threshold": min_threshold,
        "frame_auc": roc_auc(frames, frame_labels, where=f"{prefix} frames"),
        "frame_min_hter": frame_min_hter,
        "frame_min_hter_threshold": frame_min_threshold,
        "videos": float(len(rows)),
    }


def _validation(model: torch.nn.Module, by_role: dict[str, list[Any]], params: Params, device: torch.device,
                it: int, cache: FaceCache | None = None) -> tuple[dict[str, float], tuple[float, float]]:
    """Score source-val and the target; return the record and the selection key of
    ``train.select`` (smaller is better)."""
    select = params.train.select
    val: dict[str, float] = {}
    if by_role["source-val"]:
        val = validate(model, by_role["source-val"], params, device, "source-val", cache)
        log.info("it %d: source-val AUC %.4f HTER@EER-thr %.4f (thr %.4f)", it, val["auc"], val["hter"],
                 val["threshold"])
    # the target is scored at every evaluation, as the official trainer does, for the report's
    # paper-style and last-N views (mpfas.evaluate.views); it selects only under target_oracle
    tgt = validate(model, by_role["target"], params, device, "target", cache)
    val.update({f"target_{k}": v for k, v in tgt.items()})
    log.info("it %d: target frame-level min-HTER %.4f, frame AUC %.4f (%s)", it, tgt["frame_min_hter"],
             tgt["frame_auc"], "selects: the oracle" if select == "target_oracle" else "observed, never selects")
    if select == "target_oracle":  # the method's official rule: which target number, which of equals
        oracle = get_method(params.model.method).oracle
        return val, (tgt[oracle.column.removeprefix("target_")], -float(it) if oracle.ties == "later" else 0.0)
    if select == "last":
        return val, (-float(it), 0.0)  # the latest checkpoint always wins
    return val, (val["hter"], -val["auc"])


def _better(new: tuple[float, float], old: tuple[float, float] | None) -> bool:
    """Lower error first, then higher AUC (keys are (error, -auc))."""
    return old is None or new < old


def train(params: Params, protocol: str, *, manifest: str | Path, faces: str | Path, out_dir: str | Path,
          params_file: str | Path = "params.yaml", curves: Curves | None = None,
          on_checkpoint: Callable[[int], None] | None = None, script: str = "stages/train.py") -> TrainResult:
    """Train one protocol from its manifest into ``out_dir`` (best.pt, last.pt, run.json).

    Under ``torchrun`` with several processes (see ``distributed``) every rank trains on its
    own batches with gradients averaged; only rank 0 validates, writes files and talks to
    MLflow, and every rank returns rank 0's result. ``curves``: where rank 0 also writes the loss
    and source-val curves for ``dvc plots``. ``on_checkpoint(iteration)`` is called
    (on rank 0) after each ``last.pt`` write (progress hooks, tests). ``script``: the stage script
    named as the MLflow run's source.
    """
    from mpfas.manifests.build import read_manifest

    cfg = params.train
    spec = resolve_protocol(params, protocol)
    sources = spec.sources
    manifest, out_dir = Path(manifest), Path(out_dir)
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: manifest not found (run the manifests stage)")
    rows = read_manifest(manifest, faces, protocol=spec.domains)  # checked: every row has faces
    rows = spec.training_rows(rows)  # OULU-NPU folds: source-train rows in their phone pseudo-domains
    by_role = {role: [r for r in rows if r.role == role] for role in ("source-train", "source-val", "target")}
    have = sorted({r.domain for r in by_role["source-train"]})
    if have != sorted(sources):
        raise TrainingError(f"{manifest}: source-train domains {have} differ from protocol {protocol} "
                           f"sources {sorted(sources)}")

    if params.data.source == "real" and not params.model.pretrained:
        raise ConfigError(
            "model.pretrained: empty, but data.source is 'real': the paper's numbers need ImageNet "
            "weights. Set it to a local torchvision ResNet file (likely the paper's: resnet50-19c8e357.pth), "
            "or to 'random' to train from random weights on purpose"
        )
    if cfg.select == "source_val" and not by_role["source-val"]:
        raise TrainingError(f"{manifest}: no source-val videos, but train.select is 'source_val' "
                            "(set train.select to 'last' or 'target_oracle', or manifests.val_fraction > 0)")
    ctx = distributed.context_from_env()
    device = distributed.rank_device(resolve_device(params.runtime.device), ctx)
    owns_group = ctx.enabled and not torch.distributed.is_initialized()
    distributed.init(device)
    try:
        return _train(params, protocol, sources, by_role, manifest, out_dir, params_file, curves,
                      on_checkpoint, ctx, device, script)
    finally:
        if owns_group:
            distributed.shutdown(ctx)


# ------------------------------------------------------------------ the loop


def _train(params: Params, protocol: str, sources: list[str], by_role: dict[str, list[Any]], manifest: Path,
           out_dir: Path, params_file: str | Path, curves: Curves | None,
           on_checkpoint: Callable[[int], None] | None, ctx: distributed.Context, device: torch.device,
           script: str) -> TrainResult:
    cfg = params.train
    if not ctx.is_main:  # one voice in the log: rank 0's (warnings and errors still show)
        log.setLevel(logging.WARNING)
    rng.seed_everything(cfg.seed)
    model = _build_model(params, device)
    trainer = get_method(params.model.method).trainer(model, params, sources)
    sampler = _sampler(by_role["source-train"], params, ctx, device)
    fp = fingerprint(params, protocol, manifest, training_faces(by_role, params), model.pretrained_sha256)
    run = RunContext(ctx, params, protocol, out_dir, fp, curves, script=script)
    start, run_id, best = resume(run, model, trainer, sampler)
    ctx.broadcast_model(model)  # identical start on every rank, whatever happened above
    run.open(params_file, run_id, model.pretrained_sha256, start, manifest)
    sync = ctx.average_gradients if ctx.enabled else None
    try:
        run.announce()
        for it in range(start + 1, cfg.iterations + 1):
            t0 = time.perf_counter()
            domains = list(sources)
            random.shuffle(domains)
            domains = ctx.broadcast(domains)  # the roles must be the same on every rank
            stats = ctx.mean_stats(trainer.step(it, domains, sampler.batch, device, sync))
            if any(not math.isfinite(v) for v in stats.values()):
                raise FloatingPointError(f"iteration {it}: non-finite loss {stats} (lower train.meta_lr?)")
            run.step_times.append(time.perf_counter() - t0)
            stats.update(trainer.learning_rates(), seconds_per_iteration=run.step_times[-1])
            run.log_metrics(stats, it)
            if it == start + 1 or it % LOG_EVERY == 0:
                log.info("it %d/%d %s | %s", it, cfg.iterations, trainer.roles(domains),
                         " ".join(f"{k}={v:.4g}" for k, v in stats.items()))
            best = _validate_and_checkpoint(run, model, trainer, sampler, best, by_role, device, it, on_checkpoint)
        result = run.finish(params_file, best, start, device)
    except KeyboardInterrupt:
        run.end("KILLED")
        raise
    except BaseException:
        run.end("FAILED")
        raise
    finally:
        sampler.close()
    # also the final barrier: no rank exits before rank 0 has written everything
    result = ctx.broadcast(result)
    return dataclasses.replace(result, rank=ctx.rank)


def _build_model(params: Params, device: torch.device) -> torch.nn.Module:
    from mpfas.methods import build_model

    model = prepare_model(build_model(params.model).to(device), params.train, device)
    model.train()
    if params.model.random_init:
        log.warning("!" * 72)
        log.warning("model.pretrained is %r: the backbones start from RANDOM weights, not ImageNet. "
                    "Numbers will be far from the paper's; set model.pretrained (docs/method.md).",
                    params.model.pretrained or "empty")
        log.warning("!" * 72)
    return model


def _sampler(rows: list[Any], params: Params, ctx: distributed.Context, device: torch.device) -> DomainSampler:
    """Batches of ``rows``, their faces kept decoded on ``device`` (the GPU's memory when training
    there) unless ``runtime.face_cache`` is ``cpu``."""
    cfg = params.train
    where = device if params.runtime.face_cache == "device" else torch.device("cpu")
    cache = FaceCache(params.model.input_size, cache_budget(where), device=where)
    sampler = DomainSampler(rows, num_frames=cfg.faces_per_video, batch_live=cfg.batch_live,
                            batch_spoof=cfg.batch_spoof, size=params.model.input_size,
                            seed=distributed.rank_seed(cfg.seed, ctx), workers=params.runtime.train_workers,
                            color=cfg.augment == "color", cache=cache)
    if ctx.enabled:
        log.info("data-parallel: %d ranks, each drawing its own batches (rank-specific sampler seed); "
                 "global batch per domain %d live + %d spoof", ctx.world_size,
                 ctx.world_size * cfg.batch_live, ctx.world_size * cfg.batch_spoof)
    return sampler


def _validate_and_checkpoint(run: RunContext, model: torch.nn.Module, trainer: Trainer, sampler: DomainSampler,
                             best: Best, by_role: dict[str, list[Any]], device: torch.device, it: int,
                             on_checkpoint: Callable[[int], None] | None) -> Best:
    """Every ``eval_every`` iterations validate (rank 0) and keep ``best.pt``; every
    ``checkpoint_every`` write ``last.pt`` (with every rank's data stream). Both at the end."""
    cfg, ctx = run.params.train, run.ctx
    validate_now = it % cfg.eval_every == 0 or it == cfg.iterations
    checkpoint_now = it % run.params.runtime.checkpoint_every == 0 or it == cfg.iterations
    if validate_now or checkpoint_now:
        ctx.average_buffers(model)  # one model to validate and save, whichever rank
    if validate_now and ctx.is_main:
        val, key = _validation(model, by_role, run.params, device, it, sampler.cache)
        run.log_metrics({k if k.startswith("target_") else f"val_{k}": v
                         for k, v in val.items() if not k.endswith("videos")}, it)
        if _better(key, best.key):
            best = Best(key, {"iteration": it, "key": list(key), "val": val})
            run.save_best(model, it, val)
            run.log_metrics({"best_iteration": it}, it)
            log.info("it %d: new best (%s)", it, cfg.select)
    if checkpoint_now:
        ranks = ctx.gather({"sampler": sampler.state_dict(), "rng": rng.rng_state()}) if ctx.enabled else None
        if ctx.is_main:
            run.save_last(model, it, trainer, sampler, best, ranks)
            if on_checkpoint is not None:
                on_checkpoint(it)
    return best
