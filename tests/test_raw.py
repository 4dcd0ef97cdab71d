"""The raw stage in `real` mode: roots validated, never written, indexed like the demo."""

from dataclasses import replace

import pytest

from mpfas.config import DataConfig, Params
from mpfas.datasets import DatasetError
from mpfas.raw import build_raw, index_datasets
from name_trees import TREES


def real_params(tmp_path, **roots):
    base = {code: str(tmp_path / code) for code in "OCIM"}
    base.update(roots)
    return Params(data=DataConfig(source="real", roots=base, demo_root=str(tmp_path / "raw")))


@pytest.fixture
def trees(tmp_path):
    for code, make in TREES.items():
        make(tmp_path / code)
    return tmp_path


def test_real_roots_are_indexed_and_untouched(trees, tmp_path):
    before = sorted(p.relative_to(trees) for p in trees.rglob("*"))
    counts = build_raw(real_params(trees), tmp_path / "index")
    assert {c: v["videos"] for c, v in counts["datasets"].items()} == {"O": 4950, "C": 600, "I": 1200, "M": 280}
    assert sorted((tmp_path / "index").glob("*.csv")) == [tmp_path / "index" / f"{c}.csv" for c in "CIMO"]
    after = sorted(p.relative_to(trees) for p in trees.rglob("*") if "index" not in p.parts and "raw" not in p.parts)
    assert after == before


@pytest.mark.parametrize("problem", ["missing", "empty", "no_rule"])
def test_bad_root_names_dataset_and_param(trees, tmp_path, problem):
    bad = tmp_path / "bad"
    if problem != "missing":
        bad.mkdir()
    if problem == "no_rule":
        (bad / "holiday.avi").touch()
    with pytest.raises(DatasetError) as info:
        index_datasets(real_params(trees, C=str(bad)))
    msg = str(info.value)
    assert "CASIA-FASD" in msg and "data.roots.C" in msg
    if problem == "no_rule":
        assert "match no naming rule" in msg


def test_demo_mode_needs_no_roots():
    assert replace(Params().data, source="demo").root("O").as_posix() == "data/raw/OULU-NPU"


def test_only_data_datasets_are_indexed(trees, tmp_path):
    """A dataset left out of data.datasets is not indexed even when its root is set."""
    params = real_params(trees)
    params = replace(params, data=replace(params.data, datasets=["M", "I", "C"]))
    counts = build_raw(params, tmp_path / "index")
    assert list(counts["datasets"]) == ["C", "I", "M"]  # registry order, whatever the params' order
    assert not (tmp_path / "index" / "O.csv").exists()


def test_complete_release_is_recorded_and_lists_nothing_missing(trees, tmp_path):
    """The hand-written official name trees (O, C, I, M file by file; Y by class counts) are
    whole releases to the check, so a real run on them records 'complete' and writes no list."""
    params = real_params(trees, Y=str(trees / "Y"))
    counts = build_raw(params, tmp_path / "index")
    releases = {c: v["release"] for c, v in counts["datasets"].items()}
    assert releases == {c: {"official": n, "missing": 0, "unofficial": 0, "complete": True}
                        for c, n in {"O": 4950, "C": 600, "I": 1200, "M": 280, "Y": 3497}.items()}
    assert not list((tmp_path / "index").glob("*_missing.txt"))


def _lose_files(trees):
    (trees / "O" / "Test_files" / "6_3_55_5.avi").unlink()
    (trees / "O" / "Dev_files" / "2_1_21_3.avi").unlink()
    live = sorted((trees / "Y").rglob("G_*.mp4"))[0]  # one ROSE-Youtu live video
    live.unlink()
    return live


def test_incomplete_copy_fails_naming_files_and_param(trees, tmp_path):
    """A copy short of its release (a lost file, a partial download) stops the raw stage by
    default, naming the dataset, the count, the files and the param, before any index is written."""
    _lose_files(trees)
    params = real_params(trees, Y=str(trees / "Y"))
    with pytest.raises(DatasetError) as info:
        build_raw(params, tmp_path / "index")
    msg = str(info.value)
    assert "OULU-NPU (O): 2 of the 4950 official videos are missing" in msg
    assert "Dev_files/2_1_21_3.avi" in msg and "Test_files/6_3_55_5.avi" in msg
    assert "ROSE-Youtu (Y): 1 of the 3497 official videos are short of the release's counts: live: 896 of 897" in msg
    assert "data.incomplete: warn" in msg and "CASIA" not in msg
    assert (tmp_path / "index" / "O_missing.txt").read_text().split() == [
        "Dev_files/2_1_21_3.avi", "Test_files/6_3_55_5.avi"]
    assert not list((tmp_path / "index").glob("*.csv"))


def test_incomplete_copy_runs_with_warn_and_is_recorded(trees, tmp_path, caplog):
    _lose_files(trees)
    params = real_params(trees, Y=str(trees / "Y"))
    params = replace(params, data=replace(params.data, incomplete="warn"))
    counts = build_raw(params, tmp_path / "index")
    assert counts["datasets"]["O"]["videos"] == 4948
    assert counts["datasets"]["O"]["release"] == {"official": 4950, "missing": 2, "unofficial": 0, "complete": False}
    assert counts["datasets"]["Y"]["release"]["missing"] == 1
    assert counts["datasets"]["C"]["release"]["complete"]
    assert "going on without them" in caplog.text
    assert (tmp_path / "index" / "Y_missing.txt").read_text() == "live: 896 of 897\n"


def test_files_outside_the_release_are_named(trees, tmp_path, caplog):
    """A file that follows the naming rules but is not in the release (a 56th OULU user) is
    indexed, counted and warned about; it does not make a copy incomplete."""
    (trees / "O" / "Test_files" / "1_1_56_1.avi").touch()
    counts = build_raw(real_params(trees), tmp_path / "index")
    assert counts["datasets"]["O"]["videos"] == 4951
    assert counts["datasets"]["O"]["release"] == {"official": 4950, "missing": 0, "unofficial": 1, "complete": True}
    assert "not in the official release: Test_files/1_1_56_1.avi" in caplog.text


def test_demo_is_not_checked_against_releases(tmp_path):
    from mpfas.raw import check_releases

    assert check_releases(Params(), {"O": []}, tmp_path) == {}


@pytest.mark.parametrize("where", ["one level too high", "at one split folder"])
def test_root_one_level_off_names_the_right_folder(trees, tmp_path, where):
    """A root pointed at the folder an archive unpacked into, or at one split folder, matches
    no naming rule; the error names the folder where the layout really starts."""
    if where == "one level too high":
        outer = tmp_path / "downloads"
        (outer / "CASIA_faceAntisp").mkdir(parents=True)
        (trees / "C").rename(outer / "CASIA_faceAntisp" / "release")  # extra level: .../release/train_release/
        root, expected = outer, outer / "CASIA_faceAntisp" / "release"
    else:
        root, expected = trees / "C" / "train_release", trees / "C"
    with pytest.raises(DatasetError) as info:
        index_datasets(real_params(trees, C=str(root)))
    assert f"its layout starts at {expected}: set data.roots.C to that folder" in str(info.value)


def test_symlinked_split_folders_are_followed_once(trees, tmp_path):
    """Roots assembled from symbolic links (one per split folder, as on shared storage) index
    like the real tree; a link back up the tree is not walked twice."""
    linked = tmp_path / "linked"
    linked.mkdir()
    for split in ("Train_files", "Dev_files", "Test_files"):
        (linked / split).symlink_to(trees / "O" / split, target_is_directory=True)
    (linked / "Test_files" / "loop").symlink_to(linked, target_is_directory=True)  # inside the real Test_files
    counts = build_raw(real_params(trees, O=str(linked)), tmp_path / "index")
    assert counts["datasets"]["O"]["release"]["complete"] and counts["datasets"]["O"]["videos"] == 4950
