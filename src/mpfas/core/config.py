"""Typed view of ``params.yaml``, the single source of knobs and of their defaults.

``params.yaml`` is parsed strictly into the dataclasses below: a misspelt, missing or
mistyped key fails before any work, with a message naming the key and the file. The
dataclasses hold no default values, so ``params.yaml`` is the one place a value is written.

This module is a leaf of the package: it imports no registry. Dataset codes and backbone
names are checked where they are used (``mpfas.data.check_params``,
``mpfas.models.backbones.check_backbone``), so editing a dataset or a backbone file never
changes the code every stage depends on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import yaml

from .errors import MpfasError

# names that become file and folder names (protocols): no separators, no leading dot, no ".."
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class ConfigError(MpfasError, ValueError):
    """A parameter is missing, unknown, or has the wrong type or value."""


@dataclass(frozen=True)
class DataConfig:
    source: Literal["demo", "real"]  # demo: synthesise under demo_root | real: read roots
    demo_root: str
    roots: dict[str, str]  # dataset code -> real root (relative: from the repository root)
    datasets: list[str]  # which datasets are indexed, extracted and aligned (dvc.yaml: foreach)
    protocols: list[str]  # which manifests.protocols are trained and evaluated (dvc.yaml: foreach)
    incomplete: Literal["fail", "warn"]  # real roots lacking videos of the official release

    def validate(self) -> None:
        if len(set(self.datasets)) != len(self.datasets):
            raise ConfigError(f"data.datasets: {self.datasets} names a dataset twice")
        root = PurePosixPath(self.demo_root)
        if not self.demo_root or root.is_absolute() or ".." in root.parts:
            raise ConfigError(f"data.demo_root: {self.demo_root!r} must be a folder inside the repository, "
                              "given relative to its root (DVC tracks the demo there)")


@dataclass(frozen=True)
class DemoConfig:
    seed: int
    subjects: int
    frames: int
    fps: int
    scale: float
    size: Literal["small", "full"]  # full: the real datasets' video counts and file names

    def validate(self) -> None:
        _seed("demo.seed", self.seed)
        for key in ("subjects", "frames", "fps", "scale"):
            _positive(f"demo.{key}", getattr(self, key))


@dataclass(frozen=True)
class ExtractConfig:
    frames_per_video: int
    max_failure_rate: float
    image_ext: Literal["png", "jpg"]
    decode: Literal["seek", "sequential"]  # seek (count verified by decoding) | sequential

    def validate(self) -> None:
        _positive("extract.frames_per_video", self.frames_per_video)
        _fraction("extract.max_failure_rate", self.max_failure_rate)


@dataclass(frozen=True)
class AlignConfig:
    crop_size: int
    padding: float
    detect_max_side: int
    select: Literal["largest", "confident"]
    min_face_size: int
    # Per dataset: the largest share of videos in which no sampled frame has a face before
    # the stage stops. Frames without a face are recorded but never fail the stage alone.
    max_failed_videos: dict[str, float]

    def validate(self) -> None:
        _positive("align.crop_size", self.crop_size)
        _positive("align.detect_max_side", self.detect_max_side)
        _positive("align.min_face_size", self.min_face_size)
        if not 0 <= self.padding < 1:
            raise ConfigError(f"align.padding: {self.padding} must be in [0, 1)")
        for code, rate in self.max_failed_videos.items():
            _fraction(f"align.max_failed_videos.{code}", rate)

    def failed_video_limit(self, code: str) -> float:
        """The limit for dataset ``code``; a dataset params.yaml names none of gets none."""
        try:
            return self.max_failed_videos[code]
        except KeyError:
            raise ConfigError(f"align.max_failed_videos.{code}: missing; give the share of videos "
                              "without a face at which the stage stops") from None


@dataclass(frozen=True)
class Protocol:
    sources: list[str]
    target: str

    @property
    def domains(self) -> list[str]:
        return [*self.sources, self.target]


@dataclass(frozen=True)
class ManifestsConfig:
    protocols: dict[str, Protocol]
    target_set: Literal["all", "train+test", "test"]
    val_fraction: float
    seed: int
    oulu_protocols: list[str]  # OULU-NPU intra-dataset P1-P4 (mpfas.data.oulu_protocols)

    def validate(self) -> None:
        if not self.protocols:
            raise ConfigError("manifests.protocols: at least one protocol is needed")
        if len(set(self.oulu_protocols)) != len(self.oulu_protocols):
            raise ConfigError("manifests.oulu_protocols: a protocol is listed twice")
        for name, p in self.protocols.items():
            key = f"manifests.protocols.{name}"
            if not SAFE_NAME.fullmatch(name):
                raise ConfigError(f"{key}: a protocol name becomes a file name (data/manifests/<name>.csv, "
                                  "models/<name>/); use letters, digits, '-', '_' and '.' only, not starting with '.'")
            if len(p.sources) < 2:
                raise ConfigError(f"{key}.sources: meta-learning needs at least two source domains")
            if len(set(p.sources)) != len(p.sources):
                raise ConfigError(f"{key}.sources: a domain is listed twice")
            if p.target in p.sources:
                raise ConfigError(f"{key}: target {p.target!r} is also a source")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"manifests.val_fraction: {self.val_fraction} must be in [0, 1) "
                              "(0 = train on all source videos, as the official code does)")
        _seed("manifests.seed", self.seed)


@dataclass(frozen=True)
class ModelConfig:
    method: str  # a name in the method registry (mpfas.methods): hfn_mp | ssdg
    backbone: str  # a name in the backbone registry (mpfas.models.backbones)
    input_size: int
    pattern: Literal["meta", "none", "hsv", "ycrcb", "lbp"]
    # Local ImageNet weights file (relative paths: from the repository root); "bundled" = the
    # file an installed package ships for the backbone (efficientnet_lite0); "random" = train
    # from random weights on purpose; "" = not set (demo only: random, warned).
    pretrained: str
    # rgb: faces enter the network as RGB. bgr: channels reversed first, which is what the
    # official code feeds (OpenCV's BGR frames, unconverted, into RGB ImageNet weights).
    channel_order: Literal["rgb", "bgr"]
    # normal: pyramid layers drawn from N(0, 0.01) in each stream independently.
    # official: PyTorch's default init, the same weights copied into both streams.
    pyramid_init: Literal["normal", "official"]

    RANDOM = "random"

    @property
    def random_init(self) -> bool:
        return self.pretrained in ("", self.RANDOM)

    def validate(self) -> None:
        _positive("model.input_size", self.input_size)
        if self.input_size % 32:
            raise ConfigError(f"model.input_size: {self.input_size} must be a multiple of 32")


LEAKAGE_FREE_SELECTIONS = ("source_val", "last")
"""``train.select`` rules that choose the checkpoint without looking at the target."""


@dataclass(frozen=True)
class TrainConfig:
    algorithm: Literal["alternating", "bilevel"]
    first_order: bool
    iterations: int
    inner_loops: int
    meta_lr: float
    momentum: float
    batch_live: int
    batch_spoof: int
    faces_per_video: int  # aligned faces trained on per video, evenly spaced incl. first and last
    seed: int
    eval_every: int
    select: Literal["source_val", "target_oracle", "last"]
    augment: Literal["flip", "color"]  # flip: official | color: flip + photometric jitter
    precision: Literal["fp32", "bf16"]  # bf16: autocast on CUDA (opt-in; CPU stays fp32)
    channels_last: Literal["auto", True, False]  # auto: CUDA only (mpfas.train.execution)
    cuda_graph: bool  # hfn_mp alternating on CUDA: replay each step from one CUDA graph (methods/hfn_mp/graph.py)

    def validate(self) -> None:
        for key in ("iterations", "inner_loops", "batch_live", "batch_spoof", "faces_per_video", "eval_every",
                    "meta_lr"):
            _positive(f"train.{key}", getattr(self, key))
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"train.momentum: {self.momentum} must be in [0, 1)")
        _seed("train.seed", self.seed)


@dataclass(frozen=True)
class SSDGConfig:
    """SSDG-R's training knobs (``model.method: ssdg``; docs/methods.md). Schedules are fractions
    of ``train.iterations`` so that the official run (4,000 iterations) and a short demo run keep
    their shape."""

    lr: float  # SGD lr before the drop (official: configured 0.01, effective 0.001 from the first step)
    lr_drop_at: float  # fraction of train.iterations where lr drops tenfold (official: 1500 / 4000)
    momentum: float
    weight_decay: float
    lambda_triplet: float  # weight of the asymmetric triplet loss (official 1.0)
    lambda_adversarial: float  # weight of the live-only domain-adversarial loss (official 0.5)
    triplet_margin: float  # official 0.1
    grl_horizon: float  # fraction of train.iterations over which the reversal ramps 0 -> ~1 (official 1.0)

    def validate(self) -> None:
        for key in ("lr", "triplet_margin", "grl_horizon"):
            _positive(f"ssdg.{key}", getattr(self, key))
        for key in ("weight_decay", "lambda_triplet", "lambda_adversarial", "lr_drop_at"):
            if getattr(self, key) < 0:
                raise ConfigError(f"ssdg.{key}: {getattr(self, key)} must be >= 0")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"ssdg.momentum: {self.momentum} must be in [0, 1)")


@dataclass(frozen=True)
class ScoreConfig:
    """How a video is scored: by training's source-val selection and by the evaluate stage alike."""

    faces_per_video: int  # aligned faces scored per video, evenly spaced incl. first and last; 0 = all
    batch_size: int  # faces per forward pass
    precision: Literal["fp32", "bf16"]  # bf16: autocast on CUDA for scoring; metrics stay fp32

    def validate(self) -> None:
        if self.faces_per_video < 0:
            raise ConfigError(f"score.faces_per_video: {self.faces_per_video} must be >= 0 (0 = all aligned faces)")
        _positive("score.batch_size", self.batch_size)


@dataclass(frozen=True)
class EvaluateConfig:
    bootstrap: int
    seed: int
    last_n: int  # the report's last-N view: target evaluations averaged (mpfas.evaluate.views)

    def validate(self) -> None:
        if self.bootstrap < 0:
            raise ConfigError(f"evaluate.bootstrap: {self.bootstrap} must be >= 0")
        _seed("evaluate.seed", self.seed)
        _positive("evaluate.last_n", self.last_n)


@dataclass(frozen=True)
class RuntimeConfig:
    """Knobs that cannot change any result. No stage lists this section as a DVC param, so
    editing it re-runs nothing, and training's resume fingerprint leaves it out."""

    device: Literal["auto", "cpu", "cuda"]
    extract_workers: int  # decoding processes
    align_workers: int  # MTCNN processes (one torch thread each)
    train_workers: int  # threads that load images (batches are the same for any count)
    face_cache: Literal["device", "cpu"]  # where training keeps decoded faces (the same floats either way)
    resume: Literal["auto", "never"]  # auto: continue from last.pt when its fingerprint matches
    checkpoint_every: int  # `last` checkpoint period (iterations)
    experiment: str  # MLflow experiment name
    system_metrics: bool  # MLflow's CPU/memory/GPU sampling during training

    def validate(self) -> None:
        _positive("runtime.extract_workers", self.extract_workers)
        _positive("runtime.align_workers", self.align_workers)
        _positive("runtime.checkpoint_every", self.checkpoint_every)
        if self.train_workers < 0:
            raise ConfigError(f"runtime.train_workers: {self.train_workers} must be >= 0")
        if not self.experiment.strip():
            raise ConfigError("runtime.experiment: empty; name the MLflow experiment (e.g. mpfas)")


RUNTIME_SECTIONS = ("runtime",)
"""Sections every stage may read and none lists as a DVC param (they cannot change outputs)."""


@dataclass(frozen=True)
class Params:
    data: DataConfig
    demo: DemoConfig
    extract: ExtractConfig
    align: AlignConfig
    manifests: ManifestsConfig
    model: ModelConfig
    train: TrainConfig
    ssdg: SSDGConfig
    score: ScoreConfig
    evaluate: EvaluateConfig
    runtime: RuntimeConfig

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            section = getattr(self, f.name)
            if hasattr(section, "validate"):
                section.validate()
        for name in self.data.protocols:
            if name not in self.manifests.protocols:
                raise ConfigError(
                    f"data.protocols: unknown protocol {name!r}; defined in manifests.protocols: "
                    f"{sorted(self.manifests.protocols)}"
                )
        missing = [code for code in self.used_datasets() if code not in self.data.datasets]
        if missing:
            raise ConfigError(f"data.datasets: lacks {missing}, which the protocols in data.protocols use; "
                              f"add them (data.datasets: {[*self.data.datasets, *missing]})")
        if self.manifests.oulu_protocols and "O" not in self.data.datasets:
            raise ConfigError("manifests.oulu_protocols: OULU-NPU (O) is not in data.datasets; add it or "
                              "empty the list")
        if self.train.cuda_graph and (self.model.method != "hfn_mp" or self.train.algorithm != "alternating"):
            raise ConfigError(f"train.cuda_graph: true captures HFN+MP's alternating step only, not model.method "
                              f"{self.model.method!r} with train.algorithm {self.train.algorithm!r}; set it to false")
        if self.train.select == "source_val" and self.manifests.val_fraction == 0:
            raise ConfigError(
                "train.select: 'source_val' needs source-val videos, but manifests.val_fraction is 0 "
                "(all source videos train); use train.select 'last' (leakage-free) or 'target_oracle'"
            )

    def used_datasets(self) -> list[str]:
        """Dataset codes the chosen protocols (``data.protocols``) read, in ``data.datasets`` order
        (then any the list lacks)."""
        used = {code for name in self.data.protocols for code in self.manifests.protocols[name].domains}
        return [c for c in self.data.datasets if c in used] + sorted(used - set(self.data.datasets))



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
        missing = [n for n in sorted(names) if n not in value]
        if missing:
            first = f"{key}.{missing[0]}" if key else missing[0]
            raise ConfigError(f"{first}: missing (params.yaml states every key; see the repository's params.yaml)")
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
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
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


def _seed(key: str, value: int) -> None:
    if not 0 <= value < 2**32:
        raise ConfigError(f"{key}: {value} must be in [0, 2**32)")


def _fraction(key: str, value: float) -> None:
    if not 0 <= value <= 1:
        raise ConfigError(f"{key}: {value} must be in [0, 1]")
