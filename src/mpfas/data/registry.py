"""The dataset registry: one :class:`DatasetSpec` per dataset, looked up by its code.

Each dataset file (``oulu.py``, ``casia.py``, ...) defines its adapter, demo plan and
``SPEC``, which the package ``__init__`` registers; everything else (config validation,
the raw stage, the demo, manifests) asks the registry instead of keeping its own
per-code table. Adding a dataset is one new file (listed in ``__init__``) plus its
``data.roots`` entry.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mpfas.core.config import DataConfig
from mpfas.core.paths import repo_file
from mpfas.data.base import DatasetAdapter, DatasetError, MediaKind

if TYPE_CHECKING:
    from mpfas.data.demo_plan import DemoPlan


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the pipeline knows about one dataset.

    ``adapter`` carries the code, the human name and the media kind (class attributes)
    so they are written once; ``splits`` are the official splits its records use
    (a subset of ``records.SPLITS``); ``demo`` says how the synthetic demo draws it
    (None: real data only).
    """

    adapter: type[DatasetAdapter]
    splits: tuple[str, ...]
    demo: DemoPlan | None = None
    order: int = 100  # place in dataset_codes() (the demo draws datasets in this order); ties: by code

    @property
    def code(self) -> str:
        return self.adapter.code

    @property
    def name(self) -> str:
        return self.adapter.name

    @property
    def media(self) -> MediaKind:
        return self.adapter.media


_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` (its code must be new); returns it so a module can keep a handle."""
    code = spec.code
    if not code or code in _REGISTRY:
        raise ValueError(f"dataset code {code!r} is empty or already registered ({sorted(_REGISTRY)})")
    if spec.media not in ("video", "image"):
        raise ValueError(f"dataset {code}: media {spec.media!r} is not 'video' or 'image'")
    _REGISTRY[code] = spec
    ordered = sorted(_REGISTRY.values(), key=lambda s: (s.order, s.code))
    _REGISTRY.clear()
    _REGISTRY.update((s.code, s) for s in ordered)
    return spec


def unregister_dataset(code: str) -> None:
    """Remove a dataset (tests that register a toy one clean up with this)."""
    _REGISTRY.pop(code, None)


@contextmanager
def registered(spec: DatasetSpec) -> Iterator[DatasetSpec]:
    """``spec`` registered for the duration of a ``with`` block."""
    register_dataset(spec)
    try:
        yield spec
    finally:
        unregister_dataset(spec.code)


def dataset_codes() -> tuple[str, ...]:
    """Registered codes in registration order (built-ins first: O, C, I, M)."""
    return tuple(_REGISTRY)


def demo_codes() -> tuple[str, ...]:
    """Codes of the datasets the synthetic demo can draw, in registration order."""
    return tuple(code for code, spec in _REGISTRY.items() if spec.demo is not None)


def dataset_spec(code: str) -> DatasetSpec:
    try:
        return _REGISTRY[code]
    except KeyError:
        raise DatasetError(f"unknown dataset code {code!r}; registered: {list(_REGISTRY)}") from None


def dataset_name(code: str) -> str:
    return dataset_spec(code).name


def dataset_root(data: DataConfig, code: str) -> Path:
    """Where dataset ``code`` lives: the demo tree (``<demo_root>/<name>``) or the user's real root
    (a relative one from the working directory, else from the main repository root: DVC's
    experiment copies)."""
    if data.source == "demo":
        return Path(data.demo_root) / dataset_name(code)
    return repo_file(data.roots.get(code, ""))


def adapter_for(code: str) -> DatasetAdapter:
    """A fresh adapter of dataset ``code`` (adapters keep per-scan state)."""
    return dataset_spec(code).adapter()
