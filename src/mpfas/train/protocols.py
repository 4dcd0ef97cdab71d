"""What one training run is told by its protocol name: the manifest's domains and the domains
meta-learning draws from. One resolver knows both kinds of name.

* A cross-domain protocol (``manifests.protocols``): its source datasets are the training
  domains, as in the paper.
* An OULU-NPU fold (``OULU-P1``, ``OULU-P3-2``, ... of ``manifests.oulu_protocols``): one
  dataset, so meta-learning gets pseudo-domains instead, one per phone of the fold's Train
  split (``O1`` .. ``O6``; P3 and P4 leave the test phone out, five remain). The phone is the
  strongest capture shift OULU-NPU records (P3 tests on an unseen phone), so it plays the role
  the datasets play cross-domain. This is our choice: the official MetaPattern code has no
  intra-dataset training. The manifest keeps domain ``O``; only training regroups its rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from mpfas.core.config import ConfigError, Params, Protocol
from mpfas.core.errors import MpfasError
from mpfas.data.datasets.oulu import oulu_name
from mpfas.data.oulu_protocols import OULU_PROTOCOLS, OuluFold, all_oulu_folds
from mpfas.manifests.build import OULU_DOMAINS, ManifestRow

OULU_FOLD_NAMES = frozenset(f.name for f in all_oulu_folds(list(OULU_PROTOCOLS)))
"""Every fold name OULU-NPU's four protocols can have (what routes a name to the OULU side)."""


@dataclass(frozen=True)
class TrainingProtocol:
    """A protocol as training needs it: ``domains`` (what the manifest's roles may hold) and
    ``sources`` (the training domains, in the order the loop shuffles them from)."""

    name: str
    domains: Protocol
    sources: list[str]
    oulu: OuluFold | None = None

    def training_rows(self, rows: Sequence[ManifestRow]) -> list[ManifestRow]:
        """``rows`` with each source-train row in its training domain (unchanged cross-domain)."""
        if self.oulu is None:
            return list(rows)
        return [dataclasses.replace(r, domain=phone_domain(r)) if r.role == "source-train" else r for r in rows]


def phone_domain(row: ManifestRow) -> str:
    """The OULU-NPU pseudo-domain of a row: ``O<phone>`` from its file name."""
    name = oulu_name(row.video_id.partition("/")[2])
    if row.domain != OULU_DOMAINS.target or name is None:
        raise MpfasError(f"{row.video_id}: not an OULU-NPU video (<Split>_files/<phone>_<session>_<user>_<file>.avi)")
    return f"{row.domain}{name.phone}"


def resolve_protocol(params: Params, name: str) -> TrainingProtocol:
    """The protocol called ``name``: an OULU-NPU fold of ``manifests.oulu_protocols`` or an
    entry of ``manifests.protocols``; anything else fails naming both lists.

    A stage reads only the side its name routes to (fold names are fixed: ``OULU_FOLD_NAMES``),
    so a cross-domain stage need not declare ``manifests.oulu_protocols``, nor an OULU stage
    ``manifests.protocols``.
    """
    if name in OULU_FOLD_NAMES:
        folds = {f.name: f for f in all_oulu_folds(params.manifests.oulu_protocols)}
        if name in folds:
            fold = folds[name]
            phones = [f"{OULU_DOMAINS.target}{p}" for p in sorted(fold.train.phones)]
            return TrainingProtocol(name, OULU_DOMAINS, phones, fold)
    elif name in params.manifests.protocols:
        protocol = params.manifests.protocols[name]
        return TrainingProtocol(name, protocol, list(protocol.sources))
    raise ConfigError(f"unknown protocol {name!r}: not in manifests.protocols {sorted(params.manifests.protocols)} "
                      f"nor an OULU-NPU fold of manifests.oulu_protocols "
                      f"{sorted(f.name for f in all_oulu_folds(params.manifests.oulu_protocols))}")
