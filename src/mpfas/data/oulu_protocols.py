"""OULU-NPU's four intra-dataset protocols, from the file names alone.

Boulkenafet et al., "OULU-NPU: A Mobile Face Presentation Attack Database with
Real-World Variations", FG 2017, Sec. III-C and Table II. Each protocol holds some
capture conditions out of training and tests on them: P1 the session (illumination and
background), P2 the attack instruments (printer and display), P3 the phone (leave one
of six out: six folds), P4 all three at once (six folds). The users never cross splits:
1-20 train (``Train_files``), 21-35 development (``Dev_files``), 36-55 test (``Test_files``);
train and dev share the training conditions, test has the held-out ones.

Files: 1 live, 2 print (printer 1), 3 print (printer 2), 4 replay (display 1), 5 replay
(display 2). A fold is named ``OULU-P1``, ``OULU-P2``, ``OULU-P3-<phone>`` or
``OULU-P4-<phone>``, the phone being the one left out for testing.
"""

from __future__ import annotations

from dataclasses import dataclass

from mpfas.data.datasets.oulu import OuluName, oulu_name
from mpfas.data.records import VideoRecord

OULU_PROTOCOLS = ("P1", "P2", "P3", "P4")
PHONES = frozenset(range(1, 7))
SESSIONS = frozenset(range(1, 4))
FILES = frozenset(range(1, 6))
PREFIX = "OULU-"


@dataclass(frozen=True)
class Conditions:
    """The capture conditions a split keeps (live file 1 is always kept)."""

    sessions: frozenset[int]
    files: frozenset[int]
    phones: frozenset[int]

    def admits(self, name: OuluName) -> bool:
        return name.session in self.sessions and name.file in self.files and name.phone in self.phones


@dataclass(frozen=True)
class OuluFold:
    """One train/dev/test split of a protocol (``fold``: the left-out phone of P3 and P4)."""

    protocol: str
    fold: int | None
    train: Conditions  # the train and the dev split
    test: Conditions

    @property
    def name(self) -> str:
        return f"{PREFIX}{self.protocol}" + ("" if self.fold is None else f"-{self.fold}")

    def split_of(self, record: VideoRecord) -> str | None:
        """``train``, ``dev`` or ``test`` when the video belongs to this fold, else None."""
        name = oulu_name(record.relpath)
        if name is None:
            return None
        conditions = self.test if record.split == "test" else self.train
        return record.split if conditions.admits(name) else None


def oulu_folds(protocol: str) -> list[OuluFold]:
    """The folds of ``protocol`` (one for P1 and P2, six for P3 and P4), in phone order."""
    if protocol == "P1":
        return [OuluFold("P1", None, Conditions(frozenset({1, 2}), FILES, PHONES),
                         Conditions(frozenset({3}), FILES, PHONES))]
    if protocol == "P2":
        return [OuluFold("P2", None, Conditions(SESSIONS, frozenset({1, 2, 4}), PHONES),
                         Conditions(SESSIONS, frozenset({1, 3, 5}), PHONES))]
    if protocol == "P3":
        return [OuluFold("P3", phone, Conditions(SESSIONS, FILES, PHONES - {phone}),
                         Conditions(SESSIONS, FILES, frozenset({phone}))) for phone in sorted(PHONES)]
    if protocol == "P4":
        return [OuluFold("P4", phone, Conditions(frozenset({1, 2}), frozenset({1, 2, 4}), PHONES - {phone}),
                         Conditions(frozenset({3}), frozenset({1, 3, 5}), frozenset({phone})))
                for phone in sorted(PHONES)]
    raise ValueError(f"unknown OULU-NPU protocol {protocol!r}; use one of {list(OULU_PROTOCOLS)}")


def all_oulu_folds(protocols: list[str]) -> list[OuluFold]:
    """Every fold of the given protocols, in the given order."""
    return [fold for p in protocols for fold in oulu_folds(p)]
