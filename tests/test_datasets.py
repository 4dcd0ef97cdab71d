from collections import Counter

import pytest

from helpers.name_trees import TREES, rose_release
from mpfas.data import DatasetError, Label, adapter_for, dataset_spec, read_index, write_index
from mpfas.data.datasets import rose_youtu

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
    "Y": {"train": 1775, "test": 1722},  # the official list (MetaPattern_FAS data/data_list/ROSE-ALL.csv)
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
    """Type prefix -> label and attack; ``_13``-style test folders (as the release spells them) give
    subject 13; the release's subjects (no 1, 8 or 19)."""
    recs = adapter_for("Y").scan(full_trees / "Y").records
    attacks = Counter(r.attack for r in recs if r.label is Label.PRINT)
    assert set(attacks) == {"paper_still", "paper_quivering", "mask_cropped", "mask_full", "mask_upper"}
    assert set(Counter(r.attack for r in recs if r.label is Label.REPLAY)) == {"video_lenovo", "video_mac"}
    assert all(r.relpath.split("/")[1].startswith("_") for r in recs if r.split == "test")
    assert {r.subject for r in recs if r.split == "train"} == {str(s) for s in (2, 3, 4, 5, 6, 7, 9, 10, 11, 12)}
    assert {r.subject for r in recs if r.split == "test"} == {str(s) for s in (13, 14, 15, 16, 17, 18, 20, 21, 22, 23)}
    parse = adapter_for("Y").parse
    assert parse("test/_13/G_NT_HW_g_E_13_1.mp4").subject == "13"
    assert parse("train/3/Mu_T_5s_wg_E_3_2.MP4").label is Label.PRINT
    assert parse("train/3/Xx_T_5s_wg_E_3_2.mp4") is None  # unknown type
    assert parse("dev/3/G_T_5s_wg_E_3_2.mp4") is None  # no such split in the release


def test_rose_youtu_release_list_parses_to_its_own_labels():
    """Every name of the official list parses with our adapter to the list's label, at the
    release's counts; the third column is 0 (no face for the authors' detector) for 180 videos."""
    rows = rose_release()
    parse = adapter_for("Y").parse
    parsed = {path: parse(path) for path, _, _ in rows}
    assert [p for p, r in parsed.items() if r is None] == []
    assert [p for p, label, _ in rows if parsed[p].label.value != label] == []
    assert len(parsed) == len(rows) == 3497
    assert Counter(r.label for r in parsed.values()) == {Label.LIVE: 897, Label.PRINT: 1799, Label.REPLAY: 801}
    assert Counter(label for _, label, faces in rows if faces == 0) == {"replay": 148, "print": 29, "live": 3}


def test_rose_youtu_demo_plan_is_the_release_list():
    """``DemoPlan.full`` (what ``demo.size: full`` writes and the raw stage checks a copy with) is
    the shipped list, name for name, and so is the package's reader; each spec's phone is the
    name's third field and its subject the folder."""
    paths = sorted(path for path, _, _ in rose_release())
    specs, side = dataset_spec("Y").demo.full()
    assert [s.relpath for s in specs] == paths == rose_youtu.full_names() and side == {}
    assert [(f.relpath, f.label, f.faces) for f in rose_youtu.release()] == sorted(rose_release())
    assert {(s.relpath.split("/")[2].split("_")[2], s.capture) for s in specs} == {
        (p, p) for p in rose_youtu.ROSE_PHONES}
    subjects = [s for ids in rose_youtu.ROSE_SUBJECTS.values() for s in ids]
    assert all(subjects[s.subject] == int(s.relpath.split("/")[1].lstrip("_")) for s in specs)
