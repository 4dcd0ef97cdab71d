"""Scoring shared by training-time validation, the evaluate stage and prediction.

One definition of "the score of a video" keeps source-val model selection and the
reported numbers consistent (docs/method.md, "Method"): a video is represented by
``score.faces_per_video`` of its aligned faces (first and last detected frame when 2, evenly spread
otherwise), each frame is scored by the model's ``frame_score`` (higher = live) and the video score is
the mean of its frame scores.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from mpfas.core.errors import MpfasError
from mpfas.core.sampling import pick_evenly


class FaceReadError(MpfasError):
    """An aligned face file exists but cannot be decoded."""


def load_face(path: str | Path, size: int) -> Tensor:
    """One aligned face as a 3 x size x size float tensor in [0, 1] (bilinear resize)."""
    return to_unit(_decode(path, size))


_UNIT = torch.arange(256, dtype=torch.float32).div_(255.0)
_UNITS: dict[torch.device, Tensor] = {}


def to_unit(face: Tensor) -> Tensor:
    """uint8 pixels as floats in [0, 1], on ``face``'s device. Off the CPU, ``v / 255`` is looked up
    in a table the CPU computed (``scale_by_table``), so a face cached on a GPU gives the CPU's
    floats bit for bit: a GPU divides by a scalar as a multiplication by its reciprocal, which can
    differ in the last bit. On the CPU, dividing is faster than the lookup."""
    if face.device.type == "cpu":
        return face.float().div_(255.0)
    return scale_by_table(face)


def scale_by_table(face: Tensor) -> Tensor:
    table = _UNITS.get(face.device)
    if table is None:
        table = _UNITS.setdefault(face.device, _UNIT.to(face.device))
    return table[face.long()]


def _decode(path: str | Path, size: int) -> Tensor:
    """One aligned face as a 3 x size x size uint8 tensor (bilinear resize)."""
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if img.size != (size, size):
                img = img.resize((size, size), Image.Resampling.BILINEAR)
            arr = np.asarray(img, dtype=np.uint8)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: aligned face not found (re-run the align stage?)") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt: PIL's errors, one line
        raise FaceReadError(f"{path}: not a readable image ({exc}); re-run the align stage (`dvc repro`), "
                            "which remakes faces that are corrupt") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


HOST_CACHE_BYTES = 4 << 30


def cache_budget(device: torch.device, gpu_memory: int | None = None) -> int:
    """Bytes of decoded faces a :class:`FaceCache` on ``device`` may keep: 4 GiB in host memory;
    on a GPU, at most a quarter of its memory (``gpu_memory``: the card's total, read when None),
    so that an 8 GB card keeps room to train; past the budget faces are decoded each time."""
    if device.type != "cuda":
        return HOST_CACHE_BYTES
    if gpu_memory is None:
        gpu_memory = torch.cuda.get_device_properties(device).total_memory
    return min(HOST_CACHE_BYTES, gpu_memory // 4)


class FaceCache:
    """Decoded faces kept in memory as uint8 on ``device``, up to ``max_bytes``; then decoded each time.

    Training draws each source face many times and scores the same source-val and target faces
    at every evaluation; decoding the PNG again each time cost about 5 % of a CPU demo run.
    On a GPU the faces stay there, so batches are stacked, flipped and scaled on the GPU and never
    cross the bus again. ``load`` returns exactly what ``load_face`` returns (on ``device``). Safe to
    share between threads (a face decoded twice at once is stored once, identical either way).
    """

    def __init__(self, size: int, max_bytes: int = HOST_CACHE_BYTES, device: str | torch.device = "cpu") -> None:
        self.size, self.max_bytes, self.device = size, max_bytes, torch.device(device)
        self._faces: dict[str, Tensor] = {}
        self.bytes = 0

    def load(self, path: str | Path) -> Tensor:
        return to_unit(self.pixels(path))

    def pixels(self, path: str | Path) -> Tensor:
        """The face as 3 x size x size uint8 on ``device``; callers must not write into it (it is
        the cached tensor itself): batches stack these and scale the whole batch at once."""
        face = self._faces.get(str(path))
        if face is None:
            face = _decode(path, self.size).to(self.device)
            if self.bytes + face.numel() <= self.max_bytes:
                self._faces[str(path)] = face
                self.bytes += face.numel()
        return face

    def __len__(self) -> int:
        return len(self._faces)


def load_faces(paths: Sequence[str | Path], size: int, cache: FaceCache | None = None) -> Tensor:
    """Faces as a B x 3 x size x size float batch in [0, 1] (through ``cache`` when given)."""
    if not paths:
        return torch.empty(0, 3, size, size)
    if cache is None:
        return torch.stack([load_face(p, size) for p in paths])
    if cache.size != size:
        raise ValueError(f"face cache holds {cache.size} px faces, asked for {size} px")
    return to_unit(torch.stack([cache.pixels(p) for p in paths]))  # one scaling per batch, not per face


PRECISIONS = ("fp32", "bf16")


def autocast(device: torch.device, precision: str = "fp32", cache: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when ``precision`` is ``bf16``; otherwise (and on CPU) plain fp32,
    as the official code runs. ``cache`` False recasts the weights at every use (CUDA graph
    capture needs that)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision: {precision!r} is not one of {list(PRECISIONS)}")
    if precision == "bf16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=cache)
    return contextlib.nullcontext()


def to_device(rgb: Tensor, device: torch.device, channels_last: bool | None = None) -> Tensor:
    """Move a batch to ``device``, channels_last when asked (None: on CUDA only, where the model is)."""
    rgb = rgb.to(device, non_blocking=True)
    if channels_last is None:
        channels_last = device.type == "cuda"
    return rgb.contiguous(memory_format=torch.channels_last) if channels_last else rgb


@torch.no_grad()
def score_frames(model: nn.Module, paths: Sequence[str | Path], size: int, batch_size: int,
                 device: str | torch.device, precision: str = "fp32", cache: FaceCache | None = None) -> np.ndarray:
    """Frame scores (higher = live) for ``paths``, in order, in eval mode.

    The forward pass runs in ``precision``; the score itself is computed in fp32. The
    model's train/eval mode is restored afterwards so validation can run mid-training.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    scores: list[np.ndarray] = []
    try:
        for start in range(0, len(paths), batch_size):
            rgb = load_faces(paths[start : start + batch_size], size, cache)
            scores.append(score_batch(model, rgb, device, precision)[0])
    finally:
        model.train(was_training)
    return np.concatenate(scores).astype(np.float64) if scores else np.empty(0)


@torch.no_grad()
def score_batch(model: nn.Module, rgb: Tensor, device: torch.device,
                precision: str = "fp32") -> tuple[np.ndarray, torch.dtype]:
    """Frame scores of one in-memory B x 3 x S x S batch in [0, 1] (the model as it is, no
    mode change), and the dtype its forward pass produced (bf16 shows autocast was on).
    The forward pass runs in ``precision``; the score is computed in fp32."""
    with autocast(device, precision):
        out = model(to_device(rgb, device))
    return model.frame_score(out).cpu().numpy(), out.logits.dtype


def score_video_frames(model: nn.Module, videos: Sequence[Sequence[str]], size: int, batch_size: int,
                       device: str | torch.device, num_frames: int, precision: str = "fp32",
                       cache: FaceCache | None = None) -> list[np.ndarray]:
    """Each video's frame scores over ``pick_evenly(faces, num_frames)``, in one scoring pass."""
    picked = [pick_evenly(faces, num_frames) for faces in videos]
    frame_scores = score_frames(model, [p for frames in picked for p in frames], size, batch_size, device,
                                precision, cache)
    ends = np.cumsum([len(frames) for frames in picked], dtype=int)
    return np.split(frame_scores, ends[:-1]) if picked else []


def score_videos(model: nn.Module, videos: Sequence[Sequence[str]], size: int, batch_size: int,
                 device: str | torch.device, num_frames: int, precision: str = "fp32") -> np.ndarray:
    """Video scores: the mean frame score over ``pick_evenly(faces, num_frames)``.

    A video without faces gets NaN (callers decide whether that is an error).
    """
    per_video = score_video_frames(model, videos, size, batch_size, device, num_frames, precision)
    return np.array([s.mean() if s.size else np.nan for s in per_video])
