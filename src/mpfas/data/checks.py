"""What the params parser cannot check: that the dataset codes and OULU-NPU protocols named exist,
and that the real datasets in use have roots (named as the registry names them)."""

from __future__ import annotations

from collections.abc import Iterable

from mpfas.core.config import ConfigError, Params
from mpfas.data.oulu_protocols import OULU_PROTOCOLS, all_oulu_folds
from mpfas.data.registry import dataset_codes, dataset_name


def check_params(params: Params) -> None:
    """The dataset codes ``params`` names are registered and, with real data, the used ones have roots
    (the params parser knows no registry)."""
    codes = dataset_codes()

    def known(key: str, names: Iterable[str]) -> None:
        unknown = [c for c in names if c not in codes]
        if unknown:
            raise ConfigError(f"{key}: unknown dataset code(s) {unknown}; registered: {list(codes)}")

    known("data.roots", params.data.roots)
    known("data.datasets", params.data.datasets)
    known("align.max_failed_videos", params.align.max_failed_videos)
    for name, protocol in params.manifests.protocols.items():
        known(f"manifests.protocols.{name}", protocol.domains)
    if params.data.source == "real":  # every dataset the chosen protocols use needs its root; others may stay empty
        for code in params.used_datasets():
            if not params.data.roots.get(code):
                raise ConfigError(f"data.roots.{code}: empty, but data.source is 'real' and the chosen protocols use "
                                  f"{code}; set it to the {dataset_name(code)} root")
    lacking = [c for c in params.data.datasets if c not in params.align.max_failed_videos]
    if lacking:
        raise ConfigError(f"align.max_failed_videos: no limit for {lacking}; give one per dataset in data.datasets")
    for name in params.manifests.oulu_protocols:
        if name not in OULU_PROTOCOLS:
            raise ConfigError(f"manifests.oulu_protocols: unknown protocol {name!r}; use {list(OULU_PROTOCOLS)}")
    clash = sorted({f.name for f in all_oulu_folds(params.manifests.oulu_protocols)} & set(params.manifests.protocols))
    if clash:
        raise ConfigError(f"manifests.protocols: {clash} is also an OULU-NPU fold's manifest name; rename it")
