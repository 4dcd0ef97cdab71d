"""``demo.size: full``: every file of the four datasets' official protocols.

OULU-NPU 4950, CASIA-FASD 600, Replay-Attack 1200 (``enroll/`` is left out: no
protocol reads it) and MSU-MFSD 280 videos, 7030 in all, with the real names.
Each kind of file is rendered as the small demo renders it (see layout). The
lists are enumerated, not drawn, so only identities and pixels depend on the
seed. A spec's ``subject`` counts the dataset's subjects in file order, an index
into the identities of faces.reuse_identities.
"""

from __future__ import annotations

from .layout import CASIA_NAMES, MSU_ATTACKS, MSU_CAMERAS, MSU_TEST, MSU_TRAIN, OULU_FILES, VideoSpec

OULU_USERS = {"Train": range(1, 21), "Dev": range(21, 36), "Test": range(36, 56)}
CASIA_SUBJECTS = {"train": 20, "test": 30}
REPLAY_CLIENTS = {"train": range(1, 16), "devel": range(16, 31), "test": range(31, 51)}
REPLAY_LIGHTS = ("adverse", "controlled")
# Replay-Attack screen attacks: device in the file name -> screen style (prints are high-def photos on paper)
REPLAY_SCREENS = {"highdef": "ipad", "mobile": "iphone"}
SUBJECTS = {"O": 55, "C": 50, "I": 50, "M": 35}  # identities each domain needs
VIDEOS = {"O": 4950, "C": 600, "I": 1200, "M": 280}


def _oulu() -> list[VideoSpec]:
    videos = []
    for split, users in OULU_USERS.items():
        for user in users:
            for phone in range(1, 7):
                for session in range(1, 4):
                    for f, (label, medium, device) in OULU_FILES.items():
                        videos.append(VideoSpec("O", f"{split}_files/{phone}_{session}_{user:02d}_{f}.avi",
                                                user - 1, label, medium, device, f"phone{phone}_session{session}"))
    return videos


def _casia() -> list[VideoSpec]:
    videos, subject = [], 0
    for split, n in CASIA_SUBJECTS.items():
        for k in range(1, n + 1):
            for quality, (live, warped, cut, replay) in CASIA_NAMES.items():
                d = f"{split}_release/{k}"
                videos += [
                    VideoSpec("C", f"{d}/{live}.avi", subject, "live", "live", "", quality),
                    VideoSpec("C", f"{d}/{warped}.avi", subject, "print", "print", "warped_photo", quality),
                    VideoSpec("C", f"{d}/{cut}.avi", subject, "print", "print", "cut_photo", quality),
                    VideoSpec("C", f"{d}/{replay}.avi", subject, "replay", "replay_video", "ipad", quality),
                ]
            subject += 1
    return videos


def _replay_client(split: str, c: int) -> list[VideoSpec]:
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


def _replay() -> list[VideoSpec]:
    return [v for split, clients in REPLAY_CLIENTS.items() for c in clients for v in _replay_client(split, c)]


def _msu() -> list[VideoSpec]:
    videos = []
    for i, cid in enumerate(MSU_TRAIN + MSU_TEST):
        client = f"client{cid:03d}"
        for cam, ext in MSU_CAMERAS.items():
            videos.append(VideoSpec("M", f"scene01/real/real_{client}_{cam}_SD_scene01.{ext}", i,
                                    "live", "live", "", cam))
            for kind, (label, medium, device) in MSU_ATTACKS.items():
                videos.append(VideoSpec("M", f"scene01/attack/attack_{client}_{cam}_SD_{kind}_scene01.{ext}",
                                        i, label, medium, device, cam))
    return videos


def _msu_lists() -> dict[str, str]:
    return {"train_sub_list.txt": "".join(f"{c:03d}\n" for c in MSU_TRAIN),
            "test_sub_list.txt": "".join(f"{c:03d}\n" for c in MSU_TEST)}


_PLANS = {"O": _oulu, "C": _casia, "I": _replay, "M": _msu}


def full_plan(code: str) -> tuple[list[VideoSpec], dict[str, str]]:
    """Video specs and side files (relative path -> text) of one full-size domain."""
    if code not in _PLANS:
        raise ValueError(f"unknown dataset code {code!r}")
    return _PLANS[code](), (_msu_lists() if code == "M" else {})
