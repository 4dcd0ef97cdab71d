from collections import Counter

import pytest

from helpers.name_trees import TREES
from mpfas.data import DatasetError, Label, adapter_for, read_index, write_index

EXPECTED = {  # total, live, print, replay on the full official file lists
    "O": (4950, 990, 1980, 1980),
    "C": (600, 150, 300, 150),
    "I": (1200, 200, 200, 800),
    "M": (280, 70, 70, 140),
    "Y": (3497, 897, 1799, 801),  # the ROSE-Youtu release (Li et al., TIFS 2018)
}
SPLITS = {
    "O": {"train": 1800, "dev": 1350, "test": 1800},
    "C": {"train": 240, "test": 360},
    "I": {"train": 360, "dev": 360, "test": 480},
    "M": {"train": 120, "test": 160},
    "Y": {"train": 1751, "test": 1746},  # of the generated tree (the release does not publish its file list)
}


@pytest.fixture(scope="module")
def full_trees(tmp_path_factory):
    root = tmp_path_factory.mktemp("names")
    for code, make in TREES.items():
        make(root / code)
    return root


@pytest.mark.parametrize("code", ["O", "C", "I", "M", "Y"])
def test_full_name_tree_counts(full_trees, code):
    result = adapter_for(code).scan(full_trees / code)
    labels = Counter(r.label for r in result.records)
    total, live, prnt, replay = EXPECTED[code]
    assert len(result.records) == total
    assert (labels[Label.LIVE], labels[Label.PRINT], labels[Label.REPLAY]) == (live, prnt, replay)
    assert Counter(r.split for r in result.records) == SPLITS[code]
    assert result.unmatched == []
    assert len({r.relpath for r in result.records}) == total


def test_subjects_do_not_cross_splits(full_trees):
    for code in "OCIMY":
        split_of = {}
        for r in adapter_for(code).scan(full_trees / code).records:
            assert split_of.setdefault(r.subject, r.split) == r.split, (code, r.subject)


def test_attack_details(full_trees):
    casia = adapter_for("C").scan(full_trees / "C").records
    assert Counter(r.attack for r in casia if r.label is Label.PRINT) == {"warped_photo": 150, "cut_photo": 150}
    assert {r.subject for r in casia if r.split == "train"} & {r.subject for r in casia if r.split == "test"} == set()
    replay = adapter_for("I").scan(full_trees / "I").records
    assert not any("enroll" in r.relpath for r in replay)
    assert Counter(r.attack.split("_")[0] for r in replay if r.label is not Label.LIVE) == {"fixed": 500, "hand": 500}
    assert {r.capture for r in replay} == {"adverse", "controlled"}
    oulu = adapter_for("O").scan(full_trees / "O").records
    assert len({r.capture for r in oulu}) == 18  # 6 phones x 3 sessions


def test_unmatched_files_warned_and_skipped(tmp_path, caplog):
    TREES["C"](tmp_path)
    (tmp_path / "train_release" / "1" / "9.avi").touch()
    (tmp_path / "train_release" / "1" / "notes.txt").touch()
    result = adapter_for("C").scan(tmp_path)
    assert len(result.records) == 600
    assert result.unmatched == ["train_release/1/9.avi"]
    assert "9.avi" in caplog.text


def test_missing_root_and_missing_msu_lists(tmp_path):
    with pytest.raises(DatasetError, match="OULU-NPU"):
        adapter_for("O").scan(tmp_path / "nope")
    (tmp_path / "scene01" / "real").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"train_sub_list\.txt"):
        adapter_for("M").scan(tmp_path)


def test_index_round_trip(full_trees, tmp_path):
    records = adapter_for("I").scan(full_trees / "I").records
    write_index(records, tmp_path / "I.csv")
    assert read_index(tmp_path / "I.csv") == records
    assert not list(tmp_path.glob("*.tmp"))


def test_rose_youtu_types_and_folders(full_trees):
    """Type prefix -> label and attack; ``_13``-style test folders give subject 13; no subject in two splits."""
    recs = adapter_for("Y").scan(full_trees / "Y").records
    attacks = Counter(r.attack for r in recs if r.label is Label.PRINT)
    assert set(attacks) == {"paper_still", "paper_quivering", "mask_cropped", "mask_full", "mask_upper"}
    assert set(Counter(r.attack for r in recs if r.label is Label.REPLAY)) == {"video_lenovo", "video_mac"}
    assert all(r.relpath.split("/")[1].startswith("_") for r in recs if r.split == "test")
    assert {r.subject for r in recs if r.split == "test"} == {str(s) for s in range(13, 23)}
    parse = adapter_for("Y").parse
    assert parse("test/_13/G_NT_HW_g_E_13_1.mp4").subject == "13"
    assert parse("train/3/Mu_T_5s_wg_E_3_2.MP4").label is Label.PRINT
    assert parse("train/3/Xx_T_5s_wg_E_3_2.mp4") is None  # unknown type
    assert parse("dev/3/G_T_5s_wg_E_3_2.mp4") is None  # no such split in the release
