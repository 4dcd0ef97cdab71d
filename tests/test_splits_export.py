"""Split exports: every format reads back to the manifest rows' content."""

import json
from pathlib import Path

import pytest

from mpfas.__main__ import main
from mpfas.manifests.build import ManifestRow, read_manifest, write_manifest
from mpfas.manifests.export import (
    METAPATTERN_LABELS,
    VideoLine,
    export_splits,
    read_metapattern,
    read_plain,
    read_ssdg,
)


def _row(domain: str, name: str, subject: str, label: str, role: str, n: int) -> ManifestRow:
    rel = f"data/faces/{domain}/train/{subject}/{name}"
    return ManifestRow(dataset={"O": "OULU-NPU", "Y": "ROSE-Youtu"}[domain], domain=domain,
                       video_id=f"{domain}/train/{subject}/{name}.mp4", subject=subject, split="train", label=label,
                       is_live=int(label == "live"), attack="" if label == "live" else "x", role=role,
                       faces=[f"{rel}/f{k:05d}.png" for k in range(n)])


ROWS = [
    _row("Y", "G_NT_HW_g_E_2_1", "2", "live", "source-train", 3),
    _row("Y", "Ps_NT_HW_g_E_2_1", "2", "print", "source-train", 2),
    _row("Y", "Vl_NT_HW_g_E_3_1", "3", "replay", "source-val", 1),
    _row("Y", "G_NT_HW_g_E_3_1", "3", "live", "source-val", 2),
    _row("O", "1_1_36_1", "36", "live", "target", 2),
    _row("O", "1_1_36_4", "36", "replay", "target", 3),
]


@pytest.fixture
def exported(tmp_path):
    export_splits({"YY-O": ROWS}, tmp_path, frames_of={ROWS[0].video_id: 5})
    return tmp_path


@pytest.mark.parametrize("role", ["source-train", "source-val", "target"])
def test_every_format_round_trips(exported, role):
    rows = [r for r in ROWS if r.role == role]
    meta = read_metapattern(exported / "metapattern" / "YY-O" / f"{role}.csv")
    assert meta == [VideoLine(str(Path(r.faces[0]).parent), METAPATTERN_LABELS[r.label], len(r.faces),
                              5 if r is ROWS[0] else len(r.faces)) for r in rows]
    per_face = [(face, r.is_live, r.video_id) for r in rows for face in r.faces]
    ssdg = read_ssdg(exported / "ssdg" / "YY-O" / f"{role}.json")
    assert [(x.path, x.label, x.video) for x in ssdg] == per_face
    plain = read_plain(exported / "plain" / "YY-O" / f"{role}.txt")
    assert [(x.path, x.label) for x in plain] == [(p, lab) for p, lab, _ in per_face]


def test_formats_state_their_conventions(exported):
    assert (exported / "metapattern" / "YY-O" / "target.csv").read_text().splitlines()[0] == "path,label,faces,frames"
    assert [x.label for x in read_metapattern(exported / "metapattern" / "YY-O" / "source-train.csv")] == [0, 1]
    assert {x.label for x in read_metapattern(exported / "metapattern" / "YY-O" / "source-val.csv")} == {0, 2}
    items = json.loads((exported / "ssdg" / "YY-O" / "target.json").read_text())
    assert set(items[0]) == {"photo_path", "photo_label", "photo_belong_to_video_ID"} and items[0]["photo_label"] == 1
    readme = (exported / "README.md").read_text()
    assert "0 live, 1 print, 2 replay" in readme and "1 live, 0 spoof" in readme


def test_own_csv_is_the_manifest(exported):
    back = read_manifest(exported / "mpfas" / "YY-O.csv", "data/faces")
    assert [(r.video_id, r.label, r.role, len(r.faces)) for r in back] == \
        [(r.video_id, r.label, r.role, len(r.faces)) for r in ROWS]


def test_command_exports_every_manifest(tmp_path, capsys):
    manifests, out = tmp_path / "manifests", tmp_path / "out"
    write_manifest(ROWS, manifests / "YY-O.csv")
    write_manifest(ROWS[2:], manifests / "ZZ-O.csv")
    assert main(["export-splits", "--out", str(out), "--manifests", str(manifests), "--faces", "data/faces"]) == 0
    for name in ("YY-O", "ZZ-O"):
        assert (out / "mpfas" / f"{name}.csv").is_file()
        for role in ("source-train", "source-val", "target"):
            assert (out / "metapattern" / name / f"{role}.csv").is_file()
            assert (out / "ssdg" / name / f"{role}.json").is_file()
            assert (out / "plain" / name / f"{role}.txt").is_file()
    assert "2 protocol(s)" in capsys.readouterr().out
    assert main(["export-splits", "--out", str(out), "--manifests", str(tmp_path / "none")]) == 2
