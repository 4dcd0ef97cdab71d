"""What a checkpoint says about itself besides its weights, read in one place.

A model scores faces well only when they are cut the way its training faces were, so
``best.pt`` and ``last.pt`` record the preprocessing their faces were made with
(:class:`Preprocess`: the align and extract settings, and how many faces make a video's
score, which the saved threshold depends on). ``predict``, ``export`` and the MLflow
model apply the checkpoint's values, not today's ``params.yaml``, and warn when the two
differ; a checkpoint written before this record existed falls back to ``params.yaml``,
with a warning saying so.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Params
from ..errors import MpfasError

log = logging.getLogger(__name__)

PREPROCESS_KEY = "preprocess"


class CheckpointMetaError(MpfasError):
    """A checkpoint's metadata is malformed (names the file and the entry)."""


def _section(name: str) -> Any:
    return field(metadata={"section": name})


@dataclass(frozen=True)
class Preprocess:
    """The params that made a checkpoint's faces and its threshold (each field's params section
    is in its metadata). Model input size and channel order live in ``model_config``."""

    crop_size: int = _section("align")
    padding: float = _section("align")
    detect_max_side: int = _section("align")
    select: str = _section("align")
    min_face_size: int = _section("align")
    frames_per_video: int = _section("extract")
    image_ext: str = _section("extract")
    decode: str = _section("extract")
    num_frames: int = _section("evaluate")

    @classmethod
    def from_params(cls, params: Params) -> Preprocess:
        return cls(**{f.name: getattr(getattr(params, f.metadata["section"]), f.name)
                      for f in dataclasses.fields(cls)})

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> Preprocess:
        """Parse the checkpoint entry (``{section: {key: value}}``); errors name ``where`` and the key."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            section = raw.get(f.metadata["section"]) if isinstance(raw, dict) else None
            if not isinstance(section, dict) or f.name not in section:
                raise CheckpointMetaError(f"{where}: '{PREPROCESS_KEY}' lacks "
                                          f"{f.metadata['section']}.{f.name} (a damaged or foreign checkpoint?)")
            values[f.name] = section[f.name]
        return cls(**values)

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """Plain nested types, so the checkpoint still loads with ``weights_only=True``."""
        out: dict[str, dict[str, Any]] = {}
        for f in dataclasses.fields(self):
            out.setdefault(f.metadata["section"], {})[f.name] = getattr(self, f.name)
        return out

    def apply(self, params: Params) -> Params:
        """``params`` with these values in place of its own."""
        sections = self.as_dict()
        return dataclasses.replace(params, **{name: dataclasses.replace(getattr(params, name), **values)
                                              for name, values in sections.items()})

    def differences(self, params: Params) -> list[str]:
        """``section.key checkpoint X vs params.yaml Y`` for each value ``params`` has otherwise."""
        other = Preprocess.from_params(params)
        return [f"{f.metadata['section']}.{f.name} checkpoint {getattr(self, f.name)!r} vs params.yaml "
                f"{getattr(other, f.name)!r}"
                for f in dataclasses.fields(self) if getattr(self, f.name) != getattr(other, f.name)]


@dataclass(frozen=True)
class CheckpointMeta:
    """A training checkpoint's metadata (everything but the weights)."""

    path: Path
    protocol: str = ""
    iteration: int = -1
    selection: str = "unknown"  # train.select that chose it
    threshold: float | None = None  # source-val EER threshold (None: not saved)
    model_config: dict[str, Any] = field(default_factory=dict)
    preprocess: Preprocess | None = None  # None: written before checkpoints recorded it

    @property
    def is_training_checkpoint(self) -> bool:
        return bool(self.model_config)

    def resolve(self, params: Params | None, warn: bool = True) -> tuple[Preprocess | None, str]:
        """The preprocessing to apply and where it comes from: the checkpoint's (one warning naming
        each key ``params`` has otherwise), else ``params``'s with a warning saying so."""
        if self.preprocess is None:
            if warn:
                log.warning("%s records no preprocessing (written before checkpoints did); %s", self.path,
                            "using params.yaml's align/extract settings, which may not be those it was "
                            "trained with" if params is not None else
                            "its faces must be made as its training faces were")
            return (None, "unknown") if params is None else (Preprocess.from_params(params), "params.yaml")
        diffs = [] if params is None else self.preprocess.differences(params)
        if diffs and warn:
            log.warning("%s: using the checkpoint's preprocessing; params.yaml differs: %s", self.path,
                        "; ".join(diffs))
        return self.preprocess, "checkpoint"

    def params_for(self, params: Params) -> Params:
        """``params`` with the preprocessing of :meth:`resolve` in place of its own."""
        preprocess, _ = self.resolve(params)
        return preprocess.apply(params) if preprocess else params


def read_meta(path: str | Path) -> CheckpointMeta:
    """A checkpoint's metadata, read through mmap so a big file is not read twice.

    An unreadable file gives an empty record: the loader of the weights reports the real problem.
    """
    import torch

    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - see the docstring
        return CheckpointMeta(path)
    if not isinstance(ckpt, dict):
        return CheckpointMeta(path)
    val = ckpt.get("val") if isinstance(ckpt.get("val"), dict) else {}
    threshold = ckpt.get("threshold")
    threshold = val.get("threshold") if threshold is None else threshold
    raw_pre = ckpt.get(PREPROCESS_KEY)
    config = ckpt.get("model_config")
    return CheckpointMeta(
        path=path, protocol=str(ckpt.get("protocol", "")), iteration=int(ckpt.get("iteration", -1)),
        selection=str(ckpt.get("select", "unknown")),
        threshold=None if threshold is None or not math.isfinite(threshold) else float(threshold),
        model_config=dict(config) if isinstance(config, dict) else {},
        preprocess=None if raw_pre is None else Preprocess.from_dict(raw_pre, str(path)))
