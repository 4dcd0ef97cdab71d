"""A training run's side effects and its resume: the MLflow run, ``run.json``, ``best.pt`` and
``last.pt`` (rank 0 only), and restoring a run from ``last.pt`` on every rank."""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mpfas.core.atomic import remove_temp_files, write_json
from mpfas.core.config import Params
from mpfas.methods import Trainer
from mpfas.models import checkpoint
from mpfas.models.checkpoint import Checkpoint, Preprocess, ResumeState
from mpfas.models.weights import describe_weights
from mpfas.tracking import flat_params, git_commit, open_run, run_tags
from mpfas.train import distributed, rng
from mpfas.train.curves import Curves
from mpfas.train.data import DomainSampler

log = logging.getLogger("mpfas.train.loop")  # one logger for the loop's messages (rank > 0 quiets it)
METRICS_FLUSH_EVERY = 20
"""Iterations of metrics written to MLflow together (and before every checkpoint and at the end):
one database write per iteration cost about 4 ms on a 2-core CPU, a GPU step's worth of time."""


@dataclass(frozen=True)
class TrainResult:
    protocol: str
    run_id: str
    iterations: int
    start_iteration: int
    best_iteration: int
    best_val: dict[str, float]
    seconds_per_iteration: float
    device: str
    world_size: int = 1  # processes that trained together (torchrun); 1 = plain run
    rank: int = 0  # which of them returned this (all return rank 0's result)

    def summary(self, select: str) -> dict[str, Any]:
        """What the train stages write as a protocol's training metrics (``train.select``: ``select``)."""
        return {
            "protocol": self.protocol, "run_id": self.run_id, "select": select,
            "iterations": self.iterations, "resumed_from": self.start_iteration,
            "best_iteration": self.best_iteration, "device": self.device, "world_size": self.world_size,
            # None when last.pt was already complete and nothing was left to train
            "seconds_per_iteration": (round(self.seconds_per_iteration, 4)
                                      if math.isfinite(self.seconds_per_iteration) else None),
            # null when there are no source-val videos (manifests.val_fraction 0: every source video trained)
            "source_val": ({k: self.best_val[k] for k in ("auc", "eer", "hter", "threshold", "videos")}
                           if "auc" in self.best_val else None),
        }

    def describe(self, select: str) -> str:
        """One line for the stage's log."""
        val = (f"source-val HTER {self.best_val['hter']:.4f} AUC {self.best_val['auc']:.4f}"
               if "auc" in self.best_val else "no source-val videos")
        return (f"{self.protocol}: best iteration {self.best_iteration} ({select}), {val}, "
                f"{self.seconds_per_iteration:.2f} s/iteration, MLflow run {self.run_id}")


def _state_cpu(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


@dataclass
class Best:
    """The best checkpoint so far: its selection key and record ``{iteration, key, val}``."""

    key: tuple[float, float] | None = None
    record: dict[str, Any] | None = None


@dataclass
class RunContext:
    """What rank 0 alone does besides training: the MLflow run, ``run.json`` and the checkpoint
    files. On other ranks every method is a no-op (no tracker, no files)."""

    ctx: distributed.Context
    params: Params
    protocol: str
    out_dir: Path
    fingerprint: str
    curves: Curves | None = None  # CSV copies of the curves for `dvc plots`
    script: str = "stages/train.py"  # the stage script: the MLflow run's source
    tracker: Any = None
    info: Any = None  # tracking.RunInfo
    step_times: list[float] = field(default_factory=list)

    @property
    def last_path(self) -> Path:
        return self.out_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.out_dir / "best.pt"

    def open(self, params_file: str | Path, run_id: str | None, pretrained_sha256: str, start: int = 0,
             manifest: Path | None = None) -> None:
        """Start (or reopen, on resume from iteration ``start``) the MLflow run and the curves, log
        ``manifest`` as its training dataset and start MLflow's system metrics (``runtime.system_metrics``)."""
        if not self.ctx.is_main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        remove_temp_files(self.out_dir)  # a checkpoint write cut short by a kill leaves one behind
        tags = run_tags(self.protocol, self.params, params_file, git_commit(), self.ctx.world_size, self.script)
        if pretrained_sha256:
            tags.update(pretrained_sha256=pretrained_sha256, pretrained_file=describe_weights(pretrained_sha256))
        self.tracker, self.info = open_run(self.params.runtime.experiment, tags, flat_params(self.params),
                                           resume_id=run_id)
        if self.curves is not None:
            self.curves.restart(start)
            if start > 0 and self.info.resumed:
                self.curves.backfill(self.tracker.metric_history(), start)
        if manifest is not None:
            self.tracker.log_dataset(manifest, self.protocol, "training")
        if self.params.runtime.system_metrics:
            self.tracker.start_system_metrics(resumed=self.info.resumed)

    def announce(self) -> None:
        if not self.ctx.is_main:
            return
        write_json(self.out_dir / "run.json", self.info.as_json(self.protocol))
        log.info("MLflow run %s (%s) in %s", self.info.run_id, "resumed" if self.info.resumed else "new",
                 self.info.tracking_uri)
        if self.params.train.select == "target_oracle":
            log.warning("train.select=target_oracle: best.pt is chosen on the TARGET set (frame-level "
                        "min-HTER, as the official code does); its target numbers are optimistic "
                        "(test-set leakage)")

    def log_metrics(self, metrics: dict[str, float], it: int) -> None:
        """To MLflow and, but timings (a DVC output must not change between identical runs), the curves."""
        if not self.ctx.is_main:
            return
        self.tracker.log_metrics(metrics, step=it, flush=it % METRICS_FLUSH_EVERY == 0)
        if self.curves is not None:
            self.curves.append(it, metrics)

    def _checkpoint(self, model: torch.nn.Module, it: int, val: dict[str, float], kind: str,
                    resume: ResumeState | None = None) -> Checkpoint:
        threshold, rule = checkpoint.threshold_of(val) if kind == "best" else (None, "none")
        return Checkpoint(kind=kind, model=_state_cpu(model), model_config=dataclasses.asdict(self.params.model),
                          preprocess=Preprocess.from_params(self.params), protocol=self.protocol, iteration=it,
                          selection=self.params.train.select, val=val, threshold=threshold, threshold_rule=rule,
                          run_id=self.info.run_id, fingerprint=self.fingerprint, resume=resume)

    def _flush(self) -> None:
        """MLflow holds every metric up to a checkpoint (a resume backfills the curves from it)."""
        if self.tracker is not None:
            self.tracker.flush()

    def save_best(self, model: torch.nn.Module, it: int, val: dict[str, float]) -> None:
        self._flush()
        checkpoint.save(self._checkpoint(model, it, val, "best"), self.best_path)

    def save_last(self, model: torch.nn.Module, it: int, trainer: Trainer, sampler: DomainSampler, best: Best,
                  ranks: list[dict[str, Any]] | None) -> None:
        self._flush()
        resume = ResumeState(trainer=trainer.state_dict(), sampler=sampler.state_dict(), rng=rng.rng_state(),
                             best=best.record, world_size=self.ctx.world_size, ranks=ranks)
        checkpoint.save(self._checkpoint(model, it, best.record["val"] if best.record else {}, "last", resume),
                        self.last_path)

    def finish(self, params_file: str | Path, best: Best, start: int, device: torch.device) -> TrainResult | None:
        """Log the artifacts, close the run and read back what ``best.pt`` holds."""
        if not self.ctx.is_main:
            return None
        if not self.best_path.is_file():
            raise RuntimeError(f"{self.best_path} was not written (no validation ran)")
        if self.curves is not None:
            self.curves.ensure()  # e.g. no source-val: no validation numbers, still an output
        self.tracker.log_artifact(self.best_path, "checkpoint")
        self.tracker.log_artifact(params_file, "config")
        self.tracker.log_artifact(self.out_dir / "run.json", "checkpoint")
        self.tracker.set_tags({"best_iteration": str(best.record["iteration"] if best.record else "")})
        self.tracker.end("FINISHED")
        saved = checkpoint.load(self.best_path)
        return TrainResult(
            protocol=self.protocol, run_id=self.info.run_id, iterations=self.params.train.iterations,
            start_iteration=start, best_iteration=saved.iteration, best_val=dict(saved.val),
            seconds_per_iteration=float(np.mean(self.step_times)) if self.step_times else float("nan"),
            device=str(device), world_size=self.ctx.world_size,
        )

    def end(self, status: str) -> None:
        if self.tracker is not None:
            self.tracker.end(status)


# ------------------------------------------------------------------ resume


def resume(run: RunContext, model: torch.nn.Module, trainer: Trainer,
            sampler: DomainSampler) -> tuple[int, str | None, Best]:
    """Restore ``last.pt`` when it can be resumed: (start iteration, MLflow run id, best so far).

    Rank 0 decides whether and from what to resume; every rank gets the same state.
    """
    ctx, cfg = run.ctx, run.params.train
    state = (_resume_state(run.last_path, run.best_path, run.fingerprint, cfg.iterations)
             if ctx.is_main and run.params.runtime.resume == "auto" else None)
    state = ctx.broadcast(state)
    if state is None:
        return 0, None, Best()
    last, best_ok = state
    resume = last.resume
    model.load_state_dict(last.model)
    trainer.load_state_dict(resume.trainer)
    mine = _rank_state(resume, ctx)
    if mine is not None:
        sampler.load_state_dict(mine["sampler"])
        rng.set_rng_state(mine["rng"])
    log.info("resuming %s from %s at iteration %d", run.protocol, run.last_path, last.iteration)
    best = Best(tuple(resume.best["key"]), resume.best) if best_ok else Best()
    return last.iteration, last.run_id, best


def _resume_state(last_path: Path, best_path: Path, fp: str, iterations: int) -> tuple[Checkpoint, bool] | None:
    """``last.pt`` if it can be resumed (same fingerprint, not past ``iterations``), else None;
    with whether its best record still matches ``best.pt`` (same run)."""
    if not last_path.is_file():
        return None
    try:
        last = checkpoint.load(last_path)
    except checkpoint.SchemaError as exc:
        log.warning("%s; starting over", exc)
        return None
    if last.kind != "last":
        raise checkpoint.CheckpointError(f"{last_path}: a {last.kind!r} checkpoint, not a resumable 'last' one")
    if last.fingerprint != fp:
        log.warning("%s was written with other settings or data; starting over", last_path)
        return None
    if last.iteration > iterations:
        log.warning("%s is at iteration %d > train.iterations=%d; starting over", last_path,
                    last.iteration, iterations)
        return None
    best_ok = last.resume.best is not None and _same_run(best_path, fp, last.run_id)
    if last.resume.best is not None and not best_ok:
        # the choice among earlier iterations cannot be made again without them: train again
        log.warning("%s is missing or from another run; training again from iteration 0 to choose it", best_path)
        return None
    return last, best_ok


def _same_run(best_path: Path, fp: str, run_id: str) -> bool:
    """Whether ``best.pt`` exists and belongs to the run being resumed."""
    if not best_path.is_file():
        return False
    try:
        best = checkpoint.load(best_path)
    except checkpoint.SchemaError:
        return False
    return best.fingerprint == fp and best.run_id == run_id


def _rank_state(resume: ResumeState, ctx: distributed.Context) -> dict[str, Any] | None:
    """This rank's sampler and RNG state from ``last.pt``; None (fresh stream) if unknown."""
    if resume.world_size == ctx.world_size and ctx.enabled:
        return resume.ranks[ctx.rank]
    if resume.world_size != ctx.world_size:
        log.warning("last.pt was written by %d rank(s), resuming with %d: data streams of ranks > 0 "
                    "restart (not bit-identical to an uninterrupted run)", resume.world_size, ctx.world_size)
    return {"sampler": resume.sampler, "rng": resume.rng} if ctx.rank == 0 else None
