"""The datasets: one file each (adapter + demo plan) registered in ``registry``.

Importing this package registers the built-in datasets, in this order (which is the
order of ``dataset_codes()``): a new dataset is one more file and one more import here.
"""

from __future__ import annotations

from . import oulu, casia, replay_attack, msu  # registers O, C, I, M (this order: dataset_codes())
from .base import DatasetAdapter, DatasetError, MediaKind, ScanResult
from .index import INDEX_COLUMNS, read_index, write_index
from .records import Label, VideoRecord
from .registry import (
    DatasetSpec,
    adapter_for,
    dataset_codes,
    dataset_name,
    dataset_spec,
    demo_codes,
    register_dataset,
    registered,
    unregister_dataset,
)

BUILT_IN = dataset_codes()
"""What importing the package registers; anything else was registered at run time."""

__all__ = [
    "BUILT_IN", "INDEX_COLUMNS", "DatasetAdapter", "DatasetError", "DatasetSpec", "Label", "MediaKind", "ScanResult",
    "VideoRecord", "adapter_for", "dataset_codes", "dataset_name", "dataset_spec", "demo_codes", "read_index",
    "register_dataset", "registered", "unregister_dataset", "write_index",
]
