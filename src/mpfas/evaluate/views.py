"""Two more views of a protocol's target numbers, from the target scores training recorded.

The evaluate stage's own numbers judge one checkpoint, ``best.pt``, picked by
``train.select``. Readers of cross-domain FAS papers also ask for:

* **paper-style**: the checkpoint and the threshold both chosen on the target, by the
  method's official rule (``mpfas.core.selection.OracleRule``): HFN+MP's trainer keeps the lowest
  target frame HTER with the threshold swept on the target (the first on ties), SSDG-R's the
  lowest target video HTER at the target's EER threshold (the last on ties). It is the
  number to set beside published ones; it leaks the test set.
* **last N**: mean ± sample std of the same HTER and AUC over the last ``evaluate.last_n``
  evaluations. No checkpoint is picked, so no single lucky evaluation decides it; its
  thresholds still come from the target.

Training scores the target at every evaluation with the evaluate stage's scoring
(``score`` section) and writes it to its validation curve
(``plots/train/source_val/<P>.csv``, columns ``target_*``), so at ``best.pt``'s iteration the
curve holds the evaluate stage's numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from mpfas.core.selection import OracleRule
from mpfas.core.stats import Stat

PAPER_STYLE = ("checkpoint: {rule} over the training evaluations; threshold: chosen on the target "
               "(leaks the test set)")
_BEFORE_RULE, _AFTER_RULE = PAPER_STYLE.split("{rule}")


def rule_of(chosen: str) -> str:
    """The method's rule inside a paper-style ``chosen`` text (the inverse of its template)."""
    return chosen.removeprefix(_BEFORE_RULE).removesuffix(_AFTER_RULE)


LAST_N = "checkpoint: none, the last {n} evaluations averaged; threshold: chosen on the target at each"


def target_views(curve: Path, last_n: int, oracle: OracleRule) -> dict[str, Any] | None:
    """The paper-style and last-N views (fractions) from a training curve, by the method's
    official rule (``oracle``: which target column, which of equal values), or None when the
    curve holds no target evaluations (a training run older than these views)."""
    if not Path(curve).is_file():
        return None
    table = pd.read_csv(curve)
    hter, auc = oracle.column, oracle.auc_column
    if not {hter, auc} <= set(table.columns):
        return None
    table = table.dropna(subset=[hter, auc]).sort_values("step", kind="stable").reset_index(drop=True)
    if table.empty:
        return None
    values = table[hter].to_numpy()
    # idxmin is the first row holding the minimum; "later" takes the last one (an official <=)
    pick = int(values.argmin()) if oracle.ties == "earlier" else int(len(values) - 1 - values[::-1].argmin())
    best = table.iloc[pick]
    last = table.tail(last_n)
    h, a = Stat.of(last[hter]), Stat.of(last[auc])
    return {
        "evaluations": len(table),
        "paper_style": {"iteration": int(best["step"]), "hter": float(best[hter]), "auc": float(best[auc]),
                        "level": oracle.level, "chosen": PAPER_STYLE.format(rule=oracle.describe)},
        "last_n": {"n": len(last), "requested": last_n, "iterations": [int(s) for s in last["step"]],
                   "hter": {"mean": h.mean, "std": h.std}, "auc": {"mean": a.mean, "std": a.std},
                   "level": oracle.level, "chosen": LAST_N.format(n=len(last))},
    }
