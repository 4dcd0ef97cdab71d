"""Metrics, bootstrap intervals, plots, the evaluate stage and the report.

``mpfas.core.metrics`` is the one place metrics are defined; training's
source-val selection and the evaluate stage both use it.
"""

from mpfas.core.metrics import (
    ErrorRates,
    IsoRates,
    RocCurve,
    best_hter,
    eer,
    error_rates,
    iso_rates,
    roc_auc,
    roc_curve,
    tpr_at_fpr,
)

__all__ = [
    "ErrorRates",
    "IsoRates",
    "RocCurve",
    "best_hter",
    "eer",
    "error_rates",
    "iso_rates",
    "roc_auc",
    "roc_curve",
    "tpr_at_fpr",
]
