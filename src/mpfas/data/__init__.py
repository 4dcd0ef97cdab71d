"""The datasets: one file each under ``mpfas/data/datasets/`` (adapter + demo plan + ``SPEC``).

Importing this package registers every module there that defines a ``SPEC``, so adding a
dataset is one new file plus its params entries (``data.roots.<code>``,
``align.max_failed_videos.<code>``); ``SPEC.order`` fixes its place in ``dataset_codes()``.
"""

from __future__ import annotations

import importlib
import pkgutil

from mpfas.data import datasets as _datasets
from mpfas.data.base import DatasetAdapter, DatasetError, MediaKind, ScanResult
from mpfas.data.checks import check_params
from mpfas.data.index import INDEX_COLUMNS, read_index, write_index
from mpfas.data.records import Label, VideoRecord
from mpfas.data.registry import (
    DatasetSpec,
    adapter_for,
    dataset_codes,
    dataset_name,
    dataset_root,
    dataset_spec,
    demo_codes,
    register_dataset,
    registered,
    unregister_dataset,
)

# every dataset file registers itself; SPEC.order keeps O, C, I, M, Y first (the demo deals
# identities and random streams in this order, so a new dataset goes after them)
for _info in pkgutil.iter_modules(_datasets.__path__):
    _module = importlib.import_module(f"{_datasets.__name__}.{_info.name}")
    if hasattr(_module, "SPEC"):
        register_dataset(_module.SPEC)

BUILT_IN = dataset_codes()
"""What importing the package registers; anything else was registered at run time."""

__all__ = [
    "BUILT_IN",
    "INDEX_COLUMNS",
    "DatasetAdapter",
    "DatasetError",
    "DatasetSpec",
    "Label",
    "MediaKind",
    "ScanResult",
    "VideoRecord",
    "adapter_for",
    "check_params",
    "dataset_codes",
    "dataset_name",
    "dataset_root",
    "dataset_spec",
    "demo_codes",
    "read_index",
    "register_dataset",
    "registered",
    "unregister_dataset",
    "write_index",
]
