"""OULU-NPU's intra-dataset metrics: a threshold fixed on Dev, ISO/IEC 30107-3 rates on Test.

The rule of the OULU-NPU protocols (Boulkenafet et al., FG 2017, Sec. IV; ISO/IEC
30107-3): the decision threshold is the EER threshold of the development set; on the
test set APCER is computed per presentation-attack instrument (PAI) species and the
worst one is reported, BPCER over the bona fide (live) videos, ACER = (APCER + BPCER) / 2.
P3 and P4 have six folds (one per left-out phone) and are reported as mean ± std.

The species are the attack labels, print and replay (the paper's "print or display"), as
the evaluate stage's ``apcer_<kind>_val`` keys hold them; the evaluate stage's
``apcer_val``, ``bpcer_val`` and ``acer_val`` of an OULU fold's manifest are exactly
:func:`fold_rates` (its source-val role is the Dev split). The std is the sample standard
deviation (ddof = 1) over the folds, None for a single fold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mpfas.core.metrics import IsoRates, eer, iso_rates

RATES = ("apcer", "bpcer", "acer")


@dataclass(frozen=True)
class FoldRates:
    """Test rates of one fold at the Dev EER threshold."""

    threshold: float
    test: IsoRates


@dataclass(frozen=True)
class MeanStd:
    mean: float
    std: float | None  # None for one fold
    folds: int


def fold_rates(dev_scores, dev_is_live, test_scores, test_is_live, test_pai, where: str = "OULU-NPU") -> FoldRates:
    """Fix the threshold at the Dev EER, then APCER (max over PAI species), BPCER and ACER on Test."""
    _, threshold = eer(dev_scores, dev_is_live, f"{where} dev")
    return FoldRates(threshold, iso_rates(test_scores, test_is_live, test_pai, threshold, f"{where} test"))


def mean_std(values: list[float]) -> MeanStd:
    """Mean and sample standard deviation (ddof = 1) of per-fold values."""
    if not values:
        raise ValueError("no folds to average")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"per-fold values must be finite, got {values}")
    a = np.asarray(values, dtype=np.float64)
    return MeanStd(float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else None, int(a.size))


def over_folds(folds: list[IsoRates]) -> dict[str, MeanStd]:
    """APCER, BPCER and ACER over a protocol's folds (ACER is averaged, not recomputed)."""
    return {key: mean_std([getattr(f, key) for f in folds]) for key in RATES}
