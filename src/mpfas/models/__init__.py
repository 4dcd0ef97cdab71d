"""HFN + Meta Pattern models (``build_model(params.model)``), the backbones every method shares,
checkpoints, and scoring. Any registered method's network is built by
``mpfas.methods.build_model``.

``model(rgb)`` takes a B x 3 x input_size x input_size batch in [0, 1] and returns a
``ModelOutput(map, logits, pattern)``; ``frame_score`` turns it into a liveness score
(higher = live).
"""

from mpfas.models.fpn import FPNStream, ResNetBody
from mpfas.models.hfn import (
    HierarchicalFusionNetwork,
    MetaPatternFAS,
    ModelOutput,
    build_model,
    frame_score,
)
from mpfas.models.pattern import (
    PATTERN_NAMES,
    HSVPattern,
    LBPPattern,
    MetaPatternExtractor,
    YCrCbPattern,
    build_pattern,
)
from mpfas.models.weights import RandomInitWarning, load_pretrained

__all__ = [
    "PATTERN_NAMES",
    "FPNStream",
    "HSVPattern",
    "HierarchicalFusionNetwork",
    "LBPPattern",
    "MetaPatternExtractor",
    "MetaPatternFAS",
    "ModelOutput",
    "RandomInitWarning",
    "ResNetBody",
    "YCrCbPattern",
    "build_model",
    "build_pattern",
    "frame_score",
    "load_pretrained",
]
