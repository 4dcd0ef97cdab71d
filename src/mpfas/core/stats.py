"""Mean ± sample std of a handful of numbers (seeds, the last evaluations of a run)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation (ddof 1; None for one value) over ``n`` values."""

    mean: float | None
    std: float | None
    n: int

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Stat:
        """Missing and non-finite values are left out (pandas' skipna)."""
        series = pd.Series([np.nan if v is None else v for v in values], dtype=float).replace([np.inf, -np.inf], np.nan)
        n = int(series.count())
        if n == 0:
            return cls(None, None, 0)
        return cls(float(series.mean()), float(series.std()) if n > 1 else None, n)
