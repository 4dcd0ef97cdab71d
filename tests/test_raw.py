"""The raw stage in `real` mode: roots validated, never written, indexed like the demo."""

from dataclasses import replace
from pathlib import Path

import pytest

from helpers import param_defaults as dflt
from helpers.name_trees import TREES, oulu_protocol_lists
from mpfas.data import DatasetError, dataset_root
from mpfas.data.raw import build_raw, index_datasets


def real_params(tmp_path, **roots):
    base = {code: str(tmp_path / code) for code in "OCIM"}
    base.update(roots)
    datasets = [code for code in "OCIMY" if code in base]  # ROSE-Youtu only when a test gives its root
    return dflt.params(data=dflt.data(source="real", roots=base, datasets=datasets, demo_root=str(tmp_path / "raw")))


@pytest.fixture
def trees(tmp_path):
    for code, make in TREES.items():
        make(tmp_path / code)
    return tmp_path


def _state(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file and folder under ``root``: its bytes (files) and modification time."""
    return {p.relative_to(root).as_posix(): (p.read_bytes() if p.is_file() else b"", p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.relative_to(root).parts[0] not in ("index", "raw")}


def test_real_roots_are_indexed_and_untouched(trees, tmp_path):
    for video in trees.rglob("*.*"):  # content of its own, so a rewrite cannot pass unseen
        if video.suffix.lower() in {".avi", ".mp4", ".mov", ".jpg", ".png"}:
            video.write_bytes(video.as_posix().encode())
    before = _state(trees)
    counts = build_raw(real_params(trees), tmp_path / "index")
    assert {c: v["videos"] for c, v in counts["datasets"].items()} == {"O": 4950, "C": 600, "I": 1200, "M": 280}
    assert sorted((tmp_path / "index").glob("*.csv")) == [tmp_path / "index" / f"{c}.csv" for c in "CIMO"]
    assert _state(trees) == before


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
    assert dataset_root(dflt.data(source="demo"), "O").as_posix() == "data/raw/OULU-NPU"


def test_only_data_datasets_are_indexed(trees, tmp_path):
    """A dataset left out of data.datasets is not indexed even when its root is set."""
    params = real_params(trees)
    params = replace(params, data=replace(params.data, datasets=["M", "I", "C"]))
    counts = build_raw(params, tmp_path / "index")
    assert list(counts["datasets"]) == ["C", "I", "M"]  # registry order, whatever the params' order
    assert not (tmp_path / "index" / "O.csv").exists()


def test_complete_release_is_recorded_and_lists_nothing_missing(trees, tmp_path):
    """The official name trees (O, C, I, M hand-written, Y the official HFN+MP list) are whole
    releases to the file-by-file check, so a real run on them records 'complete' and writes no list."""
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
    live = _lose_files(trees)
    params = real_params(trees, Y=str(trees / "Y"))
    with pytest.raises(DatasetError) as info:
        build_raw(params, tmp_path / "index")
    msg = str(info.value)
    assert "OULU-NPU (O): 2 of the 4950 official videos are missing" in msg
    assert "Dev_files/2_1_21_3.avi" in msg and "Test_files/6_3_55_5.avi" in msg
    lost = live.relative_to(trees / "Y").as_posix()
    assert f"ROSE-Youtu (Y): 1 of the 3497 official videos are missing: {lost}" in msg
    assert "data.incomplete: warn" in msg and "CASIA" not in msg and "restore them under data.roots" in msg
    assert (tmp_path / "index" / "O_missing.txt").read_text().split() == [
        "Dev_files/2_1_21_3.avi", "Test_files/6_3_55_5.avi"]
    assert not list((tmp_path / "index").glob("*.csv"))
    (trees / "O" / "Test_files" / "6_3_55_5.avi").touch()  # restored
    (trees / "O" / "Dev_files" / "2_1_21_3.avi").touch()
    live.touch()
    assert build_raw(params, tmp_path / "index")["datasets"]["Y"]["release"]["complete"]
    assert not list((tmp_path / "index").glob("*_missing.txt"))  # the earlier lists do not linger


def test_rose_youtu_copy_missing_an_official_file_stops_raw(trees, tmp_path):
    """ROSE-Youtu is checked file by file against the official list, like the other four: one
    lost video (here a replay in which the authors' detector found no face) stops the raw stage,
    naming it, while the other copies are complete."""
    lost = "test/_20/Vl_NT_HS_g_E_17_146.mp4"
    (trees / "Y" / lost).unlink()
    params = real_params(trees, Y=str(trees / "Y"))
    with pytest.raises(DatasetError) as info:
        build_raw(params, tmp_path / "index")
    msg = str(info.value)
    assert f"ROSE-Youtu (Y): 1 of the 3497 official videos are missing: {lost}" in msg
    assert "OULU-NPU" not in msg and "data.incomplete: warn" in msg
    assert (tmp_path / "index" / "Y_missing.txt").read_text() == f"{lost}\n"
    assert not list((tmp_path / "index").glob("*.csv"))


def test_incomplete_copy_runs_with_warn_and_is_recorded(trees, tmp_path, caplog):
    live = _lose_files(trees)
    params = real_params(trees, Y=str(trees / "Y"))
    params = replace(params, data=replace(params.data, incomplete="warn"))
    counts = build_raw(params, tmp_path / "index")
    assert counts["datasets"]["O"]["videos"] == 4948
    assert counts["datasets"]["O"]["release"] == {"official": 4950, "missing": 2, "unofficial": 0, "complete": False}
    assert counts["datasets"]["Y"]["release"] == {"official": 3497, "missing": 1, "unofficial": 0, "complete": False}
    assert counts["datasets"]["C"]["release"]["complete"]
    assert "data.incomplete: warn: going on" in caplog.text
    assert (tmp_path / "index" / "Y_missing.txt").read_text() == f"{live.relative_to(trees / 'Y').as_posix()}\n"


def test_files_outside_the_release_are_named(trees, tmp_path, caplog):
    """A file that follows the naming rules but is not in the release (a 56th OULU user) is
    indexed, counted and warned about; it does not make a copy incomplete."""
    (trees / "O" / "Test_files" / "1_1_56_1.avi").touch()
    counts = build_raw(real_params(trees), tmp_path / "index")
    assert counts["datasets"]["O"]["videos"] == 4951
    assert counts["datasets"]["O"]["release"] == {"official": 4950, "missing": 0, "unofficial": 1, "complete": True}
    assert "not in the official release: Test_files/1_1_56_1.avi" in caplog.text


def test_demo_is_not_checked_against_releases(tmp_path):
    from mpfas.data.raw import check_copies

    assert check_copies(dflt.params(), {"O": []}, tmp_path) == {}


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


@pytest.mark.parametrize("layout", ["release", "nested, folds numbered otherwise"])
def test_oulu_folds_agree_with_the_release_lists(trees, tmp_path, layout):
    """Our folds (from the names and the paper's Table II) against lists in the release's own
    format, written independently: every one of the 42 lists agrees, wherever the Protocols
    folder sits and whichever phone a P3/P4 list number leaves out."""
    if layout == "release":
        oulu_protocol_lists(trees / "O")
    else:
        oulu_protocol_lists(trees / "O", fold_order=(4, 6, 1, 2, 5, 3), nest="Protocols/Protocols")
    counts = build_raw(real_params(trees), tmp_path / "index")
    assert counts["datasets"]["O"]["protocol_lists"] == {"found": True, "lists": 42, "disagreements": 0}


def test_oulu_lists_that_disagree_stop_the_stage(trees, tmp_path, caplog):
    oulu_protocol_lists(trees / "O")
    p2 = trees / "O" / "Protocols" / "Protocol_2" / "Train.txt"
    lines = p2.read_text().splitlines()
    assert lines[1] == "-1,1_1_01_2"
    lines[1] = "-1,1_1_01_3"  # printer 2 in P2's training list: not the official P2
    lines[0] = "-1,1_1_01_1"  # a live video labelled as an attack
    p2.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError) as info:
        build_raw(real_params(trees), tmp_path / "index")
    msg = str(info.value)
    assert "disagree with the release's lists" in msg and "on 3 video(s)" in msg
    assert "Protocol_2/Train.txt: 1_1_01_3: listed, not in our OULU-P2 train" in msg
    assert "Protocol_2/Train.txt: 1_1_01_2: in our OULU-P2 train, not listed" in msg
    assert "Protocol_2/Train.txt: 1_1_01_1: listed as attack" in msg
    params = real_params(trees)
    counts = build_raw(replace(params, data=replace(params.data, incomplete="warn")), tmp_path / "index")
    assert counts["datasets"]["O"]["protocol_lists"]["disagreements"] == 3


def test_relative_root_is_found_from_a_dvc_experiment_copy(trees, tmp_path, monkeypatch):
    """`dvc exp run --temp/--queue` runs in a copy in DVC's temporary experiments folder that holds only what git
    tracks: a relative root (a git-ignored folder or link in the repository) is read from the main
    repository, as model.pretrained is."""
    repo = tmp_path / "repo"
    (repo / ".dvc" / "tmp" / "exps" / "run1").mkdir(parents=True)
    (repo / "datasets").mkdir()
    (trees / "M").rename(repo / "datasets" / "MSU-MFSD")
    monkeypatch.chdir(repo / ".dvc" / "tmp" / "exps" / "run1")
    params = real_params(trees, M="datasets/MSU-MFSD")
    params = replace(params, data=replace(params.data, datasets=["M"]))
    assert dataset_root(params.data, "M") == repo / "datasets" / "MSU-MFSD"
    assert len(index_datasets(params)["M"]) == 280


def test_oulu_list_with_extensions_reads_and_a_bad_line_names_the_file(trees, tmp_path):
    """Lists that spell the extension (``+1,1_1_01_1.avi``) read like the release's; a line that
    is not '<label>,<video>' stops the stage naming the file and line."""
    oulu_protocol_lists(trees / "O")
    p1 = trees / "O" / "Protocols" / "Protocol_1" / "Train.txt"
    p1.write_text("".join(f"{line}.avi\n" for line in p1.read_text().split()))
    counts = build_raw(real_params(trees), tmp_path / "index")
    assert counts["datasets"]["O"]["protocol_lists"]["disagreements"] == 0
    p1.write_text("label,video\n" + p1.read_text())
    with pytest.raises(DatasetError, match=r"Protocol_1/Train.txt:1: 'label,video' is not '<label>,<video>'"):
        build_raw(real_params(trees), tmp_path / "index")
