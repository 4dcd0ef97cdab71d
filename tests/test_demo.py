"""The synthetic demo: layouts the real adapters accept, determinism, decodable
videos, faces MTCNN can find, visibly different domains, and the contact sheet."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from mpfas.config import DATASET_CODES, DATASET_NAMES, DemoConfig
from mpfas.datasets import Label, adapter_for
from mpfas.datasets.msu import read_subject_list
from mpfas.demo import contact_sheet, synthesize_demo
from mpfas.demo.check import read_frames
from mpfas.datasets.contact_sheet import CELL_H, CELL_W, LABEL_H

SMALL = DemoConfig(seed=3, subjects=4, frames=6, fps=12, scale=1.0)


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
                "M": {"train", "test"}}[code]
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
    assert exts == {"O": {".avi"}, "C": {".avi"}, "I": {".mov"}, "M": {".mp4", ".mov"}}[code]


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


def test_same_seed_same_frames_other_seed_differs(demo, tmp_path):
    small = DemoConfig(seed=SMALL.seed, subjects=2, frames=3, fps=12)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    synthesize_demo(small, a, progress=False)
    synthesize_demo(small, b, progress=False, workers=1)  # worker count must not matter
    synthesize_demo(DemoConfig(seed=SMALL.seed + 1, subjects=2, frames=3, fps=12), c, progress=False)
    fa, fb, fc = _all_frames(a), _all_frames(b), _all_frames(c)
    assert fa.keys() == fb.keys() and len(fa) == 4 * 5 * 2
    for key in fa:
        assert all(np.array_equal(x, y) for x, y in zip(fa[key], fb[key])), key
    common = fa.keys() & fc.keys()
    assert common, "other seed should keep most file names"
    diffs = [np.abs(fa[k][1].astype(int) - fc[k][1].astype(int)).mean() for k in common
             if fa[k][1].shape == fc[k][1].shape]
    assert diffs and min(diffs) > 1.0


def test_rerun_replaces_a_demo_but_refuses_foreign_data(tmp_path):
    small = DemoConfig(seed=0, subjects=2, frames=2, fps=12)
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
        for lab, group in by_label.items():
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
    assert tested == 4 * 3 * 2
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
    assert all(h < w for c in "CIM" for h, w in stats[c][0])
    # pairwise: different colour cast or brightness
    for i, a in enumerate(DATASET_CODES):
        for b in DATASET_CODES[i + 1:]:
            chroma_gap = np.abs(stats[a][1] - stats[b][1]).max()
            bright_gap = abs(stats[a][2] - stats[b][2])
            assert chroma_gap > 0.01 or bright_gap > 10, (a, b, stats[a], stats[b])


def test_contact_sheet(demo, tmp_path):
    png = tmp_path / "sheet" / "demo.png"
    contact_sheet(demo, png)
    img = cv2.imread(str(png))
    assert img.shape == (4 * (CELL_H + LABEL_H), 3 * CELL_W, 3)
    # no empty cell: every image area has real content
    for r in range(4):
        for c in range(3):
            y0 = r * (CELL_H + LABEL_H) + LABEL_H
            cell = img[y0:y0 + CELL_H, c * CELL_W:(c + 1) * CELL_W]
            assert cell.std() > 10


def test_too_many_subjects_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="demo.subjects"):
        synthesize_demo(DemoConfig(subjects=40), tmp_path, progress=False)

