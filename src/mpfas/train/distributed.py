"""Data-parallel training under ``torchrun``: one process per device, gradients averaged.

``torchrun --nproc_per_node=N stages/train.py <protocol>`` sets ``WORLD_SIZE``, ``RANK``
and ``LOCAL_RANK``; ``init()`` then joins the process group (NCCL on CUDA, gloo on CPU).
Without those variables (plain ``python stages/train.py``) nothing is initialised and every
helper here is a no-op, so the single-process path is exactly the usual one.

Why explicit ``all_reduce`` rather than ``DistributedDataParallel``: an HFN+MP iteration
alternates between two parameter subsets (K steps on the MP extractor with the HFN frozen,
then one step on the HFN with the MP frozen). DDP's wrapper expects one fixed set of
parameters that all receive gradients every backward; averaging the gradients of exactly
the parameters about to be stepped, right after each backward, is simpler and obviously
correct. Data sharding: every rank draws its own batches from a rank-specific seed (for an
endless sampler that is what sharding means: ranks see independent draws of the same
data), so the global batch per domain is ``N x (batch_live + batch_spoof)``.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger(__name__)

TIMEOUT = _dt.timedelta(minutes=60)
"""Collective timeout: ranks > 0 wait in the next collective while rank 0 validates and
writes checkpoints, which on real data takes minutes."""


@dataclass(frozen=True)
class Context:
    """Where this process sits in the job; ``world_size == 1`` means not distributed."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def average_gradients(self, params: Iterable[nn.Parameter]) -> None:
        """Replace each parameter's ``.grad`` by its mean over ranks (one coalesced all_reduce).

        Parameters without a gradient are skipped; the model is the same on every rank, so
        the same parameters have gradients everywhere.
        """
        if not self.enabled:
            return
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat.div_(self.world_size)
        offset = 0
        for g in grads:
            n = g.numel()
            g.copy_(flat[offset : offset + n].view_as(g))
            offset += n

    def average_buffers(self, model: nn.Module) -> None:
        """Average floating-point buffers (BatchNorm running statistics) over ranks.

        Parameters stay identical through averaged gradients, but each rank's BatchNorm
        statistics follow its own batches; averaging them before validation and checkpoints
        makes the saved model the same whichever rank wrote it.
        """
        if not self.enabled:
            return
        bufs = [b for b in model.buffers() if b.is_floating_point()]
        if bufs:
            flat = torch.cat([b.reshape(-1) for b in bufs])
            dist.all_reduce(flat)
            flat.div_(self.world_size)
            offset = 0
            for b in bufs:
                b.copy_(flat[offset : offset + b.numel()].view_as(b))
                offset += b.numel()

    def broadcast_model(self, model: nn.Module) -> None:
        """Make rank 0's parameters and buffers everyone's (same start, also after resume)."""
        if not self.enabled:
            return
        for tensor in [*model.parameters(), *model.buffers()]:
            dist.broadcast(tensor.data, src=0)

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's Python object on every rank (decisions made once: domain order, resume)."""
        if not self.enabled:
            return obj
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's object, as a list on rank 0 (None elsewhere)."""
        if not self.enabled:
            return [obj]
        out: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def mean_stats(self, stats: dict[str, float]) -> dict[str, float]:
        """Loss statistics averaged over ranks, so rank 0 logs the global numbers and every
        rank sees the same values (a non-finite loss stops all ranks together)."""
        if not self.enabled or not stats:
            return stats
        keys = sorted(stats)
        t = torch.tensor([stats[k] for k in keys], dtype=torch.float64,
                         device=self._collective_device())
        dist.all_reduce(t)
        t /= self.world_size
        return dict(zip(keys, t.tolist()))

    def _collective_device(self) -> torch.device:
        return (torch.device("cuda", torch.cuda.current_device())
                if dist.get_backend() == dist.Backend.NCCL else torch.device("cpu"))


def context_from_env(env: dict[str, str] | None = None) -> Context:
    """The rank layout ``torchrun`` put in the environment (world size 1 without it)."""
    env = os.environ if env is None else env
    world = int(env.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return Context()
    return Context(rank=int(env["RANK"]), world_size=world, local_rank=int(env.get("LOCAL_RANK", "0")))


def init(device: torch.device) -> Context:
    """Join the process group when launched by ``torchrun`` with more than one process.

    ``device`` is the resolved training device: NCCL on CUDA (one GPU per local rank),
    gloo on CPU. Returns the context; with world size 1 nothing is initialised.
    """
    ctx = context_from_env()
    if not ctx.enabled or (dist.is_available() and dist.is_initialized()):
        return ctx
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs: dict[str, Any] = {}
    if device.type == "cuda":
        torch.cuda.set_device(device)
        kwargs["device_id"] = device
    dist.init_process_group(backend=backend, timeout=TIMEOUT, **kwargs)
    log.info("distributed: rank %d/%d (local %d), backend %s, device %s", ctx.rank, ctx.world_size,
             ctx.local_rank, backend, device)
    return ctx


def rank_device(device: torch.device, ctx: Context) -> torch.device:
    """One GPU per local rank; CPU stays CPU."""
    if device.type == "cuda" and ctx.enabled:
        return torch.device("cuda", ctx.local_rank)
    return device


def shutdown(ctx: Context) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def rank_seed(seed: int, ctx: Context) -> int | Sequence[int]:
    """The sampler seed of this rank: ``seed`` itself on rank 0 (so one process draws what it
    always drew), an independent stream ``(seed, rank)`` on the others."""
    return seed if ctx.rank == 0 else (seed, ctx.rank)
