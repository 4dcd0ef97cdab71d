"""The repository's params.yaml as typed config, with per-test overrides.

params.yaml is the one source of defaults (the config dataclasses hold none), so tests build
their settings from it: ``dflt.train(iterations=3)`` is params.yaml's train section with one
knob changed, ``dflt.params(train=...)`` the whole params. One exception: the model section
is the two-stream ResNet-18 from random weights unless a test asks otherwise. The model and
training mechanics tests do not depend on the demo's backbone (EfficientNet-Lite0 from its
bundled ImageNet file, tested in test_backbones and end to end in test_pipeline), and random
weights keep them free of file reads.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from mpfas.core import config as _config

PARAMS_FILE = Path(__file__).resolve().parents[2] / "params.yaml"
DEFAULTS = _config.load_params(PARAMS_FILE)
DEFAULTS = replace(DEFAULTS, model=replace(DEFAULTS.model, backbone="resnet18", pretrained=""))


def params(**sections) -> _config.Params:
    return replace(DEFAULTS, **sections)


def _section(name: str):
    def build(**changes):
        return replace(getattr(DEFAULTS, name), **changes)
    build.__name__ = name
    return build


data, demo, extract, align, manifests, model, train, score, evaluate, runtime = (
    _section(n) for n in ("data", "demo", "extract", "align", "manifests", "model", "train", "score", "evaluate",
                          "runtime"))
