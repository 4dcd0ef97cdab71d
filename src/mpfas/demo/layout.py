"""Which files each demo domain gets, named exactly as in the real datasets.

This is ``demo.size: small`` (full.py lists every official file). Subjects are
dealt round-robin over a dataset's official splits, so every split gets one when
there are at least as many subjects as splits. Every subject gets about five
videos covering live, print and replay.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPLITS = {"O": ("Train", "Dev", "Test"), "C": ("train", "test"), "I": ("train", "devel", "test"),
          "M": ("train", "test")}
# MSU-MFSD's own subject lists (the small demo uses their first ids, full all of them)
MSU_TRAIN = (2, 3, 5, 6, 7, 8, 9, 11, 12, 21, 22, 34, 53, 54, 55)
MSU_TEST = (1, 13, 14, 23, 24, 26, 28, 29, 30, 32, 33, 35, 36, 37, 39, 42, 48, 49, 50, 51)
_OULU_FIRST_USER = {"Train": 1, "Dev": 21, "Test": 36}
# quality -> file names of (live, warped photo, cut photo, video replay)
CASIA_NAMES = {"low": ("1", "3", "5", "7"), "normal": ("2", "4", "6", "8"),
               "high": ("HR_1", "HR_2", "HR_3", "HR_4")}
# file number -> (label, medium, printer / display)
OULU_FILES = {1: ("live", "live", ""), 2: ("print", "print", "printer1"), 3: ("print", "print", "printer2"),
              4: ("replay", "replay_video", "display1"), 5: ("replay", "replay_video", "display2")}
# attack kind in the file name -> (label, medium, printer / screen)
MSU_ATTACKS = {"printed_photo": ("print", "print", "photo"), "ipad_video": ("replay", "replay_video", "ipad"),
               "iphone_video": ("replay", "replay_video", "iphone")}
MSU_CAMERAS = {"android": "mp4", "laptop": "mov"}  # camera -> container


@dataclass(frozen=True)
class VideoSpec:
    """One demo video: where it goes and how it is rendered."""

    code: str
    relpath: str        # relative to the dataset root, POSIX
    subject: int        # index into the domain's identities
    label: str          # live | print | replay
    medium: str         # live | print | replay_video | replay_photo
    device: str         # printer / screen style key ("" for live)
    capture: str        # camera + place key (see camera.camera_for, scene.place_for)
    support: str = "hand"  # hand | fixed


def _deal(code: str, subjects: int) -> list[tuple[int, str, int]]:
    """(subject index, split, number within split) for each subject."""
    splits = SPLITS[code]
    counts = {s: 0 for s in splits}
    out = []
    for i in range(subjects):
        split = splits[i % len(splits)]
        out.append((i, split, counts[split]))
        counts[split] += 1
    return out


def plan(code: str, subjects: int, seed: int) -> tuple[list[VideoSpec], dict[str, str]]:
    """Video specs and side files (relative path -> text) of one demo domain."""
    rng = np.random.default_rng([seed, 3, "OCIM".index(code)])
    videos: list[VideoSpec] = []
    side: dict[str, str] = {}
    dealt = _deal(code, subjects)
    if code == "O":
        for i, split, k in dealt:
            user = _OULU_FIRST_USER[split] + k
            phone, session = int(rng.integers(1, 7)), int(rng.integers(1, 4))
            cap = f"phone{phone}_session{session}"
            for f, (label, medium, device) in OULU_FILES.items():
                videos.append(VideoSpec(code, f"{split}_files/{phone}_{session}_{user:02d}_{f}.avi", i, label,
                                        medium, device, cap))
    elif code == "C":
        qualities = ("low", "normal", "high")
        for i, split, k in dealt:
            q = qualities[(i + int(rng.integers(3))) % 3]
            q2 = qualities[(qualities.index(q) + 1) % 3]
            live, warped, cut, replay = CASIA_NAMES[q]
            d = f"{split}_release/{k + 1}"
            videos += [
                VideoSpec(code, f"{d}/{live}.avi", i, "live", "live", "", q),
                VideoSpec(code, f"{d}/{CASIA_NAMES[q2][0]}.avi", i, "live", "live", "", q2),
                VideoSpec(code, f"{d}/{warped}.avi", i, "print", "print", "warped_photo", q),
                VideoSpec(code, f"{d}/{cut}.avi", i, "print", "print", "cut_photo", q),
                VideoSpec(code, f"{d}/{replay}.avi", i, "replay", "replay_video", "ipad", q),
            ]
    elif code == "I":
        for i, split, k in dealt:
            client = f"client{i + 1:03d}"
            for light in ("controlled", "adverse"):
                videos.append(VideoSpec(code, f"{split}/real/{client}_session01_webcam_authenticate_{light}_1.mov",
                                        i, "live", "live", "", light))
            for device, screen in (("print", ""), ("highdef", "ipad"), ("mobile", "iphone")):
                light = ("controlled", "adverse")[int(rng.integers(2))]
                support = ("hand", "fixed")[int(rng.integers(2))]
                medium = "print" if device == "print" else ("replay_photo", "replay_video")[int(rng.integers(2))]
                what = "photo" if medium != "replay_video" else "video"
                source = "mobile" if device == "mobile" else "highdef"
                name = f"attack_{device}_{client}_session01_{source}_{what}_{light}.mov"
                videos.append(VideoSpec(code, f"{split}/attack/{support}/{name}", i,
                                        "print" if device == "print" else "replay", medium,
                                        "photo" if device == "print" else screen, light, support))
    elif code == "M":
        ids = {"train": list(MSU_TRAIN), "test": list(MSU_TEST)}
        used: dict[str, list[int]] = {"train": [], "test": []}
        for i, split, k in dealt:
            cid = ids[split][k] if k < len(ids[split]) else 100 + i
            used[split].append(cid)
            client = f"client{cid:03d}"
            for cam, ext in MSU_CAMERAS.items():
                videos.append(VideoSpec(code, f"scene01/real/real_{client}_{cam}_SD_scene01.{ext}", i,
                                        "live", "live", "", cam))
            for kind, (label, medium, device) in MSU_ATTACKS.items():
                cam = ("android", "laptop")[int(rng.integers(2))]
                videos.append(VideoSpec(code, f"scene01/attack/attack_{client}_{cam}_SD_{kind}_scene01."
                                        f"{MSU_CAMERAS[cam]}", i, label, medium, device, cam))
        side = {"train_sub_list.txt": "".join(f"{c:03d}\n" for c in used["train"]),
                "test_sub_list.txt": "".join(f"{c:03d}\n" for c in used["test"])}
    else:
        raise ValueError(f"unknown dataset code {code!r}")
    return videos, side
