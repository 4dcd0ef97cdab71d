"""Real aligned faces and checkpoints for the inference tests: a tiny synthetic demo, faces
cut from it by real MTCNN and the pipeline's warp, and randomly initialised models saved in
the training checkpoint format."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import cv2
import pytest
import torch
from skimage import data

from helpers import param_defaults as dflt
from mpfas.data import Label, adapter_for
from mpfas.models import RandomInitWarning, build_model
from mpfas.models.checkpoint import Checkpoint, Preprocess, save

SIZE = 64  # crop and model input: small keeps the tests fast
ALIGN = dflt.align(crop_size=SIZE)
EXTRACT = dflt.extract(frames_per_video=3)
# what make_checkpoint records its faces were made with: test_predict's `project` params.yaml
TRAINED_ON = Preprocess.from_params(dflt.params(align=ALIGN, extract=EXTRACT, score=dflt.score(faces_per_video=2)))
_CACHE: dict[str, object] = {}
# a real face photo, downscaled so MTCNN's pyramid stays cheap (BGR, as written to disk)
ASTRONAUT = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (256, 256), interpolation=cv2.INTER_AREA)


def demo_root(factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic demo (4 subjects, 4 frames) in the four real layouts, made once per session."""
    if "demo" not in _CACHE:
        from mpfas.demo import synthesize_demo

        root = factory.mktemp("demo")
        synthesize_demo(dflt.demo(seed=0, subjects=4, frames=4), root, progress=False, workers=1)
        _CACHE["demo"] = root
    return _CACHE["demo"]  # type: ignore[return-value]


def demo_videos(root: Path, code: str = "M") -> dict[str, list]:
    """The demo's VideoRecords of one dataset by label (live, print, replay)."""
    records = adapter_for(code).scan(root / {"O": "OULU-NPU", "C": "CASIA-FASD", "I": "Replay-Attack",
                                             "M": "MSU-MFSD"}[code]).records
    return {label.value: [r for r in records if r.label == label] for label in Label}


def real_faces(factory: pytest.TempPathFactory) -> list[Path]:
    """Aligned SIZE x SIZE faces (PNG) from demo videos: real MTCNN + the pipeline's warp."""
    if "faces" not in _CACHE:
        from mpfas.preprocess.align import detector_for
        from mpfas.preprocess.frames import read_sampled_frames
        from mpfas.preprocess.warp import warp_face

        root = demo_root(factory)
        out = factory.mktemp("faces")
        detector = detector_for(ALIGN)
        by_label = demo_videos(root, "M")
        paths = []
        for label, recs in by_label.items():
            rec = recs[0]
            frames = read_sampled_frames(root / "MSU-MFSD" / rec.relpath, 2).images
            for i, (img, face) in enumerate(zip(frames, detector.detect([cv2.cvtColor(f, cv2.COLOR_BGR2RGB)
                                                                          for f in frames]))):
                assert face is not None, f"no face in demo video {rec.relpath}"
                path = out / f"{label}_{i}.png"
                cv2.imwrite(str(path), warp_face(img, face.landmarks, SIZE, ALIGN.padding))
                paths.append(path)
        _CACHE["faces"] = paths
    return _CACHE["faces"]  # type: ignore[return-value]


def make_checkpoint(path: Path, *, threshold: float | None = 0.5, seed: int = 0, backbone: str = "resnet18",
                    preprocess: Preprocess | None = TRAINED_ON) -> Path:
    """A randomly initialised eval-mode model saved in the training checkpoint format
    (``preprocess=None``: the dict today's training wrote before checkpoints had a schema)."""
    torch.manual_seed(seed)
    cfg = dflt.model(backbone=backbone, input_size=SIZE, pattern="meta")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomInitWarning)
        model = build_model(cfg)
    # BatchNorm statistics of the random net on noise: an untouched random init (mean 0, var 1)
    # gives nearly the same output for every face, which would make parity checks blind
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        model(torch.rand(16, 3, SIZE, SIZE))
    model.eval()
    if preprocess is None:  # the unversioned dict of before
        torch.save({"model": model.state_dict(), "model_config": dataclasses.asdict(cfg), "iteration": 7,
                    "protocol": "OCI-M", "select": "source_val", "val": {"threshold": threshold},
                    "threshold": threshold}, path)
        return path
    save(Checkpoint(kind="best", model=model.state_dict(), model_config=dataclasses.asdict(cfg),
                    preprocess=preprocess, protocol="OCI-M", iteration=7, selection="source_val",
                    val={} if threshold is None else {"threshold": threshold}, threshold=threshold,
                    threshold_rule="none" if threshold is None else "source-val EER", run_id="", fingerprint=""),
         path)
    return path
