"""Metrics checked against scikit-learn and against hand-worked arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from mpfas.core.metrics import (
    best_hter,
    eer,
    error_rates,
    iso_rates,
    roc_auc,
    roc_curve,
    tpr_at_fpr,
)
from mpfas.evaluate.bootstrap import bootstrap_ci


def _random(seed: int, n: int = 200, tied: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = rng.normal(y * 0.8, 1.0)
    if tied:
        s = np.round(s, 0)  # only a handful of distinct values: many ties across classes
    return s, y


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_and_auc_match_sklearn(seed, tied):
    s, y = _random(seed, tied=tied)
    ours = roc_curve(s, y)
    fpr, tpr, thr = sk_roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(ours.fpr, fpr)
    np.testing.assert_allclose(ours.tpr, tpr)
    np.testing.assert_array_equal(ours.thresholds, thr)
    assert roc_auc(s, y) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_auc_extremes_and_all_tied():
    y = np.array([0, 0, 1, 1])
    assert roc_auc([0.1, 0.2, 0.8, 0.9], y) == 1.0
    assert roc_auc([0.9, 0.8, 0.2, 0.1], y) == 0.0
    assert roc_auc([0.5, 0.5, 0.5, 0.5], y) == 0.5


def test_hand_worked_rates_at_threshold():
    # threshold 0.5, decision: live iff score >= 0.5
    # live   0.9 0.8 0.5 0.4 -> accepted 3 (0.5 == threshold counts as live), rejected 1
    #        FRR = BPCER = 1/4 = 0.25
    # print  0.6 0.2 0.1     -> accepted 1 of 3, APCER_print  = 1/3
    # replay 0.55 0.3        -> accepted 1 of 2, APCER_replay = 1/2
    # FAR over all 5 attacks = 2/5 = 0.4, HTER = (0.4 + 0.25) / 2 = 0.325
    # APCER = max(1/3, 1/2) = 0.5, ACER = (0.5 + 0.25) / 2 = 0.375
    scores = [0.9, 0.8, 0.5, 0.4, 0.6, 0.2, 0.1, 0.55, 0.3]
    is_live = [1, 1, 1, 1, 0, 0, 0, 0, 0]
    kinds = ["live"] * 4 + ["print"] * 3 + ["replay"] * 2
    rates = error_rates(scores, is_live, 0.5)
    assert rates.far == pytest.approx(0.4)
    assert rates.frr == pytest.approx(0.25)
    assert rates.hter == pytest.approx(0.325)
    iso = iso_rates(scores, is_live, kinds, 0.5)
    assert iso.apcer_per_type == pytest.approx({"print": 1 / 3, "replay": 0.5})
    assert iso.apcer == pytest.approx(0.5)
    assert iso.bpcer == pytest.approx(0.25)
    assert iso.acer == pytest.approx(0.375)
    # oracle sweep over the distinct scores (sorted: .9L .8L .6P .55R .5L .4L .3R .2P .1P):
    #   t=0.8 -> FAR 0/5, FRR 2/4 -> 0.25;  t=0.5 -> 0.325 (above);
    #   t=0.4 -> FAR 2/5, FRR 0/4 -> 0.20;  t=0.3 -> FAR 3/5, FRR 0 -> 0.30. Best: 0.20 at 0.4
    hter, thr = best_hter(scores, is_live)
    assert hter == pytest.approx(0.2)
    assert thr == 0.4


@pytest.mark.parametrize("seed", [0, 3, 4])
def test_eer_threshold_sanity(seed):
    s, y = _random(seed, n=400)
    rate, thr = eer(s, y)
    at = error_rates(s, y, thr)
    # the reported rate is the HTER at the reported threshold
    assert rate == pytest.approx(at.hter)
    # and FAR, FRR are as close as one sample step allows (continuous scores)
    step = max(1 / y.sum(), 1 / (y.size - y.sum()))
    assert abs(at.far - at.frr) <= step + 1e-12
    # no other threshold brings FAR and FRR closer
    roc = roc_curve(s, y)
    assert abs(at.far - at.frr) <= np.abs(roc.fpr - (1 - roc.tpr)).min() + 1e-12
    # oracle is never worse than EER
    assert best_hter(s, y)[0] <= rate + 1e-12


def test_eer_separable_is_zero():
    rate, thr = eer([0.1, 0.2, 0.3, 0.7, 0.8], [0, 0, 0, 1, 1])
    assert rate == 0.0
    assert thr == 0.7


def test_best_hter_brute_force():
    s, y = _random(5, n=150, tied=True)
    grid = np.r_[np.unique(s), np.inf, -np.inf, np.unique(s) + 0.25]
    brute = min(error_rates(s, y, t).hter for t in grid)
    assert best_hter(s, y)[0] == pytest.approx(brute)


def test_tpr_at_fpr_matches_sklearn_and_is_none_when_unresolvable():
    s, y = _random(6, n=600)
    fpr, tpr, _ = sk_roc_curve(y, s, drop_intermediate=False)
    assert tpr_at_fpr(s, y, 0.01) == pytest.approx(tpr[fpr <= 0.01].max())
    # fewer than 1000 attacks: 0.1% cannot be resolved -> None, never NaN
    assert (y == 0).sum() < 1000
    assert tpr_at_fpr(s, y, 0.001) is None
    # 50 attacks cannot resolve 1% either
    assert tpr_at_fpr(np.r_[s[y == 1], s[y == 0][:50]], np.r_[y[y == 1], np.zeros(50)], 0.01) is None


@pytest.mark.parametrize(
    "fn",
    [
        lambda s, y: roc_auc(s, y, where="OCI-M target"),
        lambda s, y: eer(s, y, where="OCI-M target"),
        lambda s, y: best_hter(s, y, where="OCI-M target"),
        lambda s, y: error_rates(s, y, 0.5, where="OCI-M target"),
        lambda s, y: tpr_at_fpr(s, y, 0.01, where="OCI-M target"),
    ],
)
def test_single_class_raises_clear_error(fn):
    with pytest.raises(ValueError, match=r"OCI-M target: needs both live and attack"):
        fn(np.array([0.2, 0.4, 0.9]), np.array([1, 1, 1]))


def test_nan_scores_rejected():
    with pytest.raises(ValueError, match="NaN"):
        roc_auc([0.1, np.nan], [0, 1])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_bootstrap_interval_contains_estimate(seed):
    rng = np.random.default_rng(seed)
    n_videos = 60
    y_video = rng.integers(0, 2, n_videos)
    y_video[:2] = [0, 1]
    s_video = rng.normal(y_video, 1.0)
    # two frames per video around the video's score
    groups = np.repeat(np.arange(n_videos), 2)
    s = np.repeat(s_video, 2) + rng.normal(0, 0.3, groups.size)
    y = np.repeat(y_video, 2)
    for stat in (roc_auc, lambda a, b: eer(a, b)[0]):
        ci = bootstrap_ci(s, y, stat, groups=groups, resamples=300, seed=seed)
        assert ci.low <= ci.estimate <= ci.high
        assert ci.low < ci.high  # a real spread, not a degenerate interval
        assert ci.estimate == pytest.approx(stat(s, y))
    # deterministic for a seed
    a = bootstrap_ci(s, y, roc_auc, groups=groups, resamples=100, seed=7)
    b = bootstrap_ci(s, y, roc_auc, groups=groups, resamples=100, seed=7)
    assert a == b


def test_bootstrap_resamples_videos_not_frames():
    # 20 videos x 10 identical frames: resampling frames would shrink the interval ~sqrt(10)x
    rng = np.random.default_rng(0)
    y_video = np.r_[np.zeros(10), np.ones(10)].astype(int)
    s_video = rng.normal(y_video * 0.5, 1.0)
    s, y = np.repeat(s_video, 10), np.repeat(y_video, 10)
    by_video = bootstrap_ci(s, y, roc_auc, groups=np.repeat(np.arange(20), 10), resamples=300)
    video_only = bootstrap_ci(s_video, y_video, roc_auc, resamples=300)
    assert by_video.high - by_video.low == pytest.approx(video_only.high - video_only.low, rel=0.35)
    with pytest.raises(ValueError, match="both live and attack"):
        bootstrap_ci(s, y, roc_auc, groups=np.zeros(s.size), resamples=10)
