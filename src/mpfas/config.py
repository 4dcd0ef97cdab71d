"""Typed view of ``params.yaml``.

``params.yaml`` is the single source of knobs. It is parsed strictly into the
dataclasses below so that a misspelt key or a wrong type fails before any work,
with a message naming the key and the file.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .backbones import backbone_names
from .datasets import dataset_codes, dataset_name
from .datasets.oulu_protocols import OULU_PROTOCOLS, all_oulu_folds
from .errors import MpfasError
from .paths import repo_file


class ConfigError(MpfasError, ValueError):
    """A parameter is missing, unknown, or has the wrong type or value."""


@dataclass(frozen=True)
class DataConfig:
    source: Literal["demo", "real"] = "demo"
    demo_root: str = "data/raw"
    roots: dict[str, str] = field(default_factory=lambda: {c: "" for c in dataset_codes()})
    # which datasets the pipeline indexes, extracts and aligns (dvc.yaml: foreach); default every registered one
    datasets: list[str] = field(default_factory=lambda: list(dataset_codes()))
    # real roots only: a copy that lacks videos of the official release fails the raw stage | warns
    incomplete: Literal["fail", "warn"] = "fail"

    def root(self, code: str) -> Path:
        """Where dataset ``code`` lives: the demo tree or the user's real root (a relative one from
        the working directory, else from the main repository root: DVC's experiment copies)."""
        if self.source == "demo":
            return Path(self.demo_root) / dataset_name(code)
        return repo_file(self.roots.get(code, ""))

    def validate(self) -> None:
        unknown = set(self.roots) - set(dataset_codes())
        if unknown:
            raise ConfigError(f"data.roots: unknown dataset code(s) {sorted(unknown)}; use {dataset_codes()}")
        unknown = [c for c in self.datasets if c not in dataset_codes()]
        if unknown:
            raise ConfigError(f"data.datasets: unknown dataset code(s) {unknown}; registered: {list(dataset_codes())}")
        if len(set(self.datasets)) != len(self.datasets):
            raise ConfigError(f"data.datasets: {self.datasets} names a dataset twice")

    def require_roots(self, codes: list[str]) -> None:
        """In real mode every dataset in ``codes`` needs its root; others may stay empty."""
        if self.source != "real":
            return
        for code in codes:
            if not self.roots.get(code):
                raise ConfigError(
                    f"data.roots.{code}: empty, but data.source is 'real' and the chosen protocols use "
                    f"{code}; set it to the {dataset_name(code)} root"
                )


@dataclass(frozen=True)
class DemoConfig:
    seed: int = 0
    subjects: int = 6
    frames: int = 48
    fps: int = 12
    scale: float = 1.0
    size: Literal["small", "full"] = "small"  # full: the real datasets' video counts and file names

    def validate(self) -> None:
        _positive("demo.subjects", self.subjects)
        _positive("demo.frames", self.frames)
        _positive("demo.fps", self.fps)
        _positive("demo.scale", self.scale)


@dataclass(frozen=True)
class ExtractConfig:
    frames_per_video: int = 3
    workers: int = 2
    max_failure_rate: float = 0.05
    image_ext: Literal["png", "jpg"] = "png"
    decode: Literal["seek", "sequential"] = "seek"  # seek (count verified by decoding) | sequential

    def validate(self) -> None:
        _positive("extract.frames_per_video", self.frames_per_video)
        _positive("extract.workers", self.workers)
        _fraction("extract.max_failure_rate", self.max_failure_rate)


@dataclass(frozen=True)
class AlignConfig:
    crop_size: int = 256
    padding: float = 0.37
    detect_max_side: int = 640
    select: Literal["largest", "confident"] = "largest"
    min_face_size: int = 20
    # Per dataset: the largest share of videos in which no sampled frame has a face before
    # the stage stops. Frames without a face are recorded but never fail the stage alone.
    max_failed_videos: dict[str, float] = field(
        default_factory=lambda: {"O": 0.05, "C": 0.05, "I": 0.1, "M": 0.05})

    def validate(self) -> None:
        _positive("align.crop_size", self.crop_size)
        _positive("align.detect_max_side", self.detect_max_side)
        _positive("align.min_face_size", self.min_face_size)
        if not 0 <= self.padding < 1:
            raise ConfigError(f"align.padding: {self.padding} must be in [0, 1)")
        unknown = set(self.max_failed_videos) - set(dataset_codes())
        if unknown:
            raise ConfigError(f"align.max_failed_videos: unknown dataset code(s) {sorted(unknown)}; "
                              f"use {dataset_codes()}")
        for code, rate in self.max_failed_videos.items():
            _fraction(f"align.max_failed_videos.{code}", rate)

    def failed_video_limit(self, code: str) -> float:
        """The limit for dataset ``code`` (0.05 where params.yaml names none)."""
        return self.max_failed_videos.get(code, 0.05)


@dataclass(frozen=True)
class Protocol:
    sources: list[str]
    target: str

    @property
    def domains(self) -> list[str]:
        return [*self.sources, self.target]


@dataclass(frozen=True)
class ManifestsConfig:
    protocols: dict[str, Protocol] = field(default_factory=dict)
    target_set: Literal["all", "train+test", "test"] = "all"
    val_fraction: float = 0.2
    seed: int = 666
    oulu_protocols: list[str] = field(default_factory=list)  # OULU-NPU intra-dataset P1-P4 (datasets.oulu_protocols)

    def validate(self) -> None:
        if not self.protocols:
            raise ConfigError("manifests.protocols: at least one protocol is needed")
        for name in self.oulu_protocols:
            if name not in OULU_PROTOCOLS:
                raise ConfigError(f"manifests.oulu_protocols: unknown protocol {name!r}; use {list(OULU_PROTOCOLS)}")
        if len(set(self.oulu_protocols)) != len(self.oulu_protocols):
            raise ConfigError("manifests.oulu_protocols: a protocol is listed twice")
        clash = sorted({f.name for f in all_oulu_folds(self.oulu_protocols)} & set(self.protocols))
        if clash:
            raise ConfigError(f"manifests.protocols: {clash} is also an OULU-NPU fold's manifest name; rename it")
        for name, p in self.protocols.items():
            key = f"manifests.protocols.{name}"
            for code in p.domains:
                if code not in dataset_codes():
                    raise ConfigError(f"{key}: unknown dataset letter {code!r}; use one of {dataset_codes()}")
            if len(p.sources) < 2:
                raise ConfigError(f"{key}.sources: meta-learning needs at least two source domains")
            if len(set(p.sources)) != len(p.sources):
                raise ConfigError(f"{key}.sources: a domain is listed twice")
            if p.target in p.sources:
                raise ConfigError(f"{key}: target {p.target!r} is also a source")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"manifests.val_fraction: {self.val_fraction} must be in [0, 1) "
                              "(0 = train on all source videos, as the official code does)")


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = "resnet18"  # a name in the backbone registry (mpfas.backbones)
    input_size: int = 128
    pattern: Literal["meta", "none", "hsv", "ycrcb", "lbp"] = "meta"
    # Local torchvision ImageNet weights file (relative paths: from the repository root);
    # "random" = train from random weights on purpose; "" = not set (demo only: random, warned).
    pretrained: str = ""
    # rgb: faces enter the network as RGB. bgr: channels reversed first, which is what the
    # official code feeds (OpenCV's BGR frames, unconverted, into RGB ImageNet weights).
    channel_order: Literal["rgb", "bgr"] = "rgb"
    # normal: pyramid layers drawn from N(0, 0.01) in each stream independently.
    # official: PyTorch's default init, the same weights copied into both streams.
    pyramid_init: Literal["normal", "official"] = "normal"

    RANDOM = "random"

    @property
    def random_init(self) -> bool:
        return self.pretrained in ("", self.RANDOM)

    def validate(self) -> None:
        if self.backbone not in backbone_names():
            raise ConfigError(f"model.backbone: {self.backbone!r} is not a registered backbone; "
                              f"use one of {list(backbone_names())}")
        _positive("model.input_size", self.input_size)
        if self.input_size % 32:
            raise ConfigError(f"model.input_size: {self.input_size} must be a multiple of 32")


LEAKAGE_FREE_SELECTIONS = ("source_val", "last")
"""``train.select`` rules that choose the checkpoint without looking at the target."""


@dataclass(frozen=True)
class TrainConfig:
    protocols: list[str] = field(default_factory=list)
    algorithm: Literal["alternating", "bilevel"] = "alternating"
    first_order: bool = False
    iterations: int = 60
    inner_loops: int = 4
    meta_lr: float = 1e-3
    momentum: float = 0.9
    batch_live: int = 4
    batch_spoof: int = 4
    faces_per_video: int = 2  # aligned faces trained on per video, evenly spaced incl. first and last
    seed: int = 666
    eval_every: int = 20
    checkpoint_every: int = 20
    resume: Literal["auto", "never"] = "auto"
    select: Literal["source_val", "target_oracle", "last"] = "source_val"
    augment: Literal["flip", "color"] = "flip"  # flip: official | color: flip + photometric jitter
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16: autocast on CUDA (opt-in; CPU stays fp32)
    workers: int = 0
    channels_last: Literal["auto", True, False] = "auto"  # auto: CUDA only (training.execution)

    def validate(self) -> None:
        for key in ("iterations", "inner_loops", "batch_live", "batch_spoof", "faces_per_video",
                    "eval_every", "checkpoint_every"):
            _positive(f"train.{key}", getattr(self, key))
        _positive("train.meta_lr", self.meta_lr)
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"train.momentum: {self.momentum} must be in [0, 1)")
        if self.workers < 0:
            raise ConfigError(f"train.workers: {self.workers} must be >= 0")


@dataclass(frozen=True)
class EvaluateConfig:
    bootstrap: int = 1000
    seed: int = 0
    faces_per_video: int = 2  # aligned faces scored per video, evenly spaced incl. first and last; 0 = all
    batch_size: int = 32
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16: autocast on CUDA for scoring; metrics stay fp32

    def validate(self) -> None:
        if self.bootstrap < 0:
            raise ConfigError(f"evaluate.bootstrap: {self.bootstrap} must be >= 0")
        if self.faces_per_video < 0:
            raise ConfigError(f"evaluate.faces_per_video: {self.faces_per_video} must be >= 0 (0 = all aligned faces)")
        _positive("evaluate.batch_size", self.batch_size)


@dataclass(frozen=True)
class TrackingConfig:
    experiment: str = "mpfas"
    system_metrics: bool = False  # MLflow's CPU/memory/GPU sampling during training (system/... metrics)


@dataclass(frozen=True)
class Params:
    data: DataConfig = field(default_factory=DataConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    manifests: ManifestsConfig = field(default_factory=ManifestsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            section = getattr(self, f.name)
            if hasattr(section, "validate"):
                section.validate()
        for name in self.train.protocols:
            if name not in self.manifests.protocols:
                raise ConfigError(
                    f"train.protocols: unknown protocol {name!r}; defined in manifests.protocols: "
                    f"{sorted(self.manifests.protocols)}"
                )
        missing = [code for code in self.used_datasets() if code not in self.data.datasets]
        if missing:
            raise ConfigError(f"data.datasets: lacks {missing}, which the protocols in train.protocols use; "
                              f"add them (data.datasets: {[*self.data.datasets, *missing]})")
        self.data.require_roots(self.used_datasets())
        if self.manifests.oulu_protocols and "O" not in self.data.datasets:
            raise ConfigError("manifests.oulu_protocols: OULU-NPU (O) is not in data.datasets; add it or "
                              "empty the list")
        if self.train.select == "source_val" and self.manifests.val_fraction == 0:
            raise ConfigError(
                "train.select: 'source_val' needs source-val videos, but manifests.val_fraction is 0 "
                "(all source videos train); use train.select 'last' (leakage-free) or 'target_oracle'"
            )


    def used_datasets(self) -> list[str]:
        """Dataset codes the chosen protocols (``train.protocols``) read, in registry order."""
        used = {code for name in self.train.protocols for code in self.manifests.protocols[name].domains}
        return [code for code in dataset_codes() if code in used]


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``; raise ConfigError naming the bad key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: parameter file not found")
    return parse_params(path.read_text(), str(path))


def parse_params(text: str, where: str = "params.yaml") -> Params:
    """Validate params given as YAML text (``where`` names it in errors)."""
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {exc}") from exc
    try:
        params = _build(Params, raw, "")
        params.validate()
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return params


# ---------------------------------------------------------------- strict parsing

def _build(tp: Any, value: Any, key: str) -> Any:
    where = key or "<top level>"
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        hints = typing.get_type_hints(tp)
        names = {f.name for f in dataclasses.fields(tp)}
        unknown = sorted(set(value) - names)
        if unknown:
            first = f"{key}.{unknown[0]}" if key else unknown[0]
            raise ConfigError(f"{first}: unknown key (known keys here: {sorted(names)})")
        kwargs = {n: _build(hints[n], value[n], f"{key}.{n}" if key else n) for n in value}
        return tp(**kwargs)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if not any(value == a and type(value) is type(a) for a in allowed):  # 1 is not True
            raise ConfigError(f"{where}: {value!r} is not one of {list(allowed)}")
        return value
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        return [_build(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _, item = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return {str(k): _build(item, v, f"{key}.{k}") for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        raise ConfigError(f"{where}: union types are not supported in params")
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML reads 1e-3 as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported parameter type {tp}")


def _positive(key: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{key}: {value} must be > 0")


def _fraction(key: str, value: float) -> None:
    if not 0 <= value <= 1:
        raise ConfigError(f"{key}: {value} must be in [0, 1]")
