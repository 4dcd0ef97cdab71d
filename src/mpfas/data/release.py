"""Is a real dataset copy the whole official release?

The paper's protocols use every video of each dataset; a copy with a split folder left
out, a partial download or files lost in a move still indexes and trains, and gives
other numbers without an error. The raw stage compares what it indexed with the
release file by file: each dataset file lists its official names (``DemoPlan.full``:
OULU-NPU, CASIA-FASD, Replay-Attack, MSU-MFSD, and ROSE-Youtu as the official HFN+MP
repository lists it, see ``datasets/rose_youtu.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mpfas.core.errors import first_of
from mpfas.data.records import VideoRecord
from mpfas.data.registry import dataset_spec


@dataclass(frozen=True)
class ReleaseCheck:
    """One dataset's indexed videos against its official release."""

    code: str
    official: int                   # videos in the release's protocols
    found: int                      # of those, indexed from the copy
    missing: tuple[str, ...]        # official relative paths not found
    unofficial: tuple[str, ...]     # indexed paths that follow the naming rules but are not in the release

    @property
    def complete(self) -> bool:
        return not self.missing

    def summary(self) -> dict[str, int | bool]:
        """What metrics/raw.json records."""
        return {"official": self.official, "missing": self.official - self.found,
                "unofficial": len(self.unofficial), "complete": self.complete}

    def describe(self, shown: int = 10) -> str:
        """What is missing, naming the first ``shown`` missing files (an incomplete copy)."""
        name = dataset_spec(self.code).name
        return (f"{name} ({self.code}): {self.official - self.found} of the {self.official} official videos "
                f"are missing: {first_of(self.missing, shown)}")


def check_release(code: str, records: Sequence[VideoRecord]) -> ReleaseCheck | None:
    """Compare ``records`` (one dataset's index) with the release the dataset file lists; None
    for a dataset that lists none (every built-in one does)."""
    demo = dataset_spec(code).demo
    if demo is None or demo.full is None:
        return None
    official = [s.relpath for s in demo.full()[0]]
    indexed = {r.relpath for r in records}
    missing = tuple(p for p in official if p not in indexed)
    unofficial = tuple(sorted(indexed - set(official)))
    return ReleaseCheck(code, len(official), len(official) - len(missing), missing, unofficial)
