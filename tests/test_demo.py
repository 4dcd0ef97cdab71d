"""The synthetic demo: layouts the real adapters accept, determinism, decodable
videos, faces MTCNN can find, visibly different domains, and the contact sheet."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import param_defaults as dflt
from helpers.name_trees import TREES
from mpfas.data import BUILT_IN, Label, adapter_for, dataset_name
from mpfas.data.contact_sheet import CELL_H, CELL_W, LABEL_H, dataset_sheet
from mpfas.data.datasets.msu import read_subject_list
from mpfas.demo import synth, synthesize_demo
from mpfas.demo.check import read_frames
from mpfas.demo.faces import identity_pool
from mpfas.demo.layout import MSU_TEST, MSU_TRAIN
from mpfas.demo.render import render_video

DATASET_CODES = BUILT_IN
DATASET_NAMES = {code: dataset_name(code) for code in DATASET_CODES}
SMALL = dflt.demo(seed=3, subjects=4, frames=6, fps=12, scale=1.0)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    synthesize_demo(SMALL, root, progress=False)
    return root


def _scan(root: Path, code: str):
    return adapter_for(code).scan(root / DATASET_NAMES[code])


@pytest.mark.parametrize("code", DATASET_CODES)
def test_adapters_read_every_file_and_every_split_has_every_class(demo, code):
    result = _scan(demo, code)
    assert result.unmatched == []
    assert len(result.records) == 5 * SMALL.subjects
    # every split named by the dataset's official layout shows up, with all three classes
    splits = {r.split for r in result.records}
    expected = {"O": {"train", "dev", "test"}, "C": {"train", "test"}, "I": {"train", "dev", "test"},
                "M": {"train", "test"}, "Y": {"train", "test"}}[code]
    assert splits == expected
    for split in splits:
        labels = {r.label for r in result.records if r.split == split}
        assert labels == {Label.LIVE, Label.PRINT, Label.REPLAY}, (code, split)
    # subjects never straddle splits
    split_of = {}
    for r in result.records:
        assert split_of.setdefault(r.subject, r.split) == r.split
    assert len(split_of) == SMALL.subjects
    # the original containers
    exts = {Path(r.relpath).suffix for r in result.records}
    assert exts == {"O": {".avi"}, "C": {".avi"}, "I": {".mov"}, "M": {".mp4", ".mov"}, "Y": {".mp4"}}[code]


def test_msu_splits_come_from_the_subject_lists(demo):
    root = demo / DATASET_NAMES["M"]
    train = read_subject_list(root / "train_sub_list.txt")
    test = read_subject_list(root / "test_sub_list.txt")
    assert train and test and not train & test
    for rec in _scan(demo, "M").records:
        assert int(rec.subject) in (train if rec.split == "train" else test)


def test_videos_decode_to_the_expected_frame_count(demo):
    for code in DATASET_CODES:
        recs = _scan(demo, code).records
        for rec in recs[::4]:
            frames = read_frames(demo / DATASET_NAMES[code] / rec.relpath)
            assert len(frames) == SMALL.frames, rec.relpath
            assert frames[0].dtype == np.uint8 and frames[0].ndim == 3


def _all_frames(root: Path) -> dict[str, list[np.ndarray]]:
    out = {}
    for code in DATASET_CODES:
        for rec in _scan(root, code).records:
            out[f"{code}/{rec.relpath}"] = read_frames(root / DATASET_NAMES[code] / rec.relpath)
    return out


@pytest.mark.slow  # writes and reads a second demo: ~10 s
def test_same_seed_same_frames_other_seed_differs(demo, tmp_path):
    small = dflt.demo(seed=SMALL.seed, subjects=2, frames=3, fps=12)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    synthesize_demo(small, a, progress=False)
    synthesize_demo(small, b, progress=False, workers=1)  # worker count must not matter
    synthesize_demo(dflt.demo(seed=SMALL.seed + 1, subjects=2, frames=3, fps=12), c, progress=False)
    fa, fb, fc = _all_frames(a), _all_frames(b), _all_frames(c)
    assert fa.keys() == fb.keys() and len(fa) == len(DATASET_CODES) * 5 * 2
    for key in fa:
        assert all(np.array_equal(x, y) for x, y in zip(fa[key], fb[key])), key
    common = fa.keys() & fc.keys()
    assert common, "other seed should keep most file names"
    diffs = [np.abs(fa[k][1].astype(int) - fc[k][1].astype(int)).mean() for k in common
             if fa[k][1].shape == fc[k][1].shape]
    assert diffs and min(diffs) > 1.0


@pytest.mark.slow  # writes the demo twice: ~9 s
def test_only_the_datasets_asked_for_are_written_each_as_in_a_full_run(demo, tmp_path):
    """The raw stage writes only ``data.datasets``; each dataset draws from its own streams, so
    leaving ROSE-Youtu out changes no byte of the others."""
    synthesize_demo(SMALL, tmp_path, progress=False, workers=1, codes=["M"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [DATASET_NAMES["M"]]
    written = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert written == {rel: (demo / rel).read_bytes() for rel in written}


def test_rerun_replaces_a_demo_but_refuses_foreign_data(tmp_path):
    small = dflt.demo(seed=0, subjects=2, frames=2, fps=12)
    synthesize_demo(small, tmp_path, progress=False, workers=1)
    stale = tmp_path / DATASET_NAMES["O"] / "Train_files" / "9_9_99_1.avi"
    stale.write_bytes(b"old")
    synthesize_demo(small, tmp_path, progress=False, workers=1)
    assert not stale.exists()
    foreign = tmp_path / "other"
    (foreign / DATASET_NAMES["C"]).mkdir(parents=True)
    (foreign / DATASET_NAMES["C"] / "keep.txt").write_text("real data")
    with pytest.raises(FileExistsError, match="refusing"):
        synthesize_demo(small, foreign, progress=False, workers=1)
    assert (foreign / DATASET_NAMES["C"] / "keep.txt").read_text() == "real data"


def test_mtcnn_finds_a_face_in_middle_frames(demo):
    torch = pytest.importorskip("torch")
    from facenet_pytorch import MTCNN

    torch.set_num_threads(2)
    mtcnn = MTCNN(keep_all=True, device="cpu", min_face_size=20)
    missed, tested = [], 0
    for code in DATASET_CODES:
        recs = _scan(demo, code).records
        by_label = {lab: [r for r in recs if r.label is lab] for lab in Label}
        for group in by_label.values():
            for rec in group[:2]:
                frames = read_frames(demo / DATASET_NAMES[code] / rec.relpath)
                boxes, _ = mtcnn.detect(frames[len(frames) // 2])
                tested += 1
                if boxes is None:
                    missed.append(rec.relpath)
                    continue
                # the face is large: at least a quarter of the frame height
                h = frames[0].shape[0]
                assert max(b[3] - b[1] for b in boxes) >= h / 4, rec.relpath
    assert tested == len(DATASET_CODES) * 3 * 2
    assert len(missed) <= 1, missed


def test_domains_look_different(demo):
    stats = {}
    for code in DATASET_CODES:
        live = [r for r in _scan(demo, code).records if r.label is Label.LIVE]
        frames = [read_frames(demo / DATASET_NAMES[code] / r.relpath)[0] for r in live]
        sizes = {f.shape[:2] for f in frames}
        colour = np.mean([f.reshape(-1, 3).mean(0) for f in frames], axis=0)
        chroma = colour / colour.sum()
        stats[code] = (sizes, chroma, colour.mean())
    # OULU's phones film portrait frames; the others are landscape
    assert all(h > w for h, w in stats["O"][0])
    assert all(h < w for c in "CIMY" for h, w in stats[c][0])
    # pairwise: different colour cast or brightness
    for i, a in enumerate(DATASET_CODES):
        for b in DATASET_CODES[i + 1:]:
            chroma_gap = np.abs(stats[a][1] - stats[b][1]).max()
            bright_gap = abs(stats[a][2] - stats[b][2])
            assert chroma_gap > 0.01 or bright_gap > 10, (a, b, stats[a], stats[b])


def test_contact_sheet(demo, tmp_path):
    """The raw stage's sheet over the demo's indexed videos: one row per dataset x 3 classes."""
    png = tmp_path / "sheet" / "demo.png"
    roots = {code: demo / DATASET_NAMES[code] for code in DATASET_CODES}
    dataset_sheet({code: _scan(demo, code).records for code in DATASET_CODES}, roots, png)
    img = cv2.imread(str(png))
    assert img.shape == (len(DATASET_CODES) * (CELL_H + LABEL_H), 3 * CELL_W, 3)
    # no empty cell: every image area has real content
    for r in range(len(DATASET_CODES)):
        for c in range(3):
            y0 = r * (CELL_H + LABEL_H) + LABEL_H
            cell = img[y0:y0 + CELL_H, c * CELL_W:(c + 1) * CELL_W]
            assert cell.std() > 10


def test_too_many_subjects_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"demo\.subjects"):
        synthesize_demo(dflt.demo(subjects=40), tmp_path, progress=False)


# --- demo.size: full (planned, and written with a stub renderer: 10527 real videos take minutes)

FULL = dflt.demo(size="full")
OFFICIAL = {  # live, print, replay per split, from the datasets' full file lists
    "O": {"train": (360, 720, 720), "dev": (270, 540, 540), "test": (360, 720, 720)},
    "C": {"train": (60, 120, 60), "test": (90, 180, 90)},
    "I": {"train": (60, 60, 240), "dev": (60, 60, 240), "test": (80, 80, 320)},
    "M": {"train": (30, 30, 60), "test": (40, 40, 80)},
    "Y": {"train": (475, 900, 400), "test": (422, 899, 401)},  # the official list (rose_youtu_release.csv)
}
# the official adapters' split names, by the top folder (or, for MSU, the client's list)
_SPLIT_DIR = {"Train_files": "train", "Dev_files": "dev", "Test_files": "test", "train_release": "train",
              "test_release": "test", "train": "train", "devel": "dev", "test": "test"}


@pytest.fixture(scope="module")
def full_plan():
    return synth.plan_demo(FULL)


def _counts(pairs) -> dict[str, tuple[int, int, int]]:
    """(split, label) pairs -> {split: (live, print, replay)}."""
    out: dict[str, list[int]] = {}
    for split, label in pairs:
        out.setdefault(split, [0, 0, 0])[("live", "print", "replay").index(label)] += 1
    return {k: tuple(v) for k, v in out.items()}


def test_full_plan_has_the_official_counts(full_plan):
    assert sum(len(p.videos) for p in full_plan.values()) == 7030 + 3497
    msu_split = {c: s for s, ids in (("train", MSU_TRAIN), ("test", MSU_TEST)) for c in ids}
    for code, p in full_plan.items():
        assert len({v.relpath for v in p.videos}) == len(p.videos)
        if code == "M":
            pairs = [(msu_split[int(v.relpath.split("client")[1][:3])], v.label) for v in p.videos]
        else:
            pairs = [(_SPLIT_DIR[v.relpath.split("/")[0]], v.label) for v in p.videos]
        assert _counts(pairs) == OFFICIAL[code], code


def _name_tree(root: Path, code: str) -> set[str]:
    TREES[code](root)
    rels = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.suffix in (".avi", ".mov", ".mp4")}
    rels = {r for r in rels if not r.startswith("enroll/")}
    return rels


@pytest.mark.parametrize("code", DATASET_CODES)
def test_full_plan_has_the_official_names(full_plan, tmp_path, code):
    assert {v.relpath for v in full_plan[code].videos} == _name_tree(tmp_path, code)
    if code == "M":
        for name, text in full_plan[code].side_files.items():
            assert read_subject_list(tmp_path / name) == {int(c) for c in text.split()}


def test_full_plan_renders_each_kind_as_the_small_demo(full_plan):
    small = synth.plan_demo(dflt.demo(subjects=12))
    kinds = {(v.code, v.label, v.medium, v.device, v.support if v.medium != "live" else "")
             for p in small.values() for v in p.videos}
    full_kinds = {(v.code, v.label, v.medium, v.device, v.support if v.medium != "live" else "")
                  for p in full_plan.values() for v in p.videos}
    assert kinds <= full_kinds
    # Replay-Attack: every screen shows photos and videos, held and fixed; CASIA: every quality
    assert len({k for k in full_kinds if k[0] == "I"}) == 1 + 2 + 2 * 2 * 2
    assert {v.capture for v in full_plan["C"].videos} == {"low", "normal", "high"}
    assert len({v.capture for v in full_plan["O"].videos}) == 18


def test_full_plan_renders(full_plan):
    seen = set()
    for code, p in full_plan.items():
        for i, v in enumerate(p.videos):
            key = (code, v.medium, v.device, v.support, v.capture if code != "O" else "")
            if key in seen:
                continue
            seen.add(key)
            frames = render_video(v, p.identities[v.subject], 0, 2, 12, 0.25, i)
            assert len(frames) == 2 and frames[0].dtype == np.uint8, v.relpath
    assert len(seen) > 30


def test_full_identities_are_distinct_within_a_domain(full_plan):
    pool = set(identity_pool())
    uses: dict = {}
    for code, p in full_plan.items():
        subjects = {v.subject for v in p.videos}
        assert subjects == set(range(len(p.identities)))
        assert len(set(p.identities)) == len(p.identities)  # no face in two subjects, so none in two splits
        for ident in p.identities:
            assert ident in pool
            uses.setdefault(ident, []).append(code)
    assert max(len(codes) for codes in uses.values()) <= 3
    assert max(len([c for c in codes if c != "Y"]) for codes in uses.values()) <= 2
    assert len(uses) == len(pool)
    again = synth.plan_demo(FULL)
    assert [p.identities for p in again.values()] == [p.identities for p in full_plan.values()]
    other = synth.plan_demo(dflt.demo(size="full", seed=1, subjects=40))  # subjects is ignored
    assert [p.videos for p in other.values()] == [p.videos for p in full_plan.values()]
    assert [p.identities for p in other.values()] != [p.identities for p in full_plan.values()]


def test_full_demo_written_and_parsed_with_the_official_counts(tmp_path, monkeypatch):
    def touch(job):  # stands in for rendering: the tree, side files and marker are the real ones
        Path(job.dest).parent.mkdir(parents=True, exist_ok=True)
        Path(job.dest).touch()
        return job.dest

    monkeypatch.setattr(synth, "_run", touch)
    synthesize_demo(dflt.demo(size="full", frames=2), tmp_path, progress=False, workers=1)
    for code in DATASET_CODES:
        result = _scan(tmp_path, code)
        assert result.unmatched == []
        assert _counts((r.split, r.label.value) for r in result.records) == OFFICIAL[code], code
        split_of = {}
        for r in result.records:
            assert split_of.setdefault(r.subject, r.split) == r.split
        assert "size=full" in (tmp_path / DATASET_NAMES[code] / synth.MARKER).read_text()
    assert not (tmp_path / synth._TMP_DIR).exists()


def test_small_plan_is_unchanged():
    """The committed demo results depend on it: same files, subjects and identities as before full mode."""
    digests = {}
    for seed, subjects in ((0, 6), (3, 4)):
        h = hashlib.sha256()
        for code, p in synth.plan_demo(dflt.demo(seed=seed, subjects=subjects)).items():
            if code not in "OCIM":  # datasets added later are appended: these four stay as they were
                continue
            h.update(repr((p.videos, sorted(p.side_files.items()), [i.name for i in p.identities])).encode())
        digests[seed, subjects] = h.hexdigest()
    assert digests == {
        (0, 6): "8e6f60efb16fa64ad1d717eae2cb3e4f10ccf86ee0a4467e51c2bf33dfccb50e",
        (3, 4): "abd23a13b3455e3f58a6d315dadce613deb5b09c0aebfee709dc53e99bbcbfcc",
    }



def test_rose_youtu_leaves_the_other_full_plans_unchanged(full_plan, monkeypatch):
    """Y is dealt its identities last: O, C, I, M keep their files and faces in full mode too."""
    monkeypatch.setattr(synth, "demo_codes", lambda: ("O", "C", "I", "M"))
    without = synth.plan_demo(FULL)
    assert list(full_plan) == ["O", "C", "I", "M", "Y"]
    assert {c: full_plan[c] for c in without} == without


def test_rose_youtu_small_plan_covers_every_class_and_kind():
    """Per subject: two live takes, a paper print, a paper mask and a screen replay, one phone."""
    videos = synth.plan_demo(dflt.demo(subjects=12))["Y"].videos
    assert len(videos) == 12 * 5
    kinds = {Path(v.relpath).name.split("_")[0] for v in videos}
    assert {"G", "Vl", "Vm"} <= kinds and kinds & {"Ps", "Pq"} and kinds & {"Mc", "Mf", "Mu"}
    for subject in {v.subject for v in videos}:
        own = [v for v in videos if v.subject == subject]
        assert [v.label for v in own].count("live") == 2 and len({v.capture for v in own}) == 1
