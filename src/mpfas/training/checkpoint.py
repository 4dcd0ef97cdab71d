"""Checkpoints: atomic writes, and everything a resumed run needs to continue bit for bit.

``best.pt`` (for evaluation and prediction) holds the model and how it was chosen;
``last.pt`` (for resume) adds optimiser, sampler and Python/NumPy/torch RNG states.
Everything is stored as tensors and plain Python types, so both load with
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import os
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch


def save_atomic(obj: dict[str, Any], path: str | Path) -> None:
    """``torch.save`` to a temp file in the same folder, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``), naming the file on failure."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol: the refusal below says it all
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated file, foreign pickle, ...
        raise ValueError(f"{path}: not a readable mpfas checkpoint ({_reason(exc)})") from exc


def _reason(exc: Exception) -> str:
    """One line: torch's own message is many lines and advises ``weights_only=False``."""
    text = str(exc)
    if "Weights only load failed" in text:
        return ("refused by torch.load(weights_only=True): it holds Python objects besides tensors "
                "and plain types, e.g. a foreign pickle, and loading it could run code")
    lines = [line for line in text.splitlines() if line.strip()]
    return (lines[0][:300] if lines else type(exc).__name__)


def rng_state() -> dict[str, Any]:
    """Python, NumPy (global) and torch (CPU + CUDA) RNG states as weights-only types."""
    np_state = np.random.get_state(legacy=False)
    state = {
        "python": random.getstate(),
        "numpy": {**np_state, "state": {"key": np_state["state"]["key"].tolist(),
                                        "pos": int(np_state["state"]["pos"])}},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = dict(state["numpy"])
    np_state["state"] = {"key": np.asarray(np_state["state"]["key"], dtype=np.uint32),
                         "pos": np_state["state"]["pos"]}
    np.random.set_state(np_state)
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
