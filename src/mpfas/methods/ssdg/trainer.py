"""One SSDG-R training step, as the official trainer takes it (docs/methods.md).

Each step draws one balanced batch per source domain (live then spoof, domains in the
protocol's order, which also numbers them for the discriminator and the triplet classes),
runs the network once on their concatenation and minimises

    CE(logits, is_live) + lambda_triplet * asymmetric triplet + lambda_adversarial * live-only adversarial

with one SGD (momentum, weight decay) over the network and the discriminator. The lr drops
tenfold at ``ssdg.lr_drop_at`` of the run; the reversal's coefficient follows the official ramp
over ``ssdg.grl_horizon`` of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mpfas.core.config import Params
from mpfas.methods.ssdg.losses import asymmetric_triplet_loss, live_adversarial_loss, triplet_labels
from mpfas.methods.ssdg.model import Discriminator, grl_coefficient
from mpfas.models.inference import autocast
from mpfas.train.data import concat
from mpfas.train.execution import channels_last


class SSDGTrainer:
    def __init__(self, model: nn.Module, params: Params, sources: Sequence[str]) -> None:
        self.model, self.train_cfg, self.cfg = model, params.train, params.ssdg
        self.sources = list(sources)
        device = next(model.parameters()).device
        self.discriminator = Discriminator(len(self.sources)).to(device)
        self.discriminator.train()
        groups = [{"params": list(model.parameters())}, {"params": list(self.discriminator.parameters())}]
        self.opt = torch.optim.SGD(groups, lr=self.cfg.lr, momentum=self.cfg.momentum,
                                   weight_decay=self.cfg.weight_decay)
        iterations = self.train_cfg.iterations
        self.drop_after = round(self.cfg.lr_drop_at * iterations)
        self.horizon = self.cfg.grl_horizon * iterations

    def lr_at(self, it: int) -> float:
        """``ssdg.lr`` up to ``lr_drop_at`` of the run, a tenth of it after (the official two steps)."""
        return self.cfg.lr if it <= self.drop_after else self.cfg.lr * 0.1

    def step(self, it: int, domains: Sequence[str], draw: Callable[[str], Any], device: torch.device,
             sync: Callable[..., None] | None = None) -> dict[str, float]:
        nhwc = channels_last(self.train_cfg, device)
        batches = [draw(d).to(device, nhwc) for d in self.sources]  # the protocol's order, not the shuffle
        batch = concat(batches)
        domain = torch.cat([torch.full((len(b.is_live),), i, dtype=torch.int64, device=device)
                            for i, b in enumerate(batches)])
        for group in self.opt.param_groups:
            group["lr"] = self.lr_at(it)
        coeff = grl_coefficient(it, self.horizon)
        with autocast(device, self.train_cfg.precision):
            out = self.model(batch.rgb)
            live = batch.is_live.bool()
            domain_logits = self.discriminator(out.feature[live], coeff)
        feature = out.feature.float()
        cls = F.cross_entropy(out.logits.float(), batch.is_live)
        triplet = asymmetric_triplet_loss(feature, triplet_labels(batch.is_live, domain), self.cfg.triplet_margin)
        adversarial = live_adversarial_loss(domain_logits.float(), domain[live])
        total = cls + self.cfg.lambda_triplet * triplet + self.cfg.lambda_adversarial * adversarial
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        if sync is not None:
            sync([p for g in self.opt.param_groups for p in g["params"]])
        self.opt.step()
        values = torch.stack([total, cls, triplet, adversarial]).detach().tolist()
        return dict(zip(("loss", "cls", "triplet", "adversarial"), values)) | {"grl": coeff}

    def learning_rates(self) -> dict[str, float]:
        return {"lr": self.opt.param_groups[0]["lr"]}

    def roles(self, domains: Sequence[str]) -> str:
        return f"sources {self.sources} (discriminator classes in this order)"

    def state_dict(self) -> dict[str, Any]:
        return {"sgd": self.opt.state_dict(), "discriminator": self.discriminator.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt.load_state_dict(state["sgd"])
