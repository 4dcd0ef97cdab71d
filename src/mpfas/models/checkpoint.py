"""The one checkpoint format: its schema, its writer, its reader and its model builder.

Training writes two kinds: ``best`` (for evaluation and serving: weights, how they were
chosen, the source-val threshold) and ``last`` (the same plus a :class:`ResumeState`, so a
resumed run continues bit for bit). Both record the model config and the preprocessing
their faces were made with (:class:`Preprocess`): a model scores faces well only when
they are cut the way its training faces were, so serving applies the checkpoint's values,
not today's ``params.yaml``, and warns when the two differ.

Everything is stored as tensors and plain Python types, so a checkpoint loads with
``torch.load(..., weights_only=True)``. The schema carries a version; a file of another
version (or one written before versions existed) is refused with a "re-train" error
rather than half-read. Training, evaluation and serving all import this module; it
imports none of them.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from mpfas.core import atomic
from mpfas.core.config import ModelConfig, Params
from mpfas.core.errors import MpfasError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # raise on any change to what is stored; older files then ask for a re-train
"""Bump when a field is added, removed or changes meaning."""

Kind = Literal["best", "last"]


class CheckpointError(MpfasError, ValueError):
    """A checkpoint is missing, unreadable, of another schema, or does not fit its model (one line,
    naming the file)."""


class SchemaError(CheckpointError):
    """A checkpoint of another schema version (or none): re-train it."""


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
    faces_per_video: int = _section("score")

    @classmethod
    def from_params(cls, params: Params) -> Preprocess:
        return cls(**{f.name: getattr(getattr(params, f.metadata["section"]), f.name)
                      for f in dataclasses.fields(cls)})

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> Preprocess:
        """Parse the stored ``{section: {key: value}}``; errors name ``where`` and the key."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            section = raw.get(f.metadata["section"]) if isinstance(raw, dict) else None
            if not isinstance(section, dict) or f.name not in section:
                raise CheckpointError(f"{where}: 'preprocess' lacks {f.metadata['section']}.{f.name} "
                                      "(a damaged or foreign checkpoint?)")
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
        return dataclasses.replace(params, **{name: dataclasses.replace(getattr(params, name), **values)
                                              for name, values in self.as_dict().items()})

    def differences(self, params: Params) -> list[str]:
        """``section.key checkpoint X vs params.yaml Y`` for each value ``params`` has otherwise."""
        other = Preprocess.from_params(params)
        return [f"{f.metadata['section']}.{f.name} checkpoint {getattr(self, f.name)!r} vs params.yaml "
                f"{getattr(other, f.name)!r}"
                for f in dataclasses.fields(self) if getattr(self, f.name) != getattr(other, f.name)]


@dataclass(frozen=True)
class ResumeState:
    """What only ``last.pt`` holds: the method's trainer state (its optimisers; SSDG's also its
    discriminator), the data stream and RNGs, and the best so far.

    ``sampler``/``rng`` are rank 0's; ``ranks`` holds every rank's (``{"sampler", "rng"}``)
    when ``world_size`` > 1.
    """

    trainer: dict[str, Any]  # the method's Trainer.state_dict() (mpfas.methods)
    sampler: dict[str, Any]
    rng: dict[str, Any]
    best: dict[str, Any] | None  # {"iteration", "key", "val"} of the best checkpoint so far
    world_size: int = 1
    ranks: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class Checkpoint:
    """One training checkpoint (schema :data:`SCHEMA_VERSION`)."""

    kind: Kind
    model: dict[str, torch.Tensor]  # state_dict, on the CPU
    model_config: dict[str, Any]  # dataclasses.asdict(ModelConfig)
    preprocess: Preprocess
    protocol: str
    iteration: int
    selection: str  # train.select that chose it: source_val | last | target_oracle
    val: dict[str, float]  # the validation record of the best checkpoint (empty: none ran)
    threshold: float | None  # live iff score >= threshold; None: none chosen
    threshold_rule: str  # how ``threshold`` was chosen ("source-val EER", or "none")
    run_id: str  # the MLflow run ("" without tracking)
    fingerprint: str  # what a resumed run must match (training.loop.fingerprint)
    resume: ResumeState | None = None  # only in the ``last`` kind
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if (self.kind == "last") != (self.resume is not None):
            raise ValueError(f"a {self.kind!r} checkpoint {'needs' if self.kind == 'last' else 'has no'} "
                             "resume state")

    # ------------------------------------------------------------------ what serving needs

    def info(self, path: str | Path) -> dict[str, Any]:
        """How the checkpoint was obtained, for metrics and outputs."""
        cfg = self.model_config
        return {"checkpoint": Path(path).as_posix(), "iteration": self.iteration, "selection": self.selection,
                "model": {k: cfg.get(k) for k in ("backbone", "input_size", "pattern")}}

    def params_for(self, params: Params, where: str | Path = "checkpoint", warn: bool = True) -> Params:
        """``params`` with the checkpoint's preprocessing (one warning naming each key that differs)."""
        diffs = self.preprocess.differences(params)
        if diffs and warn:
            log.warning("%s: using the checkpoint's preprocessing; params.yaml differs: %s", where,
                        "; ".join(diffs))
        return self.preprocess.apply(params)


def threshold_of(val: dict[str, float]) -> tuple[float | None, str]:
    """The decision threshold a validation record gives, and how it was chosen."""
    thr = val.get("threshold")
    if thr is None or not math.isfinite(thr):
        return None, "none"
    return float(thr), "source-val EER"


# ------------------------------------------------------------------ write, read, build


def save(ckpt: Checkpoint, path: str | Path) -> Path:
    """Write ``ckpt`` to ``path`` atomically (``mpfas.core.atomic``)."""
    obj = {f.name: getattr(ckpt, f.name) for f in dataclasses.fields(ckpt)}  # no deep copy of tensors
    obj["preprocess"] = ckpt.preprocess.as_dict()
    if ckpt.resume is not None:
        obj["resume"] = {f.name: getattr(ckpt.resume, f.name) for f in dataclasses.fields(ckpt.resume)}
    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic.write_bytes(path, buf.getvalue())


def load(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint (``torch.load(weights_only=True)``); :class:`CheckpointError` names the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found (run the train stage first)")
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol: the refusal below says it all
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            raw = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated file, foreign pickle, ...
        raise CheckpointError(f"{path}: not a readable mpfas checkpoint ({_reason(exc)})") from exc
    if not isinstance(raw, dict) or "model" not in raw or "model_config" not in raw:
        raise CheckpointError(f"{path}: not a training checkpoint (no model and model_config)")
    version = raw.get("schema_version")
    if version != SCHEMA_VERSION:
        written = "before checkpoints had a schema version" if version is None else f"with schema {version}"
        raise SchemaError(f"{path}: written {written}, this mpfas reads schema {SCHEMA_VERSION}: "
                              "re-train it (dvc repro train)")
    try:
        resume = raw["resume"]
        return Checkpoint(**{**raw, "preprocess": Preprocess.from_dict(raw["preprocess"], str(path)),
                             "resume": None if resume is None else ResumeState(**resume)})
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{path}: malformed schema-{SCHEMA_VERSION} checkpoint ({exc})") from None


def build_model(ckpt: Checkpoint, device: str | torch.device = "cpu", where: str | Path = "checkpoint") -> nn.Module:
    """The checkpoint's model, from its own ``model_config`` (not today's params), in eval mode."""
    from mpfas.methods import build_model as build
    from mpfas.models import RandomInitWarning

    known = {f.name for f in dataclasses.fields(ModelConfig)}
    # the weights come from the checkpoint: no backbone file is needed (or read) here
    cfg = dataclasses.replace(ModelConfig(**{k: v for k, v in ckpt.model_config.items() if k in known}),
                              pretrained="")
    # ... so build_model's "random weights" warning would be false here: silence it
    quiet = [logging.getLogger(name) for name in ("mpfas.models", "mpfas.methods")]  # every method's builder
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RandomInitWarning)
            model = build(cfg)
    finally:
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)
    try:
        model.load_state_dict(ckpt.model)
    except RuntimeError as exc:  # keys or shapes do not match
        detail = " ".join(line.strip() for line in str(exc).strip().splitlines()[1:3])
        raise CheckpointError(_one_line(
            f"{where}: its weights do not fit the architecture its model_config describes "
            f"({ckpt.model_config}); a checkpoint of another model or mpfas version? {detail}")) from None
    return model.to(device).eval()


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, Checkpoint]:
    """:func:`load` then :func:`build_model`."""
    ckpt = load(path)
    return build_model(ckpt, device, path), ckpt


def _reason(exc: Exception) -> str:
    """One line: torch's own message is many lines and advises ``weights_only=False``."""
    text = str(exc)
    if "Weights only load failed" in text:
        return ("refused by torch.load(weights_only=True): it holds Python objects besides tensors "
                "and plain types, e.g. a foreign pickle, and loading it could run code")
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0][:300] if lines else type(exc).__name__


def _one_line(text: str, limit: int = 400) -> str:
    lines = text.strip().splitlines() or [""]
    first = lines[0]
    return first if len(first) <= limit and len(lines) == 1 else first[:limit].rstrip() + " ..."
