"""``demo.size: full``: every file of the datasets' official protocols.

OULU-NPU 4950, CASIA-FASD 600, Replay-Attack 1200 (``enroll/`` is left out: no
protocol reads it), MSU-MFSD 280 and ROSE-Youtu 3497 videos, 10527 in all, with the
real names (each dataset file's ``DemoPlan.full``; ROSE-Youtu's from the official HFN+MP
repository's list). Each kind of file is rendered as the small demo renders it (see
layout). The lists are enumerated, not drawn, so only
identities and pixels depend on the seed. A spec's ``subject`` counts the dataset's
subjects in file order, an index into the identities of faces.reuse_identities.
"""

from __future__ import annotations

from mpfas.data import dataset_spec
from mpfas.data.demo_plan import DemoPlan, VideoSpec


def _full(code: str) -> DemoPlan:
    demo = dataset_spec(code).demo
    if demo is None or demo.full is None:
        raise ValueError(f"dataset {code!r} has no full demo plan (demo.size: full)")
    return demo


def full_plan(code: str) -> tuple[list[VideoSpec], dict[str, str]]:
    """Video specs and side files (relative path -> text) of one full-size domain."""
    return _full(code).full()


def subjects(codes: tuple[str, ...]) -> dict[str, int]:
    """Identities each domain needs, in ``codes`` order (the order identities are dealt)."""
    return {code: _full(code).full_subjects for code in codes}
