"""The alternating step replayed as one CUDA graph (``train.cuda_graph: true``).

At the paper configuration the GPU waits on Python: one meta-iteration issues thousands of
small kernels (K + 1 forward and backward passes of two ResNet-50 streams, two optimisers),
and launching them takes longer than running them. A CUDA graph records the launches once and
replays them with one call, so the CPU cost of an iteration no longer grows with the kernel
count. The computation is the same kernels on the same memory: what is learnt does not change.

Capture needs fixed shapes and fixed addresses, so :class:`GraphedStep`

* copies each iteration's batches into static input tensors (same shapes every iteration;
  the domain roles change, the shapes do not);
* gives every parameter a momentum buffer before capture: SGD's first step sets the buffer to
  the gradient, and a zero buffer times the momentum plus the gradient is exactly the gradient,
  so a zero buffer gives the same first step;
* warms the step up (CUDA needs its libraries initialised outside capture), then puts every
  parameter, buffer and momentum buffer back as it was, in place, before capturing;
* reads the losses only after each replay (``loss_stats``).

The capture itself is a :class:`Backend`: :class:`CudaGraph` on CUDA; :class:`Eager` runs the
step each call instead, so that everything above is tested on CPU (tests/test_cuda_graph.py),
and ``bench/gpu_check.py`` checks the captured step against the plain one on a GPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

import torch
from torch import Tensor, nn

from mpfas.methods.hfn_mp.algorithms import LossParts, alternating_losses, loss_stats
from mpfas.train.data import DomainBatch

T = TypeVar("T")
Losses = dict[str, Sequence[LossParts]]
WARMUP = 3
"""Iterations run (and undone) before capture; PyTorch's CUDA graph notes warm up with 3."""


class Backend(Protocol):
    def build(self, step: Callable[[], T], warmup: int, reset: Callable[[], None]) -> Callable[[], T]:
        """Run ``step`` ``warmup`` times, call ``reset``, and return what replays ``step``."""


class CudaGraph:
    """Warm-up on a side stream, then one ``torch.cuda.CUDAGraph`` of the step."""

    def build(self, step: Callable[[], T], warmup: int, reset: Callable[[], None]) -> Callable[[], T]:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(warmup):
                step()
        torch.cuda.current_stream().wait_stream(side)
        reset()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = step()

        def replay() -> T:
            graph.replay()
            return out

        return replay


class Eager:
    """The same contract without capture: ``step`` runs at every call (CPU tests)."""

    def build(self, step: Callable[[], T], warmup: int, reset: Callable[[], None]) -> Callable[[], T]:
        for _ in range(warmup):
            step()
        reset()
        return step


class GraphedStep:
    """``alternating_step`` with the same arguments per call, replayed from one capture.

    Built at the first call (after any resume has loaded the weights and optimiser state);
    later calls must bring batches of the same shapes.
    """

    def __init__(self, model: nn.Module, mp_opt: torch.optim.SGD | None, hfn_opt: torch.optim.SGD,
                 device: torch.device, precision: str = "fp32", backend: Backend | None = None) -> None:
        self.model, self.mp_opt, self.hfn_opt = model, mp_opt, hfn_opt
        self.device, self.precision = device, precision
        self.backend = backend if backend is not None else CudaGraph()
        self._train: list[DomainBatch] = []
        self._test: list[DomainBatch] = []
        self._replay: Callable[[], Losses] | None = None

    @property
    def optimisers(self) -> list[torch.optim.SGD]:
        return [o for o in (self.mp_opt, self.hfn_opt) if o is not None]

    def __call__(self, meta_train: Sequence[DomainBatch], meta_test: Sequence[DomainBatch]) -> dict[str, float]:
        if self._replay is None:
            self._build(meta_train, meta_test)
        self._load(meta_train, meta_test)
        assert self._replay is not None
        return loss_stats(self._replay())

    def _step(self) -> Losses:
        return alternating_losses(self.model, self.mp_opt, self.hfn_opt, self._train, self._test, self.device,
                                  self.precision, autocast_cache=False)

    def _build(self, meta_train: Sequence[DomainBatch], meta_test: Sequence[DomainBatch]) -> None:
        self._train = [_static_like(b) for b in meta_train]
        self._test = [_static_like(b) for b in meta_test]
        self._load(meta_train, meta_test)  # warm up on real faces, not on uninitialised memory
        for opt in self.optimisers:
            for group in opt.param_groups:
                if group["momentum"] == 0 or group["dampening"] != 0 or group["nesterov"]:
                    raise ValueError("train.cuda_graph: the zero momentum buffer stands in for SGD's first step "
                                     "only with momentum > 0, no dampening and no Nesterov")
                for p in group["params"]:
                    opt.state[p].setdefault("momentum_buffer", torch.zeros_like(p, memory_format=torch.preserve_format))
        saved = [(t, t.detach().clone()) for t in self._state_tensors()]

        def reset() -> None:
            with torch.no_grad():
                for tensor, copy in saved:
                    tensor.copy_(copy)
            for opt in self.optimisers:
                opt.zero_grad(set_to_none=True)

        self._replay = self.backend.build(self._step, WARMUP, reset)

    def _state_tensors(self) -> list[Tensor]:
        """Everything a step writes: weights, buffers (batch-norm statistics), momentum buffers."""
        momentum = [s["momentum_buffer"] for opt in self.optimisers for s in opt.state.values()]
        return [*self.model.parameters(), *self.model.buffers(), *momentum]

    def _load(self, meta_train: Sequence[DomainBatch], meta_test: Sequence[DomainBatch]) -> None:
        if len(meta_train) != len(self._train) or len(meta_test) != len(self._test):
            raise ValueError(f"train.cuda_graph: captured {len(self._train)} meta-train and {len(self._test)} "
                             f"meta-test batches, got {len(meta_train)} and {len(meta_test)}")
        for static, batch in zip([*self._train, *self._test], [*meta_train, *meta_test]):
            if static.rgb.shape != batch.rgb.shape or static.is_live.shape != batch.is_live.shape:
                raise ValueError(f"train.cuda_graph: a batch of shape {tuple(batch.rgb.shape)} where the capture "
                                 f"has {tuple(static.rgb.shape)} (every batch must keep its size)")
            static.rgb.copy_(batch.rgb, non_blocking=True)
            static.is_live.copy_(batch.is_live, non_blocking=True)


def _static_like(batch: DomainBatch) -> DomainBatch:
    """A copy of ``batch`` (on the model's device, in its memory format) to capture with."""
    return DomainBatch(batch.domain, batch.rgb.clone(memory_format=torch.preserve_format), batch.is_live.clone())
