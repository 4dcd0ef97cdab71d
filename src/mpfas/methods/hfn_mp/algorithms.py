"""One training iteration of HFN+MP: the official alternating scheme, or true bilevel.

``alternating_step`` is what the official code runs (docs/method.md): K SGD steps on the
Meta Pattern (MP) extractor only, each on a fresh meta-test batch, then one SGD step on
the HFN only, on the concatenated meta-train domains with the loss halved. It is
first-order and never differentiates through an update.

``bilevel_step`` is the textbook (MAML/MLDG-style) reading of the paper: a virtual SGD
step of the HFN on meta-train, the meta-test loss of the virtually updated HFN, and its
gradient -- through the virtual step, second order unless ``first_order`` -- into the MP
extractor; then the real HFN step.

Both return plain floats for logging. Loss = MSE(map, all ones for live / all zeros for
spoof) + cross-entropy(logits, is_live).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from mpfas.models.inference import autocast
from mpfas.train.data import DomainBatch, concat

OUTER_SCALE = 0.5
"""The official code halves the meta-train (HFN) loss; kept for every HFN step."""

GradSync = Callable[[Iterable[nn.Parameter]], None]
"""Called with the parameters about to be stepped, after their gradients are set and before
the optimiser step: averages them over ranks under torchrun (``distributed.Context``)."""


@dataclass(frozen=True)
class LossParts:
    total: Tensor
    map: Tensor
    cls: Tensor


def fas_loss(out, is_live: Tensor) -> LossParts:
    """MSE of the map against a constant map (1 live, 0 spoof) + CE of the 2-way logits."""
    pred = out.map.float()
    target = is_live.to(pred.dtype).view(-1, *([1] * (pred.dim() - 1))).expand_as(pred)
    map_loss = F.mse_loss(pred, target)
    cls_loss = F.cross_entropy(out.logits.float(), is_live)
    return LossParts(map_loss + cls_loss, map_loss, cls_loss)


def split_parameters(model: nn.Module) -> tuple[dict[str, nn.Parameter], dict[str, nn.Parameter]]:
    """(MP, HFN) parameters by name, from ``model.pattern_parameters()`` / ``hfn_parameters()``."""
    mp_ids = {id(p) for p in model.pattern_parameters()}
    hfn_ids = {id(p) for p in model.hfn_parameters()}
    mp, hfn = {}, {}
    for name, p in model.named_parameters():
        if id(p) in mp_ids:
            mp[name] = p
        elif id(p) in hfn_ids:
            hfn[name] = p
    return mp, hfn


@contextmanager
def frozen(params: Sequence[nn.Parameter]) -> Iterator[None]:
    """Skip weight gradients of ``params`` (still backpropagating through them)."""
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


def loss_stats(groups: dict[str, Sequence[LossParts]]) -> dict[str, float]:
    """Mean loss, map and class loss of each group of parts, as ``<prefix>_loss`` etc.

    All values leave the device in one transfer (one sync on CUDA, at the end of the step,
    instead of three per group); the means are the same floats as from one ``float()`` each.
    """
    items = [part for parts in groups.values() for part in parts]
    values = torch.stack([torch.stack([p.total, p.map, p.cls]) for p in items]).detach().tolist()
    out, start = {}, 0
    for prefix, parts in groups.items():
        rows, n = values[start:start + len(parts)], len(parts)
        start += n
        out[f"{prefix}_loss"] = sum(r[0] for r in rows) / n
        out[f"{prefix}_map"] = sum(r[1] for r in rows) / n
        out[f"{prefix}_cls"] = sum(r[2] for r in rows) / n
    return out


def alternating_step(model: nn.Module, mp_opt: torch.optim.Optimizer | None, hfn_opt: torch.optim.Optimizer,
                     meta_train: Sequence[DomainBatch], meta_test: Sequence[DomainBatch],
                     device: torch.device, precision: str = "fp32", sync: GradSync | None = None,
                     ) -> dict[str, float]:
    """One official HFN+MP iteration (``alternating_losses``), its losses as floats."""
    return loss_stats(alternating_losses(model, mp_opt, hfn_opt, meta_train, meta_test, device, precision, sync))


def alternating_losses(model: nn.Module, mp_opt: torch.optim.Optimizer | None, hfn_opt: torch.optim.Optimizer,
                       meta_train: Sequence[DomainBatch], meta_test: Sequence[DomainBatch],
                       device: torch.device, precision: str = "fp32", sync: GradSync | None = None,
                       autocast_cache: bool = True) -> dict[str, Sequence[LossParts]]:
    """One official HFN+MP iteration; returns its loss tensors by group, never reading them
    back (so that ``graph.GraphedStep`` can capture it as one CUDA graph).

    ``meta_test`` holds K fresh batches of the meta-test domain (one MP step each);
    ``meta_train`` one batch per meta-train domain (concatenated for the HFN step). With
    ``mp_opt`` None (no learnable pattern) the inner steps are skipped. Losses logged
    unscaled; the HFN step minimises ``OUTER_SCALE`` x the meta-train loss. ``precision``:
    fp32 (official) or bf16 autocast on CUDA (ignored on CPU); losses are computed in fp32.
    ``sync`` (data-parallel runs) averages the gradients of every MP step and of the HFN step
    over ranks before the step. ``autocast_cache`` False: autocast recasts the weights every
    forward pass (what CUDA graph capture requires).
    """
    mp, hfn = split_parameters(model)
    groups: dict[str, Sequence[LossParts]] = {}
    if mp_opt is not None and meta_test:
        inner = []
        with frozen(list(hfn.values())):
            for batch in meta_test:
                with autocast(device, precision, cache=autocast_cache):
                    out = model(batch.rgb)
                parts = fas_loss(out, batch.is_live)
                mp_opt.zero_grad(set_to_none=True)
                parts.total.backward()
                if sync is not None:
                    sync(mp.values())
                mp_opt.step()
                inner.append(parts)
        groups["meta_test"] = inner

    batch = concat(meta_train)
    with frozen(list(mp.values())):
        with autocast(device, precision, cache=autocast_cache):
            out = model(batch.rgb)
        parts = fas_loss(out, batch.is_live)
        hfn_opt.zero_grad(set_to_none=True)
        (OUTER_SCALE * parts.total).backward()
        if sync is not None:
            sync(hfn.values())
        hfn_opt.step()
    groups["meta_train"] = [parts]
    return groups


def bilevel_meta_gradients(model: nn.Module, meta_train: Sequence[DomainBatch], meta_test: DomainBatch,
                           inner_lr: float, first_order: bool, device: torch.device, precision: str = "fp32",
                           ) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, float]]:
    """Gradients of one bilevel iteration, without stepping anything.

    Returns (MP grads of the meta-test loss after a virtual HFN step, HFN grads of the
    meta-train loss, loss stats). With ``first_order`` the virtual step's gradient is
    detached, so MP only sees the meta-test loss directly (no second-order term).
    """
    mp, hfn = split_parameters(model)
    train = concat(meta_train)
    with autocast(device, precision):
        out = model(train.rgb)
    train_parts = fas_loss(out, train.is_live)
    names = list(hfn)
    grads = torch.autograd.grad(OUTER_SCALE * train_parts.total, [hfn[n] for n in names],
                                create_graph=not first_order, allow_unused=True)
    virtual = {}
    for name, g in zip(names, grads):
        if g is None:
            virtual[name] = hfn[name]
        else:
            virtual[name] = hfn[name] - inner_lr * (g.detach() if first_order else g)
    with autocast(device, precision):
        out_test = functional_call(model, {**mp, **virtual}, (meta_test.rgb,))
    test_parts = fas_loss(out_test, meta_test.is_live)
    mp_names = list(mp)
    mp_grads = torch.autograd.grad(test_parts.total, [mp[n] for n in mp_names], allow_unused=True)
    mp_out = {n: (torch.zeros_like(mp[n]) if g is None else g.detach()) for n, g in zip(mp_names, mp_grads)}
    hfn_out = {n: (torch.zeros_like(hfn[n]) if g is None else g.detach()) for n, g in zip(names, grads)}
    stats = loss_stats({"meta_train": [train_parts], "meta_test": [test_parts]})
    return mp_out, hfn_out, stats


def bilevel_step(model: nn.Module, mp_opt: torch.optim.Optimizer, hfn_opt: torch.optim.Optimizer,
                 meta_train: Sequence[DomainBatch], meta_test: DomainBatch, first_order: bool,
                 device: torch.device, precision: str = "fp32", sync: GradSync | None = None) -> dict[str, float]:
    """One bilevel iteration: MP step on the post-virtual-step meta-test loss, then the real
    HFN step on the meta-train loss.

    The virtual step is plain SGD (no momentum) at the HFN's lr. There is one MP step per
    iteration on one meta-test batch; ``train.inner_loops`` only scales the MP lr, as in
    the alternating scheme.
    """
    inner_lr = hfn_opt.param_groups[0]["lr"]
    mp_grads, hfn_grads, stats = bilevel_meta_gradients(model, meta_train, meta_test, inner_lr,
                                                        first_order, device, precision)
    mp, hfn = split_parameters(model)
    _step_with(mp_opt, mp, mp_grads, sync)
    _step_with(hfn_opt, hfn, hfn_grads, sync)
    return stats


def _step_with(opt: torch.optim.Optimizer, params: dict[str, nn.Parameter],
               grads: dict[str, torch.Tensor], sync: GradSync | None) -> None:
    """Install precomputed gradients, average them over ranks, and step."""
    opt.zero_grad(set_to_none=True)
    for name, p in params.items():
        p.grad = grads[name]
    if sync is not None:
        sync(params.values())
    opt.step()
