"""Idiap Replay-Attack: ``{train,devel,test}/{real,attack/{fixed,hand}}/*.mov``; ``enroll/`` unused."""

from __future__ import annotations

import re

import numpy as np

from mpfas.data.base import DatasetAdapter
from mpfas.data.demo_plan import Camera, Dealt, DemoPlan, Files, Place, VideoSpec
from mpfas.data.records import Label, VideoRecord
from mpfas.data.registry import DatasetSpec

_SPLITS = {"train": "train", "devel": "dev", "test": "test"}
_REAL = re.compile(
    r"^(train|devel|test)/real/client(\d+)_session\d+_webcam_authenticate_(adverse|controlled)_\d+\.mov$"
)
_ATTACK = re.compile(
    r"^(train|devel|test)/attack/(fixed|hand)/attack_(print|highdef|mobile)_client(\d+)_session\d+_"
    r"\w*?(photo|video)_(adverse|controlled)\.mov$"
)


class ReplayAttack(DatasetAdapter):
    code = "I"
    name = "Replay-Attack"
    skip_dirs = ("enroll",)

    def parse(self, relpath: str) -> VideoRecord | None:
        if m := _REAL.match(relpath):
            split, client, light = m.groups()
            return VideoRecord(
                dataset=self.code, relpath=relpath, subject=str(int(client)), split=_SPLITS[split],
                label=Label.LIVE, capture=light,
            )
        if m := _ATTACK.match(relpath):
            split, support, device, client, medium, light = m.groups()
            # attack_print_* is a paper print; highdef/mobile show a photo or video on a screen
            label = Label.PRINT if device == "print" else Label.REPLAY
            return VideoRecord(
                dataset=self.code, relpath=relpath, subject=str(int(client)), split=_SPLITS[split],
                label=label, attack=f"{support}_{device}_{medium}", capture=light,
            )
        return None


# ---------------------------------------------------------------- demo

REPLAY_CLIENTS = {"train": range(1, 16), "devel": range(16, 31), "test": range(31, 51)}
REPLAY_LIGHTS = ("adverse", "controlled")
# screen attacks: device in the file name -> screen style (prints are high-def photos on paper)
REPLAY_SCREENS = {"highdef": "ipad", "mobile": "iphone"}
# one MacBook webcam, 320x240, strong compression, yellow cast
_CAMERAS = {
    "controlled": Camera((320, 240), gains=(1.12, 1.03, 0.78), noise=0.03, blur=1.0, jpeg=55,
                         saturation=0.7, vignette=0.25),
    "adverse": Camera((320, 240), gains=(1.1, 1.02, 0.82), exposure=0.75, noise=0.045, blur=1.2,
                      jpeg=50, saturation=0.65, gamma=1.1, vignette=0.3),
}
# uniform office wall (controlled); dark room with a bright window (adverse)
_PLACES = {
    "controlled": Place((0.85, 0.8, 0.7), (0.78, 0.72, 0.62), ((0.0, 0.85, 1.0, 1.0, (0.5, 0.45, 0.4)),),
                        (0.0, -1.0), 0.1, 0.08),
    "adverse": Place((0.3, 0.3, 0.33), (0.22, 0.22, 0.24),
                     ((0.55, 0.05, 0.95, 0.6, (1.0, 1.0, 1.0)), (0.0, 0.65, 0.35, 1.0, (0.2, 0.15, 0.1))),
                     (1.0, -0.3), 0.45, 0.35),
}


def _small(dealt: Dealt, rng: np.random.Generator) -> Files:
    videos = []
    for i, split, _k in dealt:
        client = f"client{i + 1:03d}"
        for light in ("controlled", "adverse"):
            videos.append(VideoSpec("I", f"{split}/real/{client}_session01_webcam_authenticate_{light}_1.mov",
                                    i, "live", "live", "", light))
        for device, screen in (("print", ""), ("highdef", "ipad"), ("mobile", "iphone")):
            light = ("controlled", "adverse")[int(rng.integers(2))]
            support = ("hand", "fixed")[int(rng.integers(2))]
            medium = "print" if device == "print" else ("replay_photo", "replay_video")[int(rng.integers(2))]
            what = "photo" if medium != "replay_video" else "video"
            source = "mobile" if device == "mobile" else "highdef"
            name = f"attack_{device}_{client}_session01_{source}_{what}_{light}.mov"
            videos.append(VideoSpec("I", f"{split}/attack/{support}/{name}", i,
                                    "print" if device == "print" else "replay", medium,
                                    "photo" if device == "print" else screen, light, support))
    return videos, {}


def _client(split: str, c: int) -> list[VideoSpec]:
    """One client's 4 real and 20 attack videos."""
    client, i = f"client{c:03d}", c - 1
    videos = []
    for light in REPLAY_LIGHTS:
        for take in (1, 2):
            videos.append(VideoSpec("I", f"{split}/real/{client}_session01_webcam_authenticate_{light}_{take}.mov",
                                    i, "live", "live", "", light))
        for support in ("fixed", "hand"):
            att = f"{split}/attack/{support}/attack"
            videos.append(VideoSpec("I", f"{att}_print_{client}_session01_highdef_photo_{light}.mov",
                                    i, "print", "print", "photo", light, support))
            for device, screen in REPLAY_SCREENS.items():
                for what in ("photo", "video"):
                    videos.append(VideoSpec("I", f"{att}_{device}_{client}_session01_{device}_{what}_{light}.mov",
                                            i, "replay", f"replay_{what}", screen, light, support))
    return videos


def _full() -> Files:
    return [v for split, clients in REPLAY_CLIENTS.items() for c in clients for v in _client(split, c)], {}


SPEC = DatasetSpec(
    order=2, adapter=ReplayAttack, splits=("train", "dev", "test"),
    demo=DemoPlan(key=2, split_dirs=("train", "devel", "test"), small=_small, camera=_CAMERAS.__getitem__,
                  place=_PLACES.__getitem__, full=_full, full_subjects=50),
)
