"""How a method's official code picks its checkpoint on the target test set.

Each registered method (``mpfas.methods``) states its rule; training uses it under
``train.select: target_oracle`` and the report's paper-style view to set numbers beside the
published ones. It lives here, below both, so the report reads it without importing a model.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OracleRule:
    """The training-curve column the official trainer minimises over its target evaluations,
    the AUC reported beside it, and which of equal values wins. It leaks the test set."""

    column: str  # e.g. target_frame_min_hter (HFN+MP) | target_hter (SSDG-R)
    auc_column: str  # e.g. target_frame_auc | target_auc
    level: str  # frame | video: what the two columns score
    ties: str  # "earlier" (strict <) | "later" (<=)
    describe: str
