"""Face anti-spoofing metrics, defined once (docs/method.md, "Metrics").

Conventions used everywhere in the project:

* live (bona fide) is the positive class, ``is_live`` is 1 for live and 0 for
  an attack;
* a higher score means "more likely live";
* the decision rule is **live iff score >= threshold**.

So FAR (an attack accepted as live) is the ROC's false-positive rate and is the
ISO/IEC 30107-3 APCER; FRR (a live face rejected) is 1 - TPR and is the BPCER.
HTER = (FAR + FRR) / 2 at a stated threshold; ACER = (max-over-types APCER +
BPCER) / 2.

Candidate thresholds are the distinct scores (plus +inf, "reject everything"),
so every reported threshold is one that can actually be applied to the data.
Every function raises ``ValueError`` naming ``where`` when the data holds only
one class, instead of returning NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import sklearn.metrics


@dataclass(frozen=True)
class ErrorRates:
    """Error rates at one threshold (decision: live iff score >= threshold)."""

    far: float  # attacks accepted as live / attacks  (= APCER over all attacks)
    frr: float  # live rejected / live                 (= BPCER)
    hter: float  # (far + frr) / 2


@dataclass(frozen=True)
class IsoRates:
    """ISO/IEC 30107-3 rates at one threshold.

    ``apcer`` is the maximum over the attack types present (as the standard
    reports it), ``apcer_per_type`` the per-type values.
    """

    apcer: float
    apcer_per_type: dict[str, float]
    bpcer: float
    acer: float


@dataclass(frozen=True)
class RocCurve:
    """ROC points, from the strictest threshold (+inf) to the loosest."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray


def check_binary(scores, is_live, where: str = "scores") -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert inputs; raise ValueError naming ``where`` if unusable."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(is_live).ravel()
    if s.shape != y.shape:
        raise ValueError(f"{where}: {s.size} scores but {y.size} labels")
    if s.size and not np.all(np.isfinite(s)):
        raise ValueError(f"{where}: {int((~np.isfinite(s)).sum())} scores are NaN or infinite")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"{where}: is_live must hold only 0 and 1")
    y = y.astype(np.int64)
    n_live = int(y.sum())
    n_spoof = int(y.size - n_live)
    if n_live == 0 or n_spoof == 0:
        raise ValueError(
            f"{where}: needs both live and attack samples, found {n_live} live and {n_spoof} attack; "
            "the metric is undefined for a single class"
        )
    return s, y


def roc_curve(scores, is_live, where: str = "scores") -> RocCurve:
    """Full ROC: one point per distinct score plus the (0, 0) point at +inf (scikit-learn's, with
    no point dropped: every distinct score is a candidate threshold)."""
    s, y = check_binary(scores, is_live, where)
    fpr, tpr, thresholds = sklearn.metrics.roc_curve(y, s, drop_intermediate=False)
    return RocCurve(fpr=fpr, tpr=tpr, thresholds=thresholds)


def roc_auc(scores, is_live, where: str = "scores") -> float:
    """Area under the ROC (ties count one half): the trapezoids over the full curve."""
    roc = roc_curve(scores, is_live, where)
    return float(sklearn.metrics.auc(roc.fpr, roc.tpr))


def _far_frr(roc: RocCurve) -> tuple[np.ndarray, np.ndarray]:
    return roc.fpr, 1.0 - roc.tpr


def eer(scores, is_live, where: str = "scores") -> tuple[float, float]:
    """Equal error rate and its threshold.

    The threshold is the candidate where |FAR - FRR| is smallest (ties: the
    lower mean error); the rate is (FAR + FRR) / 2 there, i.e. the HTER at the
    EER threshold. With few samples FAR and FRR need not be exactly equal.
    """
    roc = roc_curve(scores, is_live, where)
    far, frr = _far_frr(roc)
    gap = np.abs(far - frr)
    mean = (far + frr) / 2
    idx = np.lexsort((mean, gap))[0]
    return float(mean[idx]), float(roc.thresholds[idx])


def error_rates(scores, is_live, threshold: float, where: str = "scores") -> ErrorRates:
    """FAR, FRR and HTER at ``threshold`` (live iff score >= threshold)."""
    s, y = check_binary(scores, is_live, where)
    accept = s >= threshold
    far = float(accept[y == 0].mean())
    frr = float((~accept[y == 1]).mean())
    return ErrorRates(far=far, frr=frr, hter=(far + frr) / 2)


def best_hter(scores, is_live, where: str = "scores") -> tuple[float, float]:
    """Lowest HTER over all candidate thresholds, and that threshold.

    This is the official code's MIN_HTER: an oracle when run on the test set.
    """
    roc = roc_curve(scores, is_live, where)
    far, frr = _far_frr(roc)
    hter = (far + frr) / 2
    idx = int(np.argmin(hter))
    return float(hter[idx]), float(roc.thresholds[idx])


def iso_rates(scores, is_live, attack_types, threshold: float, where: str = "scores") -> IsoRates:
    """APCER per attack type (and its maximum), BPCER and ACER at ``threshold``.

    ``attack_types`` names each sample's presentation-attack instrument species
    (e.g. "print", "replay"); it is ignored for live samples.
    """
    s, y = check_binary(scores, is_live, where)
    kinds = np.asarray(attack_types, dtype=object).ravel()
    if kinds.shape != s.shape:
        raise ValueError(f"{where}: {s.size} scores but {kinds.size} attack types")
    accept = s >= threshold
    per_type = {
        str(k): float(accept[(y == 0) & (kinds == k)].mean())
        for k in sorted({str(k) for k in kinds[y == 0]})
    }
    apcer = max(per_type.values())
    bpcer = float((~accept[y == 1]).mean())
    return IsoRates(apcer=apcer, apcer_per_type=per_type, bpcer=bpcer, acer=(apcer + bpcer) / 2)


def tpr_at_fpr(scores, is_live, target_fpr: float, where: str = "scores") -> float | None:
    """Highest TPR among thresholds whose FPR <= ``target_fpr``.

    Returns ``None`` when the attack sample is too small to resolve that FPR
    (fewer than 1 / target_fpr attacks: then only FPR = 0 qualifies and the
    number would answer a stricter question).
    """
    if not 0 < target_fpr < 1:
        raise ValueError(f"{where}: target FPR {target_fpr} must be in (0, 1)")
    roc = roc_curve(scores, is_live, where)
    n_spoof = int(np.asarray(is_live).size - np.asarray(is_live).sum())
    if n_spoof * target_fpr < 1 - 1e-9:
        return None
    ok = roc.fpr <= target_fpr + 1e-12
    return float(roc.tpr[ok].max())


def min_attacks_for_fpr(target_fpr: float) -> int:
    """How many attack samples are needed before ``tpr_at_fpr`` reports a number."""
    return math.ceil(1 / target_fpr - 1e-9)
