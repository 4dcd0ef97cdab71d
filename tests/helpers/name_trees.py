"""Empty-file trees that follow the datasets' full official file lists.

ROSE-Youtu's tree is the official HFN+MP repository's list of the release
(``data/data_list/ROSE-ALL.csv`` in RizhaoCai/MetaPattern_FAS @847ba96), as the package
ships it in ``mpfas/data/datasets/rose_youtu_release.csv``: 3497 videos, 897 live,
1799 print, 801 replay, test folders spelled ``_<n>``.
"""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path


def _touch(root: Path, rel: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.touch()


def oulu_tree(root: Path) -> None:
    # Train users 1-20, Dev 21-35, Test 36-55; 6 phones x 3 sessions x 5 files each
    for split, users in (("Train", range(1, 21)), ("Dev", range(21, 36)), ("Test", range(36, 56))):
        for phone in range(1, 7):
            for session in range(1, 4):
                for user in users:
                    for f in range(1, 6):
                        _touch(root, f"{split}_files/{phone}_{session}_{user:02d}_{f}.avi")  # users have two digits
    _touch(root, "Train_files/1_1_01_1.txt")  # eye-position side files are ignored


def casia_tree(root: Path) -> None:
    names = [str(i) for i in range(1, 9)] + [f"HR_{i}" for i in range(1, 5)]
    for split, n in (("train", 20), ("test", 30)):
        for subject in range(1, n + 1):
            for name in names:
                _touch(root, f"{split}_release/{subject}/{name}.avi")


def replay_tree(root: Path) -> None:
    clients = {"train": range(1, 16), "devel": range(16, 31), "test": range(31, 51)}
    for split, ids in clients.items():
        for c in ids:
            for light in ("adverse", "controlled"):
                for n in (1, 2):
                    _touch(root, f"{split}/real/client{c:03d}_session01_webcam_authenticate_{light}_{n}.mov")
                for support in ("fixed", "hand"):
                    att = f"{split}/attack/{support}/attack"
                    _touch(root, f"{att}_print_client{c:03d}_session01_highdef_photo_{light}.mov")
                    for device in ("highdef", "mobile"):
                        for medium in ("photo", "video"):
                            _touch(root, f"{att}_{device}_client{c:03d}_session01_{device}_{medium}_{light}.mov")
    # enroll/ is part of the dataset but not of the protocols
    _touch(root, "enroll/train/client001_session01_enroll_adverse_1.mov")


MSU_TRAIN = [2, 3, 5, 6, 7, 8, 9, 11, 12, 21, 22, 34, 53, 54, 55]
MSU_TEST = [1, 13, 14, 23, 24, 26, 28, 29, 30, 32, 33, 35, 36, 37, 39, 42, 48, 49, 50, 51]


def msu_tree(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "train_sub_list.txt").write_text("\n".join(f"{c:03d}" for c in MSU_TRAIN) + "\n")
    (root / "test_sub_list.txt").write_text("\n".join(f"{c:03d}" for c in MSU_TEST) + "\n")
    for c in MSU_TRAIN + MSU_TEST:
        for cam, ext in (("android", "mp4"), ("laptop", "mov")):
            _touch(root, f"scene01/real/real_client{c:03d}_{cam}_SD_scene01.{ext}")
            for kind in ("ipad_video", "iphone_video", "printed_photo"):
                _touch(root, f"scene01/attack/attack_client{c:03d}_{cam}_SD_{kind}_scene01.{ext}")


def rose_release() -> list[tuple[str, str, int]]:
    """(relpath, label, faces) of each row of the shipped ROSE-Youtu list, read with the csv
    module alone (not the package's reader, which the tests check against it)."""
    text = resources.files("mpfas.data.datasets").joinpath("rose_youtu_release.csv").read_text(encoding="utf-8")
    rows = csv.reader(line for line in text.splitlines() if not line.startswith("#"))
    assert next(rows) == ["relpath", "label", "faces"]
    return [(path, label, int(faces)) for path, label, faces in rows]


def rose_tree(root: Path) -> None:
    for relpath, _, _ in rose_release():
        _touch(root, relpath)
    _touch(root, "train/2/readme.txt")  # not a video: ignored


TREES = {"O": oulu_tree, "C": casia_tree, "I": replay_tree, "M": msu_tree, "Y": rose_tree}


def oulu_protocol_lists(root: Path, fold_order: tuple[int, ...] = (1, 2, 3, 4, 5, 6), nest: str = "Protocols") -> None:
    """``Protocols/Protocol_<n>/`` lists in the release's format (``+1,<video>`` live, ``-1``
    print, ``-2`` replay), written from the OULU-NPU paper's Table II: P1 sessions 1-2 vs 3,
    P2 printer/display 1 (files 2, 4) vs 2 (files 3, 5), P3 five phones vs the sixth, P4 all
    three. ``fold_order[k - 1]`` is the phone the ``_k`` lists of P3/P4 leave out."""
    users = {"Train": range(1, 21), "Dev": range(21, 36), "Test": range(36, 56)}
    label = {1: "+1", 2: "-1", 3: "-1", 4: "-2", 5: "-2"}

    def write(rel: str, keep) -> None:
        split = rel.rsplit("/", 1)[1].split("_")[0].split(".")[0]
        lines = [f"{label[f]},{p}_{s}_{u:02d}_{f}" for p in range(1, 7) for s in range(1, 4)
                 for u in users[split] for f in range(1, 6) if keep(p, s, f)]
        path = root / nest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")

    for split in ("Train", "Dev", "Test"):
        test = split == "Test"
        write(f"Protocol_1/{split}.txt", lambda p, s, f, t=test: (s == 3) == t)
        write(f"Protocol_2/{split}.txt", lambda p, s, f, t=test: f in ((1, 3, 5) if t else (1, 2, 4)))
        for k, phone in enumerate(fold_order, 1):
            write(f"Protocol_3/{split}_{k}.txt", lambda p, s, f, t=test, x=phone: (p == x) == t)
            write(f"Protocol_4/{split}_{k}.txt", lambda p, s, f, t=test, x=phone: (p == x) == t and (s == 3) == t
                  and f in ((1, 3, 5) if t else (1, 2, 4)))
