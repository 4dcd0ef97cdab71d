"""OULU-NPU folds through training and evaluation: phone pseudo-domains, the stages, the report.

The pseudo-domains are checked on the full official name list; the stages run the real model
(resnet18 at 32 px, two iterations) on a real OULU-NPU fold manifest (the manifests stage's
``plan_oulu_manifest`` over real file names) of small face images, with a real MLflow store.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path

import pytest
import yaml

from helpers.faces import face_image
from helpers.name_trees import oulu_tree
from helpers.stage_cmd import stage_module
from mpfas.core.config import ConfigError, load_params
from mpfas.data import adapter_for
from mpfas.data.oulu_protocols import oulu_folds
from mpfas.evaluate.report import oulu_summary, render_oulu
from mpfas.manifests.build import OULU_DOMAINS, ManifestRow, plan_oulu_manifest, write_manifest
from mpfas.train.protocols import phone_domain, resolve_protocol

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def oulu_records(tmp_path_factory):
    root = tmp_path_factory.mktemp("oulu")
    oulu_tree(root)
    return adapter_for("O").scan(root).records


def _params(**manifests):
    params = load_params(REPO / "params.yaml")
    return dataclasses.replace(params, manifests=dataclasses.replace(params.manifests, **manifests))


@pytest.mark.parametrize(("fold", "phones"), [("OULU-P1", [1, 2, 3, 4, 5, 6]), ("OULU-P2", [1, 2, 3, 4, 5, 6]),
                                              ("OULU-P3-2", [1, 3, 4, 5, 6]), ("OULU-P4-6", [1, 2, 3, 4, 5])])
def test_phone_pseudo_domains_on_the_official_names(oulu_records, fold, phones):
    spec = resolve_protocol(_params(oulu_protocols=["P1", "P2", "P3", "P4"]), fold)
    assert spec.domains == OULU_DOMAINS and spec.sources == [f"O{p}" for p in phones]
    by_name = {f.name: f for p in ("P1", "P2", "P3", "P4") for f in oulu_folds(p)}
    rows = plan_oulu_manifest(by_name[fold], oulu_records, {r.video_id: ["f.png"] for r in oulu_records}).rows
    grouped = spec.training_rows(rows)
    assert [r.video_id for r in grouped] == [r.video_id for r in rows]  # same rows, same order
    train = [r for r in grouped if r.role == "source-train"]
    assert sorted({r.domain for r in train}) == spec.sources
    for row in train:  # the phone is the file name's first number
        assert row.domain == "O" + Path(row.video_id).name[0]
    assert {r.domain for r in grouped if r.role != "source-train"} == {"O"}  # Dev and Test keep the dataset
    assert {r.domain for r in rows} == {"O"}  # the manifest's rows are left as they are


def test_resolver_knows_both_kinds_of_name():
    params = _params(oulu_protocols=["P3"])
    cross = resolve_protocol(params, "MI-C")
    assert cross.domains == params.manifests.protocols["MI-C"] and cross.sources == ["M", "I"]
    rows = [ManifestRow("MSU-MFSD", "M", "M/a.mov", "1", "train", "live", 1, "", "source-train", ["a.png"])]
    assert cross.training_rows(rows) == rows
    for name in ("XYZ", "OULU-P1"):  # OULU-P1: a fold of a protocol that is not on
        with pytest.raises(ConfigError, match=r"not in manifests\.protocols \[.*'OCI-M'.*\] nor an OULU-NPU "
                                              r"fold of manifests\.oulu_protocols \['OULU-P3-1', .*'OULU-P3-6'\]"):
            resolve_protocol(params, name)
    with pytest.raises(Exception, match="not an OULU-NPU video"):
        phone_domain(dataclasses.replace(rows[0], domain="O", video_id="O/other/1_1_01_1.avi"))


# ------------------------------------------------------------------ the stages on a small real fold

# Train: user 01 on every phone (session 1), Dev: users 21 and 22, Test: user 36 (session 3, every file)
FILES = [f"Train_files/{phone}_1_01_{f}.avi" for phone in range(1, 7) for f in (1, 2, 4)] + [
    f"Dev_files/{phone}_2_{user}_{f}.avi" for phone, user in ((1, 21), (2, 22)) for f in (1, 2, 4)] + [
    f"Test_files/3_3_36_{f}.avi" for f in range(1, 6)]
TINY = {"model": {"input_size": 32, "pretrained": ""},
        "manifests": {"oulu_protocols": ["P1"]},
        "train": {"iterations": 2, "eval_every": 1, "inner_loops": 1, "batch_live": 1, "batch_spoof": 1},
        "evaluate": {"bootstrap": 0},
        "runtime": {"device": "cpu", "checkpoint_every": 1, "experiment": "test-oulu"}}


@pytest.fixture(scope="module")
def oulu_workspace(tmp_path_factory):
    """The P1 fold's manifest as the manifests stage writes it, two 32 px faces per video, params."""
    import numpy as np

    root = tmp_path_factory.mktemp("oulu-fold")
    adapter, rng = adapter_for("O"), np.random.default_rng(0)
    records = [adapter.parse(name) for name in FILES]
    faces = {}
    for r in records:
        faces[r.video_id] = []
        for i in range(2):
            rel = f"data/faces/{r.video_id}/{i}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            face_image(rng, "O", r.label.value == "live").resize((32, 32)).save(root / rel)
            faces[r.video_id].append(rel)
    fold = oulu_folds("P1")[0]
    write_manifest(plan_oulu_manifest(fold, records, faces).rows, root / "data/manifests/OULU-P1.csv")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in TINY.items():
        params[section].update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def _run_stage(name: str, argv: list[str]) -> None:
    assert stage_module(name).main(argv) == 0


@pytest.mark.slow  # two train_oulu runs and an evaluation
def test_oulu_stages_train_on_phones_and_evaluate_at_the_dev_threshold(oulu_workspace, monkeypatch, caplog,
                                                                       tmp_path):
    import mlflow

    uri = f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}"
    monkeypatch.chdir(oulu_workspace)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    caplog.set_level(logging.INFO, logger="mpfas.train.loop")
    from helpers.stage_cmd import stage_argv

    # cut short after iteration 1 (train.iterations is not in the resume fingerprint), then resumed
    cut = yaml.safe_load(Path("params.yaml").read_text())
    cut["train"]["iterations"] = 1
    Path("params_cut.yaml").write_text(yaml.safe_dump(cut, sort_keys=False))
    monkeypatch.setenv("MPFAS_PARAMS", "params_cut.yaml")
    _run_stage("train_oulu", stage_argv("train_oulu", "P1")[1:])
    first = json.loads(Path("metrics/train_OULU-P1.json").read_text())["folds"]["OULU-P1"]
    assert first["iterations"] == 1 and first["resumed_from"] == 0
    monkeypatch.delenv("MPFAS_PARAMS")
    _run_stage("train_oulu", stage_argv("train_oulu", "P1")[1:])
    roles = re.findall(r"meta-train \[([^]]*)\] meta-test (\S+)", caplog.text)
    assert roles  # the meta-train and meta-test domains are phones, all six of them
    assert {d.strip("' ") for d in roles[0][0].split(",")} | {roles[0][1]} == {f"O{p}" for p in range(1, 7)}
    fold_dir = oulu_workspace / "models/OULU-P1/OULU-P1"
    assert {p.name for p in fold_dir.iterdir()} >= {"best.pt", "last.pt", "run.json"}
    summary = json.loads((oulu_workspace / "metrics/train_OULU-P1.json").read_text())
    assert summary["protocol"] == "P1" and list(summary["folds"]) == ["OULU-P1"]
    fold = summary["folds"]["OULU-P1"]
    assert fold["protocol"] == "OULU-P1" and fold["iterations"] == 2 and fold["source_val"]["videos"] == 6
    assert fold["resumed_from"] == 1 and fold["run_id"] == first["run_id"]  # the fold's own last.pt and run

    _run_stage("evaluate_oulu", stage_argv("evaluate_oulu", "P1")[1:])
    metrics = json.loads((oulu_workspace / "metrics/evaluate/OULU-P1/OULU-P1.json").read_text())
    video = metrics["video"]
    assert metrics["counts"]["target"]["videos"] == 5 and metrics["counts"]["source_val"]["videos"] == 6
    # the OULU-NPU rule: threshold at the Dev EER, APCER the worse of print and replay, on Test
    assert video["apcer_val"] == max(video["apcer_print_val"], video["apcer_replay_val"])
    assert video["acer_val"] == pytest.approx((video["apcer_val"] + video["bpcer_val"]) / 2)
    test_scores = {}
    for line in (oulu_workspace / "data/scores/OULU-P1/OULU-P1.csv").read_text().splitlines()[1:]:
        video_id, *_, score = line.split(",")
        test_scores.setdefault(video_id, []).append(float(score))
    assert len(test_scores) == 5
    assert (oulu_workspace / "plots/OULU-P1/OULU-P1/roc.json").is_file()

    table = oulu_summary(["P1"], oulu_workspace / "metrics")["P1"]
    assert table["evaluated"] == 1 and table["acer_pct"]["mean"] == round(100 * video["acer_val"], 2)
    row = r"\| P1 \| `source_val` \| 1/1 \| \d+\.\d\d \| \d+\.\d\d \| \d+\.\d\d \|"
    assert re.search(row, "\n".join(render_oulu({"P1": table})))

    mlflow.set_tracking_uri(uri)
    run_id = json.loads((fold_dir / "run.json").read_text())["run_id"]
    run = mlflow.get_run(run_id)
    assert run.data.tags["protocol"] == "OULU-P1" and run.data.tags["mlflow.runName"] == "OULU-P1"
    assert run.data.metrics["eval/video/acer_val"] == pytest.approx(video["acer_val"])



# ------------------------------------------------------------------ the pipeline: dvc repro on a small real tree

def render_oulu_tree(root: Path, names: list[str], frames: int = 4, seed: int = 0) -> None:
    """Real OULU-NPU file names holding rendered videos (the demo's renderer: each phone its simulated
    camera, each session its place), one identity per user."""
    from mpfas.data.datasets.oulu import OULU_FILES, oulu_name
    from mpfas.demo.faces import assign_identities
    from mpfas.demo.layout import VideoSpec
    from mpfas.demo.render import render_video
    from mpfas.demo.synth import write_video

    users = sorted({oulu_name(n).user for n in names})
    identities = assign_identities(seed, len(users), ("O",))["O"]
    for i, name in enumerate(names):
        n = oulu_name(name)
        label, medium, device = OULU_FILES[n.file]
        spec = VideoSpec("O", name, users.index(n.user), label, medium, device, f"phone{n.phone}_session{n.session}")
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(path, render_video(spec, identities[spec.subject], seed, frames, 12, 1.0, i), 12)


@pytest.mark.slow
@pytest.mark.heavy  # about 90 s on 2 cores (render, extract, align, train, evaluate): `make test-all`
def test_dvc_repro_oulu_p1_on_a_small_real_tree(tmp_path):
    from helpers.pipeline_copy import check_runtime_edits_rerun_nothing, copy_repo, dvc

    tree = tmp_path / "OULU-NPU"
    render_oulu_tree(tree, FILES)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    overrides = {
        "data": {"source": "real", "datasets": ["O"], "roots": {**params["data"]["roots"], "O": str(tree)},
                 "incomplete": "warn", "protocols": []},  # 29 of the 4950 official videos
        "extract": {"frames_per_video": 2},
        "align": {"crop_size": 64},
        "manifests": {"oulu_protocols": ["P1"]},
        "model": {"input_size": 32, "pretrained": "random"},
        "train": {"iterations": 2, "eval_every": 1, "inner_loops": 1, "batch_live": 1, "batch_spoof": 1},
        "evaluate": {"bootstrap": 0},
        "runtime": {"checkpoint_every": 1},
    }
    repo = copy_repo(tmp_path / "repo", overrides)
    # the whole pipeline: the report needs only the datasets in data.datasets
    result = dvc(repo, "repro")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert (repo / "models/OULU-P1/OULU-P1/best.pt").is_file() and (repo / "models/OULU-P1/OULU-P1/last.pt").is_file()
    shown = json.loads(dvc(repo, "metrics", "show", "--json").stdout)
    files = {path for rev in shown.values() for path in rev.get("data", {})}
    assert "metrics/evaluate/OULU-P1/OULU-P1.json" in files and "metrics/train_OULU-P1.json" in files
    status = dvc(repo, "status", "--json")
    assert json.loads(status.stdout) == {}, status.stdout  # nothing stale, though last.pt is not cached
    from mlflow.tracking import MlflowClient

    run_id = json.loads((repo / "models/OULU-P1/OULU-P1/run.json").read_text())["run_id"]
    uri = f"sqlite:///{repo / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    tags = client.get_run(run_id).data.tags
    assert tags["mlflow.runName"] == "OULU-P1" and tags["mlflow.source.name"] == "stages/train_oulu.py"
    assert client.get_run(tags["mlflow.parentRunId"]).data.tags["pipeline_run"] == tags["pipeline_run"]
    assert client.get_model_version_by_alias("mpfas-OULU-P1", "best-source-val").run_id == run_id

    md = (repo / "reports/summary.md").read_text()
    assert "## OULU-NPU intra-dataset protocols (ISO/IEC 30107-3)" in md
    assert re.search(r"\| P1 \| `source_val` \| 1/1 \| \d+\.\d\d \| \d+\.\d\d \| \d+\.\d\d \|", md), md
    # the output-neutral knobs leave the OULU stages up to date
    check_runtime_edits_rerun_nothing(repo, stages=("train_oulu", "evaluate_oulu"))
