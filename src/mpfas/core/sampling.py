"""The one rule for taking ``k`` of ``n`` ordered items evenly.

Used for the frames the extract stage (and ``predict``) samples from a video and for
the aligned faces training, evaluation and ``predict`` use per video, so "k frames of a
video" means the same everywhere. Imports nothing of mpfas: every layer may use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def even_indices(n: int, k: int) -> list[int]:
    """``k`` of the indices ``0 .. n-1`` spread evenly, first and last included.

    ``k >= n`` gives every index; ``n <= 0`` or ``k <= 0`` none. ``k == 1`` gives the
    middle one, ``(n - 1) // 2``: one sample stands for the whole video best from its
    centre, away from the start and end of a recording (an attack being set up or taken
    away), and the extract stage has always taken the middle frame, so frames it stored
    keep their meaning. Positions are rounded half to even from the exact value
    ``i (n-1) / (k-1)``. The official reader takes ``numpy.linspace(0, n-1, k, dtype=int)``,
    which truncates: the same for the paper's 2 faces per video (first and last), one index
    lower for the middle of 3 when ``n - 1`` is odd and ``(n - 1) / 2`` rounds up.
    """
    if n <= 0 or k <= 0:
        return []
    if k >= n:
        return list(range(n))
    if k == 1:
        return [(n - 1) // 2]
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def pick_evenly(items: Sequence[T], k: int) -> list[T]:
    """``k`` of ``items`` by :func:`even_indices`; all of them when ``k`` is 0."""
    if k < 0:
        raise ValueError(f"{k} items asked for; must be >= 0 (0 = all)")
    if k == 0:
        return list(items)
    return [items[i] for i in even_indices(len(items), k)]
