"""Synthetic demo datasets in the four real FAS datasets' original layouts.

``synthesize_demo`` writes OULU-NPU, CASIA-FASD, Replay-Attack and MSU-MFSD
look-alikes (same folders, file names and containers) from face photos that
ship with scikit-image and matplotlib, so the whole pipeline runs with no
licensed data. ``contact_sheet`` shows one frame per domain and class.
"""

from ..datasets.contact_sheet import contact_sheet
from .synth import synthesize_demo

__all__ = ["contact_sheet", "synthesize_demo"]
