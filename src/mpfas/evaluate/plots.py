"""Evaluation figures: ROC, DET and per-label score histograms (matplotlib Agg).

Every function writes one PNG atomically and returns its path. Curves take
``{name: (scores, is_live)}`` so frame and video level share one figure.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import norm

from mpfas.core import atomic
from mpfas.core.metrics import error_rates, roc_auc, roc_curve

Curves = Mapping[str, tuple[np.ndarray, np.ndarray]]
LABEL_COLORS = {"live": "tab:green", "print": "tab:orange", "replay": "tab:red"}
DET_TICKS = [0.001, 0.01, 0.05, 0.2, 0.5, 0.8]


def plot_roc(curves: Curves, path: Path, *, title: str, marks: Mapping[str, float] | None = None) -> Path:
    """TPR (live accepted) against FPR (attack accepted); ``marks`` are thresholds drawn on the first curve."""
    fig, ax = plt.subplots(figsize=(5, 5))
    for i, (name, (scores, is_live)) in enumerate(curves.items()):
        roc = roc_curve(scores, is_live)
        ax.plot(roc.fpr, roc.tpr, lw=1.8 if i == 0 else 1.2,
                label=f"{name} (AUC {roc_auc(scores, is_live):.3f})")
        if i == 0 and marks:
            for (mark, thr), marker in zip(marks.items(), "os^D"):
                if thr is None or not np.isfinite(thr):
                    continue
                r = error_rates(scores, is_live, thr)
                ax.plot(r.far, 1 - r.frr, marker, ms=7, mfc="none", label=f"{mark} {thr:.3g}")
    ax.plot([0, 1], [0, 1], ":", color="grey", lw=0.8)
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="FPR = FAR = APCER (attacks accepted)",
           ylabel="TPR = 1 - BPCER (live accepted)", title=title)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_det(curves: Curves, path: Path, *, title: str) -> Path:
    """FRR against FAR on normal-deviate axes (DET), where small error rates stay visible."""
    fig, ax = plt.subplots(figsize=(5, 5))
    lo, hi = norm.ppf(5e-4), norm.ppf(0.95)
    for name, (scores, is_live) in curves.items():
        roc = roc_curve(scores, is_live)
        far, frr = roc.fpr, 1 - roc.tpr
        ax.plot(_probit(far), _probit(frr), label=name)
    ticks = _probit(np.array(DET_TICKS))
    names = [f"{100 * t:g}%" for t in DET_TICKS]
    ax.set_xticks(ticks, names, fontsize=8)
    ax.set_yticks(ticks, names, fontsize=8)
    ax.plot([lo, hi], [lo, hi], ":", color="grey", lw=0.8, label="EER line")
    ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel="FAR (APCER)", ylabel="FRR (BPCER)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    return _save(fig, path)


def plot_histograms(scores: np.ndarray, kinds: Sequence[str], path: Path, *, title: str,
                    thresholds: Mapping[str, float] | None = None,
                    reference: tuple[np.ndarray, Sequence[str]] | None = None,
                    reference_name: str = "reference") -> Path:
    """Score distributions of live / print / replay, with the decision thresholds.

    With ``reference`` (e.g. source-val scores) a second panel shows that set,
    so a threshold fixed there can be judged against the target's spread.
    """
    panels = [("target", np.asarray(scores), np.asarray(kinds, dtype=object))]
    if reference is not None:
        panels.append((reference_name, np.asarray(reference[0]), np.asarray(reference[1], dtype=object)))
    everything = np.concatenate([p[1] for p in panels])
    bins = np.linspace(float(everything.min()), float(everything.max()) + 1e-9, 26)
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False, sharex=True)
    for ax, (name, s, k) in zip(axes[0], panels):
        for kind, color in LABEL_COLORS.items():
            sel = s[k == kind]
            if sel.size:
                ax.hist(sel, bins=bins, histtype="step", lw=1.6, color=color, density=True,
                        label=f"{kind} (n={sel.size})")
        for (tname, thr), style in zip((thresholds or {}).items(), ("--", "-.", ":")):
            if thr is None or not np.isfinite(thr):
                continue
            ax.axvline(thr, color="black", ls=style, lw=1, label=f"{tname} thr. {thr:.3g}")
        ax.set(title=f"{name}", xlabel="video score (higher = live)", ylabel="density")
        ax.legend(fontsize=7)
    fig.suptitle(title)
    return _save(fig, path)


def _probit(p: np.ndarray) -> np.ndarray:
    return norm.ppf(np.clip(p, 1e-4, 1 - 1e-4))


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return atomic.write_bytes(path, buf.getvalue())
