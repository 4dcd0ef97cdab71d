"""Bootstrap 95% intervals that resample *videos*, not frames.

Frames of one video are strongly correlated, so resampling frames would give
intervals that are far too narrow. Each replicate draws videos with
replacement, separately within live and attack videos (a stratified bootstrap:
every replicate keeps both classes, so the metric is always defined), and
keeps all frames of each drawn video.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mpfas.core.metrics import check_binary

Statistic = Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class Interval:
    """Percentile interval; ``low <= estimate <= high`` always holds."""

    estimate: float
    low: float
    high: float
    resamples: int

    def as_list(self) -> list[float]:
        return [self.low, self.high]


def bootstrap_ci(
    scores,
    is_live,
    statistic: Statistic,
    *,
    groups=None,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    where: str = "scores",
) -> Interval:
    """Percentile interval of ``statistic(scores, is_live)`` over video resamples.

    ``groups`` gives each sample's video (any hashable ids); without it every
    sample is its own video. All samples of one group must share a label.
    The interval is widened to include the point estimate if needed (this only
    happens for very skewed, discrete bootstrap distributions) so that a table
    never shows an estimate outside its own interval.
    """
    s, y = check_binary(scores, is_live, where)
    estimate = float(statistic(s, y))
    if resamples <= 0:
        return Interval(estimate, estimate, estimate, 0)
    if not 0 < level < 1:
        raise ValueError(f"{where}: confidence level {level} must be in (0, 1)")
    if groups is None:
        group_idx = np.arange(s.size)
    else:
        _, group_idx = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    n_groups = int(group_idx.max()) + 1
    group_label = np.full(n_groups, -1)
    for g, lab in zip(group_idx, y):
        if group_label[g] not in (-1, lab):
            raise ValueError(f"{where}: a video holds both live and attack samples")
        group_label[g] = lab
    order, starts, sizes = _layout(group_idx, n_groups)
    live_groups = np.flatnonzero(group_label == 1)
    spoof_groups = np.flatnonzero(group_label == 0)

    rng = np.random.default_rng(seed)
    values = np.empty(resamples)
    for i in range(resamples):
        picked = np.r_[
            rng.choice(live_groups, live_groups.size, replace=True),
            rng.choice(spoof_groups, spoof_groups.size, replace=True),
        ]
        idx = _gather(order, starts[picked], sizes[picked])
        values[i] = statistic(s[idx], y[idx])
    alpha = (1 - level) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return Interval(
        estimate=estimate,
        low=float(min(low, estimate)),
        high=float(max(high, estimate)),
        resamples=resamples,
    )


def _layout(group_idx: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample order grouped by video, and each video's start and size in it."""
    order = np.argsort(group_idx, kind="stable")
    bounds = np.searchsorted(group_idx[order], np.arange(n_groups + 1))
    return order, bounds[:-1], np.diff(bounds)


def _gather(order: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Indices of all samples of the picked videos (vectorised concatenation)."""
    offsets = np.cumsum(sizes) - sizes
    within = np.arange(int(sizes.sum())) - np.repeat(offsets, sizes)
    return order[np.repeat(starts, sizes) + within]
