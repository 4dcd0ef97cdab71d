"""SSDG-R (Jia et al., "Single-Side Domain Generalization for Face Anti-Spoofing", CVPR 2020)
as a registered method: ``model.py`` its network, ``losses.py`` its two extra losses,
``trainer.py`` its step. docs/methods.md compares it with the official code
(taylover-pei/SSDG-CVPR2020)."""

from __future__ import annotations

from torch import nn

from mpfas.core.config import ModelConfig
from mpfas.methods import Method, OracleRule, register_method
from mpfas.methods.ssdg.model import SSDGNet
from mpfas.methods.ssdg.trainer import SSDGTrainer
from mpfas.models.weights import init_backbones


def build_ssdg(cfg: ModelConfig) -> SSDGNet:
    """The network with ImageNet weights in its body; for a ResNet, layer4 then starts from
    torchvision's random init again, as the official embedder's layer4 does."""
    cfg.validate()
    model = SSDGNet(cfg.backbone, cfg.input_size, cfg.channel_order)
    init_backbones(model, cfg)
    if not cfg.random_init and hasattr(model.body, "layer4"):  # a torchvision ResNet body (backbones.resnet)
        fresh: nn.Module = type(model.body)(model.body.arch)
        model.body.layer4.load_state_dict(fresh.layer4.state_dict())
    return model


SSDG = register_method(Method(
    name="ssdg",
    title="SSDG-R (Jia et al., CVPR 2020)",
    build=build_ssdg,
    trainer=SSDGTrainer,
    # the official trainer evaluates the target every 10 iterations and keeps the checkpoint when
    # the video-level HTER at the target's own EER threshold is <= the best so far
    oracle=OracleRule("target_hter", "target_auc", "video", "later",
                      "the lowest target video HTER at the target's EER threshold (last on ties)"),
))
