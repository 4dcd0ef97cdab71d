"""OULU-NPU's intra-dataset protocols on the full official name list (Boulkenafet et al., FG 2017, Table II)."""

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from helpers.name_trees import TREES, oulu_tree
from helpers.stage_cmd import stage_argv
from mpfas.core.atomic import write_csv
from mpfas.core.config import ConfigError, parse_params
from mpfas.data import adapter_for, check_params, write_index
from mpfas.data.datasets.oulu import oulu_name
from mpfas.data.oulu_protocols import OULU_PROTOCOLS, all_oulu_folds, oulu_folds
from mpfas.manifests.build import OULU_DOMAINS, ManifestError, check_manifest, plan_oulu_manifest, read_manifest

# videos per split as (live, print, replay); the same for every fold of P3 and P4
SIZES = {
    "P1": {"train": (240, 480, 480), "dev": (180, 360, 360), "test": (120, 240, 240)},
    "P2": {"train": (360, 360, 360), "dev": (270, 270, 270), "test": (360, 360, 360)},
    "P3": {"train": (300, 600, 600), "dev": (225, 450, 450), "test": (60, 120, 120)},
    "P4": {"train": (200, 200, 200), "dev": (150, 150, 150), "test": (20, 20, 20)},
}
TOTALS = {  # the paper's Table II: all videos per split
    "P1": {"train": 1200, "dev": 900, "test": 600},
    "P2": {"train": 1080, "dev": 810, "test": 1080},
    "P3": {"train": 1500, "dev": 1125, "test": 300},
    "P4": {"train": 600, "dev": 450, "test": 60},
}
REPO = Path(__file__).resolve().parents[1]
ROLE_SPLIT = {"source-train": "train", "source-val": "dev", "target": "test"}


@pytest.fixture(scope="module")
def oulu_records(tmp_path_factory):
    root = tmp_path_factory.mktemp("oulu")
    oulu_tree(root)
    return adapter_for("O").scan(root).records


def _faces(records):
    return {r.video_id: [f"data/faces/{r.video_id}/0.png"] for r in records}


def test_fold_names():
    assert [f.name for f in all_oulu_folds(list(OULU_PROTOCOLS))] == [
        "OULU-P1", "OULU-P2", *[f"OULU-P3-{p}" for p in range(1, 7)], *[f"OULU-P4-{p}" for p in range(1, 7)]]
    with pytest.raises(ValueError, match="P5"):
        oulu_folds("P5")


@pytest.mark.parametrize("protocol", OULU_PROTOCOLS)
def test_protocol_sizes_on_the_full_name_list(oulu_records, protocol):
    folds = oulu_folds(protocol)
    assert len(folds) == (1 if protocol in ("P1", "P2") else 6)
    for fold in folds:
        manifest = plan_oulu_manifest(fold, oulu_records, _faces(oulu_records))
        assert manifest.excluded == []
        by = Counter((ROLE_SPLIT[row.role], row.label) for row in manifest.rows)
        for split, (live, prnt, replay) in SIZES[protocol].items():
            assert (by[split, "live"], by[split, "print"], by[split, "replay"]) == (live, prnt, replay), fold.name
            assert live + prnt + replay == TOTALS[protocol][split]
        assert {row.split for row in manifest.rows if row.role == "target"} == {"test"}
        assert {row.domain for row in manifest.rows} == {"O"}


@pytest.mark.parametrize("protocol", OULU_PROTOCOLS)
def test_test_conditions_are_never_trained_on(oulu_records, protocol):
    for fold in oulu_folds(protocol):
        rows = plan_oulu_manifest(fold, oulu_records, _faces(oulu_records)).rows
        names = {role: [oulu_name(r.video_id.removeprefix("O/")) for r in rows if r.role == role]
                 for role in ROLE_SPLIT}
        seen = {role: (Counter(n.session for n in ns), Counter(n.file for n in ns), Counter(n.phone for n in ns))
                for role, ns in names.items()}
        for role in ("source-train", "source-val"):
            sessions, files, phones = seen[role]
            if protocol in ("P1", "P4"):
                assert set(sessions) == {1, 2}
            if protocol in ("P2", "P4"):
                assert set(files) == {1, 2, 4}
            if protocol in ("P3", "P4"):
                assert fold.fold not in phones and len(phones) == 5
        sessions, files, phones = seen["target"]
        assert set(sessions) == ({3} if protocol in ("P1", "P4") else {1, 2, 3})
        assert set(files) == ({1, 3, 5} if protocol in ("P2", "P4") else {1, 2, 3, 4, 5})
        assert set(phones) == ({fold.fold} if protocol in ("P3", "P4") else set(range(1, 7)))
        users = {role: {int(r.subject) for r in rows if r.role == role} for role in ROLE_SPLIT}
        assert users == {"source-train": set(range(1, 21)), "source-val": set(range(21, 36)),
                         "target": set(range(36, 56))}


def test_faceless_videos_are_left_out_and_a_missing_class_fails(oulu_records):
    fold = oulu_folds("P1")[0]
    faces = _faces(oulu_records)
    gone = [r.video_id for r in oulu_records if r.split == "test" and r.relpath.endswith("_36_1.avi")]
    for vid in gone:
        faces.pop(vid)
    manifest = plan_oulu_manifest(fold, oulu_records, faces)
    assert {e.video_id for e in manifest.excluded} == {v for v in gone if "_3_36_" in v}  # session 3 only
    assert manifest.excluded_counts(OULU_DOMAINS)["target"] == {"O": 6}
    no_live_dev = {k: v for k, v in faces.items() if not ("Dev_files" in k and k.endswith("_1.avi"))}
    with pytest.raises(ManifestError, match=r"source-val of domain O .* only spoof"):
        plan_oulu_manifest(fold, oulu_records, no_live_dev)
    check_manifest(fold.name, manifest.rows, OULU_DOMAINS)


def test_config():
    """The parser checks the list's shape; ``check_params`` (run by every stage) the names."""

    def checked(text: str):
        params = parse_params(text)
        check_params(params)
        return params

    base = (REPO / "params.yaml").read_text()
    assert parse_params(base).manifests.oulu_protocols == []  # the default pipeline has no OULU manifest
    chosen = base.replace("oulu_protocols: []", "oulu_protocols: [P1, P3]")
    assert parse_params(chosen).manifests.oulu_protocols == ["P1", "P3"]
    for bad, match in (("[P5]", "unknown protocol 'P5'"), ("[P1, P1]", "listed twice")):
        with pytest.raises(ConfigError, match=match):
            checked(base.replace("oulu_protocols: []", f"oulu_protocols: {bad}"))
    assert "datasets: [O, C, I, M]" in chosen and "protocols: [OCI-M, OMI-C, OCM-I, ICM-O]" in chosen
    without_o = (chosen.replace("datasets: [O, C, I, M]", "datasets: [C, I, M]")
                 .replace("protocols: [OCI-M, OMI-C, OCM-I, ICM-O]", "protocols: [MI-C]"))
    with pytest.raises(ConfigError, match=r"oulu_protocols: OULU-NPU \(O\) is not in data.datasets"):
        checked(without_o)
    clash = base.replace("MI-O: {sources: [M, I], target: O}", "OULU-P1: {sources: [M, I], target: O}")
    with pytest.raises(ConfigError, match="OULU-NPU fold's manifest name"):
        checked(clash.replace("oulu_protocols: []", "oulu_protocols: [P1]"))


@pytest.mark.slow  # the manifests stage on the full official name trees of four datasets
def test_manifests_stage_writes_the_folds(tmp_path, monkeypatch):
    """`stages/manifests.py` with ``oulu_protocols: [P1, P4]``: the cross-domain manifests as before plus
    one per fold, each re-read with the checks every reader runs; the default run has no OULU keys."""
    monkeypatch.chdir(tmp_path)
    for code, make in TREES.items():
        make(tmp_path / "raw" / code)
        records = adapter_for(code).scan(tmp_path / "raw" / code).records
        write_index(records, Path("data/index") / f"{code}.csv")
        write_csv(Path("data/faces") / code / "faces.csv",
                  ({"video_id": r.video_id, "frame": 0, "path": f"data/faces/{code}/{r.relpath}/0.png"}
                   for r in records), ["video_id", "frame", "path"])
    text = (REPO / "params.yaml").read_text()
    runs = {}
    for name, params in (("default", text), ("oulu", text.replace("oulu_protocols: []", "oulu_protocols: [P1, P4]"))):
        Path("params.yaml").write_text(params)
        out = Path("data/manifests")
        shutil.rmtree(out, ignore_errors=True)
        done = subprocess.run([sys.executable, *stage_argv("manifests")], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "PYTHONPATH": str(REPO / "src")})
        assert done.returncode == 0, done.stderr[-3000:]
        runs[name] = (json.loads(Path("metrics/manifests.json").read_text()), sorted(p.name for p in out.iterdir()))
    default, oulu = runs["default"], runs["oulu"]
    assert "oulu_protocols" not in default[0]
    assert oulu[1] == sorted(default[1] + ["OULU-P1.csv"] + [f"OULU-P4-{p}.csv" for p in range(1, 7)])
    assert {k: v for k, v in oulu[0].items() if not k.startswith("oulu_")} == default[0]
    p4 = oulu[0]["oulu_protocols"]["OULU-P4-3"]
    assert p4["target"]["O"] == {"live": 20, "print": 20, "replay": 20, "faces": 60}
    assert p4["source-val"]["O"]["live"] == 150 and p4["source-train"]["O"]["print"] == 200
    rows = read_manifest("data/manifests/OULU-P4-3.csv", "data/faces", protocol=OULU_DOMAINS)
    assert {r.video_id.split("/")[-1][0] for r in rows if r.role == "target"} == {"3"}  # phone 3 only
