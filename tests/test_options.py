"""Options of params.yaml that no other test exercised, each checked by what it changes.

``extract.image_ext: jpg`` is in test_extract.py, next to the other extract tests.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from skimage import data

from helpers import param_defaults as dflt
from helpers.faces import manifest_rows
from helpers.records import CFG, make_videos
from mpfas.core.config import Protocol, load_params
from mpfas.manifests.build import plan_manifest
from mpfas.preprocess.align import detector_for
from mpfas.train import DomainSampler, TrainResult, train

# ---------------------------------------------------------------- manifests.target_set

def test_target_set_train_plus_test_leaves_out_the_dev_split():
    """Target O has train, dev and test videos: ``train+test`` drops exactly the dev ones."""
    videos, faces = make_videos()
    protocol = Protocol(["C", "I", "M"], "O")
    cfg = replace(CFG, protocols={"CIM-O": protocol})
    targets = {}
    for target_set in ("all", "train+test", "test"):
        rows = plan_manifest("CIM-O", protocol, videos, faces, replace(cfg, target_set=target_set)).rows
        targets[target_set] = {r.video_id: r.split for r in rows if r.role == "target"}
    assert set(targets["all"].values()) == {"train", "dev", "test"}
    assert set(targets["train+test"].values()) == {"train", "test"}
    assert targets["train+test"] == {v: s for v, s in targets["all"].items() if s != "dev"}
    assert set(targets["test"]) < set(targets["train+test"])


# ---------------------------------------------------------------- align.select

def _two_faces() -> np.ndarray:
    """A large blurred, low-contrast face (MTCNN less sure) and a small sharp one."""
    face = data.astronaut()[20:240, 140:310]  # RGB
    canvas = np.full((360, 640, 3), 100, np.uint8)
    big = cv2.GaussianBlur(cv2.resize(face, (255, 330)), (31, 31), 0)
    canvas[15:345, 20:275] = (big.astype(np.float32) * 0.5 + 60).astype(np.uint8)
    canvas[100:255, 400:520] = cv2.resize(face, (120, 155))
    return canvas


def test_select_confident_picks_the_surest_face_not_the_largest():
    frame = _two_faces()
    largest = detector_for(dflt.align(select="largest"))
    faces = largest.detect_all([frame])[0]
    assert len(faces) == 2
    big, small = sorted(faces, key=lambda f: -f.area)
    assert big.prob < small.prob, "the test needs the larger face to be the less confident one"
    confident = detector_for(dflt.align(select="confident"))
    assert largest.detect([frame])[0].box == big.box
    assert confident.detect([frame])[0].box == pytest.approx(small.box, abs=1.0)


# ---------------------------------------------------------------- train.workers

def test_loader_threads_give_the_same_batches(workspace):
    """``train.workers > 0`` loads faces in threads: same batches, same order as inline."""
    rows = [r for r in manifest_rows(workspace) if r.role == "source-train"]

    def make(workers):
        return DomainSampler(rows, num_frames=2, batch_live=3, batch_spoof=3, size=32, seed=5, workers=workers)

    inline, threaded = make(0), make(3)
    assert inline.pool is None and threaded.pool is not None
    try:
        for domain in ("O", "C", "I") * 4:
            a, b = inline.batch(domain), threaded.batch(domain)
            assert torch.equal(a.rgb, b.rgb) and torch.equal(a.is_live, b.is_live), domain
    finally:
        threaded.close()


# ---------------------------------------------------------------- train.resume

def _set_train(**values) -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["train"].update(values)
    Path("params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _train() -> tuple[TrainResult, list[int]]:
    """One ``train()`` call; also the iterations it checkpointed (none when nothing was left to do)."""
    saved: list[int] = []
    result = train(load_params("params.yaml"), "OCI-M", manifest="data/manifests/OCI-M.csv", faces="data/faces",
                   out_dir="models/OCI-M", on_checkpoint=saved.append)
    return result, saved


@pytest.mark.slow  # three train() runs
def test_resume_never_retrains_from_zero_despite_a_finished_last_pt(workspace):
    _set_train(iterations=2, checkpoint_every=1, eval_every=2, inner_loops=1)
    first, saved = _train()
    assert first.start_iteration == 0 and saved == [1, 2]
    weights = torch.load("models/OCI-M/last.pt", weights_only=True)["model"]
    again, saved = _train()  # resume: auto finds last.pt at the end: nothing to train
    assert again.start_iteration == 2 and saved == []
    _set_train(resume="never")
    fresh, saved = _train()
    assert fresh.start_iteration == 0 and saved == [1, 2] and fresh.run_id != first.run_id
    last = torch.load("models/OCI-M/last.pt", weights_only=True)
    assert last["iteration"] == 2 and last["run_id"] == fresh.run_id
    assert all(torch.equal(last["model"][k], weights[k]) for k in weights)  # retrained, same seed
