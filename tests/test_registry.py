"""The dataset and backbone registries: a new dataset or backbone is one registration.

The toy dataset and toy backbone live only here; registering them (and nothing else)
makes config accept them, the raw stage index the dataset, the demo draw it and the
HFN build on the backbone.
"""

from __future__ import annotations

import csv
import re
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from torch import nn

from helpers import param_defaults as dflt
from helpers.name_trees import TREES
from mpfas.core.config import ConfigError, parse_params
from mpfas.data import (
    DatasetAdapter,
    DatasetSpec,
    Label,
    VideoRecord,
    check_params,
    dataset_codes,
    dataset_root,
    demo_codes,
    read_index,
    registered,
    write_index,
)
from mpfas.data.demo_plan import Camera, DemoPlan, Place, VideoSpec
from mpfas.data.raw import build_raw, index_datasets
from mpfas.demo import synth
from mpfas.models import MetaPatternFAS, frame_score
from mpfas.models.backbones import backbone_names, check_backbone, register_backbone, unregister_backbone
from mpfas.preprocess.align import run_align
from mpfas.preprocess.extract import run_extract

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- a toy image dataset

_TOY_NAME = re.compile(r"^(train|test)/(live|print|replay)/(\d+)_(\d+)\.png$")


class ToySpoof(DatasetAdapter):
    """CelebA-Spoof style: one image per sample, ``<split>/<label>/<subject>_<n>.png``."""

    code = "T"
    name = "Toy-Spoof"
    media = "image"

    def parse(self, relpath: str) -> VideoRecord | None:
        m = _TOY_NAME.match(relpath)
        if not m:
            return None
        split, label, subject, _ = m.groups()
        return VideoRecord(dataset=self.code, relpath=relpath, subject=subject, split=split, label=Label(label))


def _toy_small(dealt, rng):
    videos = []
    for i, split, _ in dealt:
        for n, (label, medium, device) in enumerate((("live", "live", ""), ("print", "print", "photo"),
                                                     ("replay", "replay_photo", "ipad"))):
            videos.append(VideoSpec("T", f"{split}/{label}/{i:03d}_{n}.png", i, label, medium, device, "studio"))
    return videos, {}


def _toy_camera(capture: str) -> Camera:
    return Camera((160, 120), noise=0.01, jpeg=90)


def _toy_place(capture: str) -> Place:
    return Place((0.7, 0.7, 0.72), (0.6, 0.6, 0.62))


# module-level functions, not lambdas: the demo's worker processes receive the spec pickled
TOY = DatasetSpec(
    adapter=ToySpoof, splits=("train", "test"),
    demo=DemoPlan(key=5, split_dirs=("train", "test"), small=_toy_small, camera=_toy_camera, place=_toy_place),
)


@pytest.fixture
def toy():
    with registered(TOY) as spec:
        yield spec
    assert "T" not in dataset_codes()


def test_builtins_are_registered_in_order():
    assert dataset_codes()[:5] == ("O", "C", "I", "M", "Y") and demo_codes()[:5] == ("O", "C", "I", "M", "Y")


def test_toy_image_dataset_is_synthesised_and_indexed(toy, tmp_path):
    """Registering the spec is all it takes: the demo draws it as one-frame images, the raw
    stage indexes it next to O, C, I, M, and the index reads back."""
    cfg = dflt.demo(subjects=2, frames=2, scale=0.5)
    params = dflt.params(data=dflt.data(demo_root=str(tmp_path / "raw"), datasets=["O", "C", "I", "M", "Y", "T"]),
                         demo=cfg)
    counts = build_raw(params, tmp_path / "index")
    assert list(counts["datasets"]) == ["O", "C", "I", "M", "Y", "T"]
    assert counts["datasets"]["T"] == {"videos": 6, "live": 2, "print": 2, "replay": 2,
                                       "splits": {"test": 1 * 3, "train": 1 * 3}}
    images = sorted((tmp_path / "raw" / "Toy-Spoof").rglob("*.png"))
    assert len(images) == 6
    frame = cv2.imread(str(images[0]))
    assert frame is not None and frame.shape == (64, 80, 3)  # one frame: the toy camera (160 x 120) at demo.scale 0.5
    records = read_index(tmp_path / "index" / "T.csv", "T")
    assert {r.label for r in records} == {Label.LIVE, Label.PRINT, Label.REPLAY}
    assert all(r.relpath.endswith(".png") and r.size > 0 for r in records)


def test_toy_images_go_through_extract_and_align_as_one_frame_videos(toy, tmp_path, monkeypatch):
    """An image is a one-frame video: extract reads it with cv2.imread (frame 0, no warning),
    and the real MTCNN finds and aligns the demo face in it."""
    monkeypatch.setattr(synth, "demo_codes", lambda: ("T",))
    synth.synthesize_demo(dflt.demo(subjects=2, frames=2), tmp_path / "raw", progress=False, workers=1)
    root = tmp_path / "raw" / "Toy-Spoof"
    records = ToySpoof().scan(root).records
    assert len(records) == 6
    summary = run_extract(records, root, tmp_path / "frames", dflt.extract(frames_per_video=3),
                          rel_to=tmp_path, progress=False)
    assert (summary.frames, summary.errors, summary.warnings) == (6, 0, 0)
    with open(tmp_path / "frames" / "frames.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["frame"] for r in rows] == ["0"] * 6
    for rec, row in zip(records, rows):  # the frame is the image's pixels (png: lossless)
        stored = cv2.imread(str(tmp_path / row["path"]))
        assert np.array_equal(stored, cv2.imread(str(root / rec.relpath)))
    limits = {**dflt.align().max_failed_videos, "T": 0.05}
    aligned = run_align(records, tmp_path / "frames" / "frames.csv", tmp_path / "faces",
                        dflt.align(crop_size=64, max_failed_videos=limits), rel_to=tmp_path, progress=False)
    assert aligned.frames == 6 and aligned.faces == 6 and aligned.videos_without_face == 0
    face = cv2.imread(str(next((tmp_path / "faces").rglob("f00000.png"))))
    assert face is not None and face.shape == (64, 64, 3)


def test_adding_a_dataset_leaves_the_others_unchanged(toy):
    """Identities and random streams of O, C, I, M do not move when a dataset is added."""
    cfg = dflt.demo(subjects=3)
    with_toy = synth.plan_demo(cfg)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(synth, "demo_codes", lambda: ("O", "C", "I", "M"))
        without = synth.plan_demo(cfg)
    assert list(with_toy) == ["O", "C", "I", "M", "Y", "T"]
    assert {c: with_toy[c] for c in without} == without


def test_toy_index_round_trip_and_unknown_codes(toy, tmp_path):
    rec = VideoRecord(dataset="T", relpath="train/live/000_0.png", subject="0", split="train", label=Label.LIVE)
    write_index([rec], tmp_path / "T.csv")
    assert read_index(tmp_path / "T.csv") == [rec]
    with registered(replace(TOY, adapter=type("Other", (ToySpoof,), {"code": "U"}))):
        assert dataset_codes()[-2:] == ("T", "U")
    assert "U" not in dataset_codes()


# ---------------------------------------------------------------- config and real roots

def _params_text(**data) -> str:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"].update(data)
    return yaml.safe_dump(raw)


def _with_protocols(text: str, protocols: list[str]) -> str:
    raw = yaml.safe_load(text)
    raw["data"]["protocols"] = protocols
    return yaml.safe_dump(raw)


def test_real_mode_needs_only_the_chosen_protocols_roots():
    roots = {"O": "", "C": "/data/casia", "I": "/data/idiap", "M": "/data/msu"}
    params = parse_params(_with_protocols(_params_text(source="real", roots=roots), ["MI-C"]))
    assert params.used_datasets() == ["C", "I", "M"]
    check_params(params)  # O's root may stay empty
    with pytest.raises(ConfigError, match=r"data\.roots\.C") as info:
        check_params(parse_params(_with_protocols(_params_text(source="real", roots={**roots, "C": ""}), ["MI-C"])))
    assert "CASIA-FASD" in str(info.value)


def test_real_mode_indexes_the_roots_that_are_set(tmp_path):
    for code in "CIM":
        TREES[code](tmp_path / code)
    roots = {"O": "", **{c: str(tmp_path / c) for c in "CIM"}}
    params = dflt.params(data=dflt.data(source="real", roots=roots, demo_root=str(tmp_path / "raw")))
    assert sorted(index_datasets(params)) == ["C", "I", "M"]


def test_config_accepts_a_registered_dataset_only(toy):
    text = yaml.safe_load(_params_text(roots={"O": "", "C": "", "I": "", "M": "", "T": ""}))
    text["manifests"]["protocols"]["OCI-T"] = {"sources": ["O", "C", "I"], "target": "T"}
    text["align"]["max_failed_videos"]["T"] = 0.5
    params = parse_params(yaml.safe_dump(text))
    assert dataset_root(params.data, "T").as_posix() == "data/raw/Toy-Spoof"


def test_config_refuses_an_unregistered_dataset():
    """The parser knows no registry; ``check_params``, which every stage runs first, does."""
    params = parse_params(_params_text(roots={"O": "", "C": "", "I": "", "M": "", "T": ""}))
    with pytest.raises(ConfigError, match=r"data\.roots: unknown dataset code\(s\) \['T'\]"):
        check_params(params)


# ---------------------------------------------------------------- a toy backbone

class _ToyBody(nn.Module):
    """Three strided convs: C3, C4, C5 at strides 8, 16, 32."""

    def __init__(self) -> None:
        super().__init__()
        self.c3 = nn.Conv2d(3, 8, kernel_size=3, stride=8, padding=1)
        self.c4 = nn.Conv2d(8, 16, kernel_size=3, stride=2, padding=1)
        self.c5 = nn.Conv2d(16, 32, kernel_size=3, stride=2, padding=1)

    def forward(self, x):
        c3 = self.c3(x)
        c4 = self.c4(c3)
        return c3, c4, self.c5(c4)


@pytest.fixture
def toy_backbone():
    register_backbone("toy", channels=(8, 16, 32))(_ToyBody)
    yield "toy"
    unregister_backbone("toy")
    assert "toy" not in backbone_names()


@pytest.mark.parametrize("pattern", ["meta", "none"])
def test_toy_backbone_builds_an_hfn(toy_backbone, pattern):
    torch.manual_seed(0)
    model = MetaPatternFAS(toy_backbone, 64, pattern).eval()
    assert isinstance(model.hfn.rgb_stream.body, _ToyBody)
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 64))
    assert out.map.shape == (2, 1, 8, 8) and out.logits.shape == (2, 2)
    assert torch.all((frame_score(out) >= 0) & (frame_score(out) <= 1))


def test_config_reads_the_backbone_registry(toy_backbone):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["model"]["backbone"] = "toy"
    name = parse_params(yaml.safe_dump(raw)).model.backbone
    check_backbone(name)
    unregister_backbone("toy")
    with pytest.raises(ConfigError, match=r"model\.backbone.*'toy'"):
        check_backbone(name)


def test_backbone_names_are_unique():
    with pytest.raises(ValueError, match="already registered"):
        register_backbone("resnet18", channels=(1, 2, 3))(lambda: nn.Identity())
    assert set(backbone_names()) >= {"efficientnet_lite0", "resnet18", "resnet50"}
