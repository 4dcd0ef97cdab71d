"""Synthetic demo datasets in the four real FAS datasets' original layouts.

``synthesize_demo`` writes OULU-NPU, CASIA-FASD, Replay-Attack and MSU-MFSD
look-alikes (same folders, file names and containers) from face photos that
ship with scikit-image and matplotlib, so the whole pipeline runs with no
licensed data (the raw stage's contact sheet shows one frame per domain and class).
"""

from mpfas.demo.synth import synthesize_demo

__all__ = ["synthesize_demo"]
