"""HFN+MP (Cai et al., IEEE TIFS 2022) as a registered method.

Its network is ``mpfas.models.hfn`` (the two-stream Hierarchical Fusion Network fed by a Meta
Pattern extractor) and its step ``mpfas.train.step`` (the official alternating scheme, or the
bilevel reading); docs/method.md describes both against the official code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from mpfas.core.config import ModelConfig, Params
from mpfas.methods import Method, OracleRule, register_method


class HFNTrainer:
    """SGD on the MP extractor and on the HFN, one ``meta_iteration`` per step."""

    def __init__(self, model: nn.Module, params: Params, sources: Sequence[str] = ()) -> None:
        from mpfas.train.step import Optimisers

        self.model, self.cfg = model, params.train
        self.opt = Optimisers.for_model(model, self.cfg)

    def step(self, it: int, domains: Sequence[str], draw: Callable[[str], Any], device: torch.device,
             sync: Callable[..., None] | None = None) -> dict[str, float]:
        from mpfas.train.step import meta_iteration

        stats = meta_iteration(self.model, self.opt, draw, domains, self.cfg, device, sync)
        return {**stats, "loss": stats["meta_train_loss"]}  # every method's curve has a "loss"

    def learning_rates(self) -> dict[str, float]:
        return self.opt.learning_rates()

    def roles(self, domains: Sequence[str]) -> str:
        from mpfas.train.step import domain_roles

        train, test = domain_roles(domains, self.opt.meta)
        return f"meta-train {train} meta-test {test}"

    def state_dict(self) -> dict[str, Any]:
        return {"hfn": self.opt.hfn.state_dict(), **({"mp": self.opt.mp.state_dict()} if self.opt.mp else {})}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.opt.hfn.load_state_dict(state["hfn"])
        if self.opt.mp is not None:
            self.opt.mp.load_state_dict(state["mp"])


def _build(cfg: ModelConfig) -> nn.Module:
    from mpfas.models.hfn import build_model

    return build_model(cfg)


HFN_MP = register_method(Method(
    name="hfn_mp",
    title="HFN+MP (Cai et al., IEEE TIFS 2022)",
    build=_build,
    trainer=HFNTrainer,
    # the official trainer keeps a checkpoint when the target's frame-level min HTER (threshold
    # swept on the target) improves strictly (docs/method.md)
    oracle=OracleRule("target_frame_min_hter", "target_frame_auc", "frame", "earlier",
                      "the lowest target frame HTER with the threshold swept on the target (first on ties)"),
))
