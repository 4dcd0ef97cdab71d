"""Two more views of a protocol's target numbers, from the target scores training recorded.

The evaluate stage's own numbers judge one checkpoint, ``best.pt``, picked by
``train.select``. Readers of cross-domain FAS papers also ask for:

* **paper-style**: the checkpoint and the threshold both chosen on the target, frame level:
  the lowest target frame HTER (threshold swept on the target) over every evaluation
  during training, the first one on ties, and its frame AUC. This is how the official
  HFN+MP trainer selects, so it is the number to set beside published ones; it leaks
  the test set.
* **last N**: mean ± sample std of the target frame HTER (threshold swept on the target)
  and frame AUC over the last ``evaluate.last_n`` evaluations. No checkpoint is picked, so
  no single lucky evaluation decides it; its thresholds still come from the target.

Training scores the target at every evaluation with the evaluate stage's scoring
(``score`` section) and writes it to its validation curve
(``plots/train/source_val/<P>.csv``, columns ``target_frame_min_hter`` and
``target_frame_auc``), so at ``best.pt``'s iteration the curve holds the evaluate stage's
frame numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from mpfas.core.stats import Stat

HTER, AUC = "target_frame_min_hter", "target_frame_auc"
PAPER_STYLE = ("checkpoint: lowest target frame HTER over the training evaluations (first on ties); "
               "threshold: swept on the target (leaks the test set)")
LAST_N = "checkpoint: none, the last {n} evaluations averaged; threshold: swept on the target at each"


def target_views(curve: Path, last_n: int) -> dict[str, Any] | None:
    """The paper-style and last-N views (fractions) from a training curve, or None when the
    curve holds no target evaluations (a training run older than these views)."""
    if not Path(curve).is_file():
        return None
    table = pd.read_csv(curve)
    if not {HTER, AUC} <= set(table.columns):
        return None
    table = table.dropna(subset=[HTER, AUC]).sort_values("step")
    if table.empty:
        return None
    best = table.loc[table[HTER].idxmin()]  # idxmin: the first row holding the minimum
    last = table.tail(last_n)
    hter, auc = Stat.of(last[HTER]), Stat.of(last[AUC])
    return {
        "evaluations": len(table),
        "paper_style": {"iteration": int(best["step"]), "frame_hter_oracle": float(best[HTER]),
                        "frame_auc": float(best[AUC]), "chosen": PAPER_STYLE},
        "last_n": {"n": len(last), "requested": last_n, "iterations": [int(s) for s in last["step"]],
                   "frame_hter_oracle": {"mean": hter.mean, "std": hter.std},
                   "frame_auc": {"mean": auc.mean, "std": auc.std}, "chosen": LAST_N.format(n=len(last))},
    }
