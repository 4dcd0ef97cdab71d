"""Which files each demo domain gets (``demo.size: small``), named as in the real datasets.

The per-dataset rules live in each dataset file's DemoPlan (``mpfas.data``);
``full.py`` lists every official file. Subjects are dealt round-robin over a
dataset's official split folders, so every split gets one when there are at least
as many subjects as splits. Every subject gets about five videos covering live,
print and replay.
"""

from __future__ import annotations

import numpy as np

from mpfas.data import dataset_spec
from mpfas.data.datasets.msu import MSU_TEST, MSU_TRAIN
from mpfas.data.demo_plan import VideoSpec, deal

__all__ = ["MSU_TEST", "MSU_TRAIN", "VideoSpec", "plan"]


def plan(code: str, subjects: int, seed: int) -> tuple[list[VideoSpec], dict[str, str]]:
    """Video specs and side files (relative path -> text) of one demo domain."""
    demo = dataset_spec(code).demo
    if demo is None:
        raise ValueError(f"dataset {code!r} has no demo plan")
    rng = np.random.default_rng([seed, 3, demo.key])
    return demo.small(deal(demo.split_dirs, subjects), rng)
