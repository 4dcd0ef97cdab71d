"""HFN+MP (Cai et al., IEEE TIFS 2022) as a registered method.

Its network is ``mpfas.models.hfn`` (the two-stream Hierarchical Fusion Network fed by a Meta
Pattern extractor, beside the backbones every method shares), its step ``step.py`` and
``algorithms.py`` (the official alternating scheme, or the bilevel reading); docs/method.md
describes both against the official code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from mpfas.core.config import ConfigError, Params
from mpfas.methods import Method, OracleRule, register_method
from mpfas.methods.hfn_mp.graph import Backend, GraphedStep
from mpfas.methods.hfn_mp.step import Optimisers, domain_roles, meta_iteration
from mpfas.models.hfn import build_model


class HFNTrainer:
    """SGD on the MP extractor and on the HFN, one ``meta_iteration`` per step."""

    def __init__(self, model: nn.Module, params: Params, sources: Sequence[str] = (),
                 graph_backend: Backend | None = None) -> None:
        self.model, self.cfg = model, params.train
        self.opt = Optimisers.for_model(model, self.cfg)
        self.graph = self._graph(graph_backend) if self.cfg.cuda_graph else None

    def _graph(self, backend: Backend | None) -> GraphedStep:
        """``train.cuda_graph``: the step captured on CUDA (``backend``: another capture, for tests)."""
        device = next(self.model.parameters()).device
        if backend is None and device.type != "cuda":
            raise ConfigError(f"train.cuda_graph: true needs a CUDA device, and this run trains on {device.type} "
                              "(runtime.device); set it to false")
        return GraphedStep(self.model, self.opt.mp, self.opt.hfn, device, self.cfg.precision, backend)

    def step(self, it: int, domains: Sequence[str], draw: Callable[[str], Any], device: torch.device,
             sync: Callable[..., None] | None = None) -> dict[str, float]:
        if sync is not None and self.graph is not None:
            raise ConfigError("train.cuda_graph: true captures a single-process step; under torchrun set it to false")
        stats = meta_iteration(self.model, self.opt, draw, domains, self.cfg, device, sync, self.graph)
        return {**stats, "loss": stats["meta_train_loss"]}  # every method's curve has a "loss"

    def learning_rates(self) -> dict[str, float]:
        return self.opt.learning_rates()

    def roles(self, domains: Sequence[str]) -> str:
        train, test = domain_roles(domains, self.opt.meta)
        return f"meta-train {train} meta-test {test}"

    def state_dict(self) -> dict[str, Any]:
        return {"hfn": self.opt.hfn.state_dict(), **({"mp": self.opt.mp.state_dict()} if self.opt.mp else {})}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.opt.hfn.load_state_dict(state["hfn"])
        if self.opt.mp is not None:
            self.opt.mp.load_state_dict(state["mp"])


HFN_MP = register_method(Method(
    name="hfn_mp",
    title="HFN+MP (Cai et al., IEEE TIFS 2022)",
    build=build_model,
    trainer=HFNTrainer,
    # the official trainer keeps a checkpoint when the target's frame-level min HTER (threshold
    # swept on the target) improves strictly (docs/method.md)
    oracle=OracleRule("target_frame_min_hter", "target_frame_auc", "frame", "earlier",
                      "the lowest target frame HTER with the threshold swept on the target (first on ties)"),
))
