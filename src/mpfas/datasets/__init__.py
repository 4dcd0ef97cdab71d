"""The datasets: one file each (adapter + demo plan) registered in ``registry``.

Importing this package registers the built-in datasets' specs, in the order of
``_BUILT_IN_MODULES`` (which is the order of ``dataset_codes()``, so the demo draws
them in a fixed order): a new dataset is one more file and one more entry there.
"""

from __future__ import annotations

from . import casia, msu, oulu, replay_attack, rose_youtu
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

# O, C, I, M, Y: the order of dataset_codes(); a new dataset goes last so no earlier one's
# identities (dealt in this order) or random streams change
_BUILT_IN_MODULES = (oulu, casia, replay_attack, msu, rose_youtu)
for _module in _BUILT_IN_MODULES:
    register_dataset(_module.SPEC)

BUILT_IN = dataset_codes()
"""What importing the package registers; anything else was registered at run time."""

__all__ = [
    "BUILT_IN", "INDEX_COLUMNS", "DatasetAdapter", "DatasetError", "DatasetSpec", "Label", "MediaKind", "ScanResult",
    "VideoRecord", "adapter_for", "dataset_codes", "dataset_name", "dataset_spec", "demo_codes", "read_index",
    "register_dataset", "registered", "unregister_dataset", "write_index",
]
