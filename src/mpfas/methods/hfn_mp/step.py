"""One training iteration: the optimisers and ``meta_iteration`` (draw the batches, take the
algorithm's step). The training loop and ``bench/train_step.py`` both call it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from mpfas.core.config import TrainConfig
from mpfas.methods.hfn_mp.algorithms import alternating_step, bilevel_step
from mpfas.methods.hfn_mp.graph import GraphedStep
from mpfas.train.data import DomainBatch
from mpfas.train.execution import channels_last


@dataclass(frozen=True)
class Optimisers:
    """SGD on the MP extractor (``mp``, lr = meta_lr x K; None when the pattern learns nothing,
    i.e. no meta-learning) and on the HFN."""

    mp: torch.optim.SGD | None
    hfn: torch.optim.SGD

    @classmethod
    def for_model(cls, model: torch.nn.Module, cfg: TrainConfig) -> Optimisers:
        meta = any(True for _ in model.pattern_parameters())
        mp = (torch.optim.SGD(model.pattern_parameters(), lr=cfg.meta_lr * cfg.inner_loops,
                              momentum=cfg.momentum, weight_decay=0.0) if meta else None)
        return cls(mp, torch.optim.SGD(model.hfn_parameters(), lr=cfg.meta_lr, momentum=cfg.momentum,
                                       weight_decay=0.0))

    @property
    def meta(self) -> bool:
        return self.mp is not None

    def learning_rates(self) -> dict[str, float]:
        lrs = {"lr_hfn": self.hfn.param_groups[0]["lr"]}
        if self.mp is not None:
            lrs["lr_mp"] = self.mp.param_groups[0]["lr"]
        return lrs


def domain_roles(domains: Sequence[str], meta: bool) -> tuple[list[str], str | None]:
    """(meta-train domains, meta-test domain) of a shuffled domain list: the last one is meta-test;
    without meta-learning every domain trains the HFN."""
    return (list(domains[:-1]), domains[-1]) if meta else (list(domains), None)


def meta_iteration(model: torch.nn.Module, opt: Optimisers, draw: Callable[[str], DomainBatch],
                   domains: Sequence[str], cfg: TrainConfig, device: torch.device,
                   sync: Callable[..., None] | None = None, graph: GraphedStep | None = None) -> dict[str, float]:
    """One training iteration over ``domains`` (already shuffled): draw the meta-test batches
    (K for the alternating scheme, one for bilevel), then one batch per meta-train domain, then
    take the algorithm's step (``graph``: the alternating step replayed from its CUDA graph).
    Batches take the memory format ``train.channels_last`` gives the model
    (``execution.prepare_model``). Returns this rank's loss statistics."""
    train_doms, test_dom = domain_roles(domains, opt.meta)
    nhwc = channels_last(cfg, device)
    meta_test: list[DomainBatch] = []
    if test_dom is not None:
        n_test = cfg.inner_loops if cfg.algorithm == "alternating" else 1
        meta_test = [draw(test_dom).to(device, nhwc) for _ in range(n_test)]
    meta_train = [draw(d).to(device, nhwc) for d in train_doms]
    if graph is not None:
        return graph(meta_train, meta_test)
    if cfg.algorithm == "bilevel" and opt.meta:
        return bilevel_step(model, opt.mp, opt.hfn, meta_train, meta_test[0], cfg.first_order, device,
                            precision=cfg.precision, sync=sync)
    return alternating_step(model, opt.mp, opt.hfn, meta_train, meta_test, device, precision=cfg.precision,
                            sync=sync)
