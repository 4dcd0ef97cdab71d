import logging
from dataclasses import replace

import pytest

from helpers.records import CFG, make_videos
from mpfas.core.config import Protocol
from mpfas.data import Label
from mpfas.manifests.build import (
    ManifestError,
    check_manifest,
    count_rows,
    plan_manifest,
    read_manifest,
    write_manifest,
)


def test_roles_are_disjoint_and_complete():
    videos, faces = make_videos()
    rows = plan_manifest("OCI-M", CFG.protocols["OCI-M"], videos, faces, CFG).rows
    assert len(rows) == 4 * 10 * 3  # every video with faces, once
    assert len({r.video_id for r in rows}) == len(rows)
    for domain in "OCI":
        train = {r.subject for r in rows if r.domain == domain and r.role == "source-train"}
        val = {r.subject for r in rows if r.domain == domain and r.role == "source-val"}
        assert train and val and not train & val
        assert len(val) == 3
    assert {r.domain for r in rows if r.role == "target"} == {"M"}
    assert all(r.is_live == (r.label == "live") for r in rows)


def test_split_is_seeded_and_depends_on_seed():
    videos, faces = make_videos()
    a = plan_manifest("OCI-M", CFG.protocols["OCI-M"], videos, faces, CFG).rows
    b = plan_manifest("OCI-M", CFG.protocols["OCI-M"], videos, faces, CFG).rows
    c = plan_manifest("OCI-M", CFG.protocols["OCI-M"], videos, faces, replace(CFG, seed=1)).rows
    assert a == b
    assert [r.role for r in a] != [r.role for r in c]


@pytest.mark.parametrize("target_set,splits", [("all", {"train", "test"}), ("test", {"test"})])
def test_target_set(target_set, splits):
    videos, faces = make_videos()
    cfg = replace(CFG, target_set=target_set)
    rows = plan_manifest("OCI-M", cfg.protocols["OCI-M"], videos, faces, cfg).rows
    assert {r.split for r in rows if r.role == "target"} == splits


def test_videos_without_faces_are_left_out_and_counted(caplog):
    videos, faces = make_videos()
    cfg = replace(CFG, target_set="test")
    full = plan_manifest("OCI-M", cfg.protocols["OCI-M"], videos, faces, cfg)
    assert full.excluded == [] and full.excluded_counts(cfg.protocols["OCI-M"]) == {
        "source-train": {"C": 0, "I": 0, "O": 0}, "source-val": {"C": 0, "I": 0, "O": 0}, "target": {"M": 0}}
    role = {r.video_id: r.role for r in full.rows}
    train = next(r for r in full.rows if r.role == "source-train" and r.domain == "O").video_id
    val = [r.video_id for r in full.rows if r.role == "source-val" and r.domain == "C"][:2]
    target = next(r.video_id for r in videos["M"] if r.split == "test")
    outside = next(r.video_id for r in videos["M"] if r.split == "train")  # not in target_set: not counted
    gone = [train, *val, target, outside]
    for vid in gone:
        faces[vid] = []
    with caplog.at_level(logging.WARNING, logger="mpfas.manifests.build"):
        plan = plan_manifest("OCI-M", cfg.protocols["OCI-M"], videos, faces, cfg)
    assert not set(gone) & {r.video_id for r in plan.rows}
    assert all(r.faces for r in plan.rows)
    assert [r for r in full.rows if r.video_id not in gone] == plan.rows  # no other video moves
    assert {(e.video_id, e.role) for e in plan.excluded} == {(v, role[v]) for v in [train, *val, target]}
    assert plan.excluded_counts(cfg.protocols["OCI-M"]) == {
        "source-train": {"C": 0, "I": 0, "O": 1}, "source-val": {"C": 2, "I": 0, "O": 0}, "target": {"M": 1}}
    assert "OCI-M: 4 video(s) without any aligned face left out" in caplog.text
    assert "source-val C: 2" in caplog.text
    assert plan_manifest("OCI-M", cfg.protocols["OCI-M"], videos, faces, cfg).rows == plan.rows


def test_a_faceless_row_never_reaches_training_or_evaluation(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    videos, faces = make_videos(4)
    rows = plan_manifest("OCI-M", CFG.protocols["OCI-M"], videos, faces, CFG).rows
    faceless = [*rows[:1], replace(rows[1], faces=[]), *rows[2:]]
    with pytest.raises(ManifestError, match=f"without an aligned face, e.g. {rows[1].video_id}"):
        check_manifest("OCI-M", faceless, CFG.protocols["OCI-M"])
    write_manifest(faceless, tmp_path / "faceless.csv")
    with pytest.raises(ManifestError,
                       match=f"faceless.csv line 3, field faces: video {rows[1].video_id} has no aligned face"):
        read_manifest(tmp_path / "faceless.csv", "data/faces")


def test_source_without_spoof_fails():
    videos, faces = make_videos()
    videos["C"] = [r for r in videos["C"] if r.label is Label.LIVE]
    with pytest.raises(ManifestError, match=r"domain C .* only live"):
        plan_manifest("OCI-M", CFG.protocols["OCI-M"], videos, faces, CFG)


def test_leaks_are_refused():
    videos, faces = make_videos()
    rows = plan_manifest("OCI-M", CFG.protocols["OCI-M"], videos, faces, CFG).rows
    train = next(r for r in rows if r.role == "source-train")
    with pytest.raises(ManifestError, match="two roles"):
        check_manifest("OCI-M", [*rows, replace(train, role="target")], CFG.protocols["OCI-M"])
    with pytest.raises(ManifestError, match="both source-train and source-val"):
        check_manifest("OCI-M", [*rows, replace(train, video_id="x", role="source-val")], CFG.protocols["OCI-M"])


def test_round_trip_and_path_outside_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    videos, faces = make_videos(4)
    rows = plan_manifest("OCI-M", CFG.protocols["OCI-M"], videos, faces, CFG).rows
    write_manifest(rows, tmp_path / "m.csv")
    assert read_manifest(tmp_path / "m.csv", "data/faces") == rows
    evil = [replace(rows[0], faces=["data/faces/../../etc/passwd"]), *rows[1:]]
    write_manifest(evil, tmp_path / "evil.csv")
    with pytest.raises(ManifestError, match="outside the faces root"):
        read_manifest(tmp_path / "evil.csv", "data/faces")


def test_counts():
    videos, faces = make_videos()
    rows = plan_manifest("OCI-M", CFG.protocols["OCI-M"], videos, faces, CFG).rows
    counts = count_rows(rows)
    assert counts["target"]["M"] == {"live": 10, "print": 10, "replay": 10, "faces": 60}
    total = sum(c[k] for doms in counts.values() for c in doms.values() for k in ("live", "print", "replay"))
    assert total == len(rows)


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
