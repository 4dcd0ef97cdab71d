"""Adapters that read the four FAS datasets in their original layouts."""

from __future__ import annotations

from .base import DatasetAdapter, DatasetError, ScanResult
from .casia import CasiaFASD
from .msu import MsuMFSD
from .oulu import OuluNPU
from .records import INDEX_COLUMNS, Label, VideoRecord, read_index, write_index
from .replay_attack import ReplayAttack

ADAPTERS: dict[str, type[DatasetAdapter]] = {
    "O": OuluNPU, "C": CasiaFASD, "I": ReplayAttack, "M": MsuMFSD,
}


def adapter_for(code: str) -> DatasetAdapter:
    return ADAPTERS[code]()


__all__ = [
    "ADAPTERS", "INDEX_COLUMNS", "DatasetAdapter", "DatasetError", "Label", "ScanResult",
    "VideoRecord", "adapter_for", "read_index", "write_index",
]
