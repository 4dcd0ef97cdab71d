"""Training: batches, the two meta-learning steps, checkpoints, resume and MLflow runs.

Everything runs the real model (resnet18 at 64 px) on a synthetic manifest: aligned-face
PNGs cut from scikit-image's astronaut with a colour cast per domain; spoofs are
desaturated, blurred and striped (print/replay-like), so there is something to learn.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from helpers import REPO
from helpers import param_defaults as dflt
from helpers.faces import manifest_rows
from helpers.stage_cmd import stage_argv
from mpfas.core.config import ConfigError, load_params
from mpfas.core.sampling import pick_evenly
from mpfas.evaluate.protocol import Outputs, evaluate_protocol
from mpfas.methods.hfn_mp.algorithms import alternating_step, bilevel_meta_gradients, bilevel_step, split_parameters
from mpfas.models import build_model
from mpfas.models.checkpoint import SCHEMA_VERSION, Preprocess
from mpfas.models.inference import load_faces, score_videos
from mpfas.train import DomainSampler

# ------------------------------------------------------------------ synthetic data


# ------------------------------------------------------------------ inference and data

def test_load_faces_and_video_scores(workspace):
    rows = manifest_rows(workspace)
    batch = load_faces(rows[0].faces, 32)
    assert batch.shape == (3, 3, 32, 32) and batch.dtype == torch.float32
    assert batch.min() >= 0.0 and batch.max() <= 1.0 and batch.max() > 0.5
    with pytest.raises(FileNotFoundError, match=r"nope\.png"):
        load_faces(["data/faces/O/nope.png"], 32)
    model = build_model(load_params("params.yaml").model)
    videos = [r.faces for r in rows[:3]] + [[]]
    scores = score_videos(model, videos, 64, 4, "cpu", num_frames=2)
    assert model.training  # mode restored
    assert scores.shape == (4,) and np.isnan(scores[3]) and np.all((scores[:3] >= 0) & (scores[:3] <= 1))
    from mpfas.models.inference import score_frames

    frames = score_frames(model, pick_evenly(rows[0].faces, 2), 64, 1, "cpu")
    assert scores[0] == pytest.approx(frames.mean(), abs=1e-5)


def test_sampler_is_balanced_seeded_and_resumable(workspace):
    train = [r for r in manifest_rows(workspace) if r.role == "source-train"]

    def make(seed):
        return DomainSampler(train, num_frames=2, batch_live=3, batch_spoof=2, size=32, seed=seed)

    a, b, c = make(1), make(1), make(2)
    first = a.batch("O")
    assert first.rgb.shape == (5, 3, 32, 32) and first.is_live.tolist() == [1, 1, 1, 0, 0]
    assert torch.equal(first.rgb, b.batch("O").rgb)
    assert not torch.equal(first.rgb, c.batch("O").rgb)
    assert a.frames("O") == 3 * 2 * 2  # videos x classes x num_frames
    state = a.state_dict()
    torch.save(state, workspace / "s.pt")
    expected = [a.batch(d).rgb for d in ("C", "O", "O", "I")]
    b.load_state_dict(torch.load(workspace / "s.pt", weights_only=True))
    assert all(torch.equal(x, b.batch(d).rgb) for x, d in zip(expected, ("C", "O", "O", "I")))
    plain = DomainSampler(train, num_frames=2, batch_live=3, batch_spoof=2, size=32, seed=1, flip=False)
    unflipped = plain.batch("O").rgb  # same frames as ``first`` (frames are drawn before flips)
    flipped = [not torch.equal(x, y) for x, y in zip(first.rgb, unflipped)]
    assert any(flipped)
    assert all(torch.equal(x, y.flip(-1)) for x, y, f in zip(first.rgb, unflipped, flipped) if f)
    with pytest.raises(KeyError, match="M"):
        a.batch("M")


def test_color_augment_jitters_the_same_frames_seeded_and_resumable(workspace):
    train = [r for r in manifest_rows(workspace) if r.role == "source-train"]

    def make(color):
        return DomainSampler(train, num_frames=2, batch_live=3, batch_spoof=2, size=32, seed=1, color=color)

    flip, a, b = make(False), make(True), make(True)
    official, jittered = flip.batch("O"), a.batch("O")
    assert torch.equal(official.is_live, jittered.is_live)
    assert jittered.rgb.shape == official.rgb.shape and jittered.rgb.min() >= 0.0 and jittered.rgb.max() <= 1.0
    # every face is recoloured, not replaced: far from the official batch's face, close in structure
    diff = (jittered.rgb - official.rgb).abs().mean((1, 2, 3))
    assert bool((diff > 1e-3).all())
    corr = [np.corrcoef(x.mean(0).flatten(), y.mean(0).flatten())[0, 1] for x, y in zip(jittered.rgb, official.rgb)]
    assert min(corr) > 0.8
    assert torch.equal(jittered.rgb, b.batch("O").rgb)  # seeded
    torch.save(a.state_dict(), workspace / "s.pt")
    expected = [a.batch(d).rgb for d in ("C", "I")]
    b.load_state_dict(torch.load(workspace / "s.pt", weights_only=True))
    assert all(torch.equal(x, b.batch(d).rgb) for x, d in zip(expected, ("C", "I")))


def test_photometric_jitter_is_seeded_per_image_and_still_at_zero_ranges():
    from mpfas.train.data import Jitter, photometric_jitter

    img = torch.rand(4, 3, 16, 16)
    still = Jitter(brightness=0, contrast=0, saturation=0, hue=0, gamma=0, blur_p=0)
    assert torch.allclose(photometric_jitter(img, np.random.default_rng(0), still), img, atol=1e-5)
    a, b = (photometric_jitter(img, np.random.default_rng(1)) for _ in range(2))
    assert torch.equal(a, b) and not torch.allclose(a, img, atol=1e-3)
    assert a.min() >= 0 and a.max() <= 1
    # each image gets its own factors: the same image twice comes out two ways
    twin = photometric_jitter(img[:1].repeat(2, 1, 1, 1), np.random.default_rng(2))
    assert not torch.allclose(twin[0], twin[1], atol=1e-3)


def test_color_augment_is_a_difference_from_the_paper():
    import dataclasses

    from mpfas.core.presets import PAPER, differences

    assert PAPER.values["train.augment"] == "flip"
    params = dflt.params()
    params = dataclasses.replace(params, train=dataclasses.replace(params.train, augment="color"))
    assert differences(params)["train.augment"] == {"ours": "color", "preset": "flip"}
    with pytest.raises(ConfigError, match=r"train\.augment"):
        from mpfas.core.config import parse_params

        text = (REPO / "params.yaml").read_text()
        assert text.count("augment: flip") == 1
        parse_params(text.replace("augment: flip", "augment: colour"), "params.yaml")


# ------------------------------------------------------------------ the two algorithms

def _snapshot(params: dict) -> dict:
    return {n: p.detach().clone() for n, p in params.items()}


def _changed(before: dict, after: dict) -> set[str]:
    return {n for n in before if not torch.equal(before[n], after[n])}


@pytest.fixture
def tiny(workspace):
    params = load_params("params.yaml")
    torch.manual_seed(0)
    model = build_model(params.model)
    train = [r for r in manifest_rows(workspace) if r.role == "source-train"]
    # one live + one spoof face per domain batch: the smallest batch the losses and BatchNorm accept
    sampler = DomainSampler(train, num_frames=2, batch_live=1, batch_spoof=1, size=64, seed=0)
    return model, sampler


def test_alternating_inner_moves_only_mp_outer_only_hfn(tiny):
    model, sampler = tiny
    mp, hfn = split_parameters(model)
    assert mp and hfn and len(mp) + len(hfn) == len(list(model.parameters()))
    mp_opt = torch.optim.SGD(mp.values(), lr=0.1, momentum=0.9)
    hfn_opt = torch.optim.SGD(hfn.values(), lr=0.1, momentum=0.9)
    start_mp, start_hfn = _snapshot(mp), _snapshot(hfn)
    after_inner = []
    mp_opt.register_step_post_hook(lambda *_: after_inner.append((_snapshot(mp), _snapshot(hfn))))
    stats = alternating_step(model, mp_opt, hfn_opt, [sampler.batch("O"), sampler.batch("C")],
                             [sampler.batch("I") for _ in range(3)], torch.device("cpu"))
    assert len(after_inner) == 3
    for _, inner_hfn in after_inner:
        assert not _changed(start_hfn, inner_hfn)  # inner steps leave the HFN alone
    assert _changed(start_mp, after_inner[0][0]) == set(mp)  # ... and move every MP parameter
    final_mp, final_hfn = _snapshot(mp), _snapshot(hfn)
    assert not _changed(after_inner[-1][0], final_mp)  # the outer step leaves the MP alone
    assert len(_changed(start_hfn, final_hfn)) > 0.9 * len(hfn)  # ... and moves the HFN
    assert {"meta_test_loss", "meta_test_map", "meta_test_cls", "meta_train_loss"} <= set(stats)
    assert all(p.requires_grad for p in model.parameters())  # freezing was undone


def test_no_learnable_pattern_trains_hfn_only(workspace):
    params = load_params("params.yaml")
    model = build_model(type(params.model)(**{**params.model.__dict__, "pattern": "hsv"}))
    assert model.pattern_parameters() == []
    train = [r for r in manifest_rows(workspace) if r.role == "source-train"]
    sampler = DomainSampler(train, num_frames=2, batch_live=2, batch_spoof=2, size=64, seed=0)
    hfn_opt = torch.optim.SGD(model.hfn_parameters(), lr=0.1)
    stats = alternating_step(model, None, hfn_opt, [sampler.batch(d) for d in "OCI"], [], torch.device("cpu"))
    assert "meta_test_loss" not in stats and np.isfinite(stats["meta_train_loss"])


def test_bilevel_mp_gets_gradient_through_the_virtual_step(tiny):
    model, sampler = tiny
    meta_train, meta_test = [sampler.batch("O"), sampler.batch("C")], sampler.batch("I")
    cpu = torch.device("cpu")
    g2, h2, stats = bilevel_meta_gradients(model, meta_train, meta_test, 0.5, False, cpu)
    g1, h1, _ = bilevel_meta_gradients(model, meta_train, meta_test, 0.5, True, cpu)
    assert set(g2) == set(split_parameters(model)[0])
    assert all(g.abs().sum() > 0 for g in g2.values())
    # the only difference between the two is the path through the virtual HFN step
    through_virtual = sum(float((g2[n] - g1[n]).abs().sum()) for n in g2)
    assert through_virtual > 1e-6 * sum(float(g.abs().sum()) for g in g2.values())
    assert all(torch.allclose(h2[n], h1[n], atol=1e-6) for n in h2)  # same meta-train gradient
    assert stats["meta_train_loss"] > 0 and stats["meta_test_loss"] > 0
    mp, hfn = split_parameters(model)
    before_mp, before_hfn = _snapshot(mp), _snapshot(hfn)
    bilevel_step(model, torch.optim.SGD(mp.values(), lr=0.1), torch.optim.SGD(hfn.values(), lr=0.1),
                 meta_train, meta_test, False, cpu)
    assert _changed(before_mp, _snapshot(mp)) == set(mp)
    assert len(_changed(before_hfn, _snapshot(hfn))) > 0.9 * len(hfn)


# ------------------------------------------------------------------ params fail early

@pytest.mark.parametrize("section,key,value,match", [
    ("train", "inner_loops", 0, "train.inner_loops"),
    ("train", "meta_lr", -0.001, "train.meta_lr"),
    ("train", "algorithm", "maml", "train.algorithm"),
])
def test_bad_params_fail_naming_the_key(tmp_path, section, key, value, match):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params[section][key] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match=match):
        load_params(tmp_path / "params.yaml")


def _set(section: str, key: str, value) -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())
    params[section][key] = value
    Path("params.yaml").write_text(yaml.safe_dump(params))


def test_stage_refuses_bad_params_before_any_work(workspace):
    """The real command line: exit 2, one line naming the key, nothing written."""
    _set("train", "inner_loops", 0)
    proc = subprocess.run([sys.executable, *stage_argv("train", "OCI-M")], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "train.inner_loops" in proc.stderr and "Traceback" not in proc.stderr
    assert not Path("models").exists()


@pytest.mark.parametrize("key,value,words", [
    ("backbone", "resnet99", "model.backbone: 'resnet99' is not a registered backbone"),  # checked before the body
    ("pretrained", "evil.pth", "evil.pth: refused by torch.load(weights_only=True)"),  # a code-carrying pickle
])
def test_bad_model_params_stop_the_train_stage_in_one_line(workspace, capsys, key, value, words):
    from helpers.foreign_pickle import save_foreign
    from helpers.stage_cmd import stage_module

    save_foreign(Path("evil.pth"), Path("pwned"))
    _set("model", key, value)
    assert stage_module("train").main(stage_argv("train", "OCI-M")[1:]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and words in err[-1] and not any("Traceback" in line for line in err)
    assert not Path("pwned").exists() and not Path("models/OCI-M/last.pt").exists()


# ------------------------------------------------------------------ the loop, checkpoints, MLflow

def test_tiny_training_run_is_tracked(workspace, mlflow_uri):
    import mlflow

    from mpfas.train import train
    from mpfas.train.curves import Curves

    params = load_params("params.yaml")  # 3 iterations, validation at 2 and 3
    curves = Curves.at("plots/loss.csv", "plots/val.csv")
    stale = Path("models/OCI-M/.last.pt.4242.tmp")  # what a checkpoint write cut short by a kill leaves
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a checkpoint")
    result = train(params, "OCI-M", manifest="data/manifests/OCI-M.csv", faces="data/faces", out_dir="models/OCI-M",
                   curves=curves)
    assert not stale.exists() and not list(Path("models/OCI-M").glob(".*.tmp"))  # swept at the start
    best = torch.load("models/OCI-M/best.pt", weights_only=True)
    assert best["schema_version"] == SCHEMA_VERSION == 2 and best["kind"] == "best" and best["resume"] is None
    assert best["protocol"] == "OCI-M" and best["selection"] == "source_val"
    assert best["model_config"]["backbone"] == "resnet18" and best["iteration"] in (2, 3)
    assert best["iteration"] == result.best_iteration
    assert 0 <= best["val"]["hter"] <= 1 and best["threshold"] == best["val"]["threshold"]
    assert best["threshold_rule"] == "source-val EER"
    last = torch.load("models/OCI-M/last.pt", weights_only=True)
    assert last["kind"] == "last" and last["threshold"] is None
    assert last["iteration"] == 3 and last["resume"]["trainer"]["hfn"]["state"] and last["run_id"] == result.run_id
    for ckpt in (best, last):  # the faces' preprocessing, for predict, export and the MLflow model
        assert ckpt["preprocess"] == Preprocess.from_params(params).as_dict()
    model = build_model(params.model)
    model.load_state_dict(best["model"])
    run = json.loads(Path("models/OCI-M/run.json").read_text())
    assert run["run_id"] == result.run_id and run["tracking_uri"] == mlflow_uri and run["protocol"] == "OCI-M"

    mlflow.set_tracking_uri(mlflow_uri)
    runs = mlflow.search_runs(experiment_names=["test-training"], filter_string="tags.protocol = 'OCI-M'",
                              output_format="list")
    found = {r.info.run_id: r for r in runs}[result.run_id]
    assert found.info.status == "FINISHED"
    assert found.data.tags["pretrained"] == "random-init" and found.data.tags["select"] == "source_val"
    assert found.data.params["train.inner_loops"] == "2" and found.data.params["model.input_size"] == "64"
    assert {"meta_test_loss", "meta_train_map", "meta_train_cls", "lr_hfn", "lr_mp", "val_auc", "val_hter"} \
        <= set(found.data.metrics)
    assert found.data.metrics["lr_mp"] == pytest.approx(2 * found.data.metrics["lr_hfn"])
    client = mlflow.tracking.MlflowClient(mlflow_uri)
    history = client.get_metric_history(result.run_id, "meta_train_loss")
    assert [m.step for m in history] == [1, 2, 3]
    artifacts = {a.path for a in client.list_artifacts(result.run_id, "checkpoint")} | {
        a.path for a in client.list_artifacts(result.run_id, "config")}
    assert {"checkpoint/best.pt", "config/params.yaml"} <= artifacts

    # the curves `dvc plots` draws hold what MLflow holds, timings left out
    with open(curves.loss.path, newline="") as f:
        loss = list(csv.DictReader(f))
    assert [int(r["step"]) for r in loss] == [1, 2, 3]
    assert [float(r["meta_train_loss"]) for r in loss] == pytest.approx([m.value for m in history])
    assert {"meta_test_loss", "lr_hfn", "lr_mp"} <= set(loss[0]) and "seconds_per_iteration" not in loss[0]
    with open(curves.source_val.path, newline="") as f:
        val = list(csv.DictReader(f))
    assert [int(r["step"]) for r in val] == [2, 3]
    assert float(val[-1]["val_auc"]) == pytest.approx(found.data.metrics["val_auc"])
    # lost curves of a finished run come back from MLflow on the next (nothing-to-train) call
    written = curves.loss.path.read_text(), curves.source_val.path.read_text()
    curves.loss.path.unlink()
    curves.source_val.path.unlink()
    train(params, "OCI-M", manifest="data/manifests/OCI-M.csv", faces="data/faces", out_dir="models/OCI-M",
          curves=curves)
    assert (curves.loss.path.read_text(), curves.source_val.path.read_text()) == written

    # the target is scored at every evaluation (never selecting under source_val), as evaluate scores
    # it: at best.pt's iteration the curve holds the evaluate stage's frame numbers
    assert all(r["target_frame_min_hter"] and r["target_frame_auc"] for r in val)
    quick = dataclasses.replace(params, evaluate=dataclasses.replace(params.evaluate, bootstrap=0, last_n=1))
    done = evaluate_protocol(quick, "OCI-M", quick.manifests.protocols["OCI-M"],
                             checkpoint=Path("models/OCI-M/best.pt"), run_json=Path("models/OCI-M/run.json"),
                             manifest=Path("data/manifests/OCI-M.csv"),
                             faces=Path("data/faces"), curve=curves.source_val.path,
                             out=Outputs(*map(Path, ("s.csv", "m.json", "roc.json", "plots"))))
    at_best = next(r for r in val if int(r["step"]) == best["iteration"])
    frame = done.evaluation.metrics["frame"]
    assert float(at_best["target_frame_min_hter"]) == pytest.approx(frame["hter_oracle"], abs=1e-9)
    assert float(at_best["target_frame_auc"]) == pytest.approx(frame["auc"], abs=1e-9)
    views = json.loads(Path("m.json").read_text())["views"]
    assert views["evaluations"] == 2 and views["last_n"]["iterations"] == [3]
    assert views["last_n"]["auc"] == {"mean": pytest.approx(float(val[-1]["target_frame_auc"])), "std": None}


def test_a_tracking_db_of_another_schema_stops_training_before_any_work(workspace, empty_db, monkeypatch):
    import shutil
    import sqlite3

    from mpfas import tracking
    from mpfas.train import train

    db = workspace / "other.db"
    shutil.copy(empty_db, db)
    with sqlite3.connect(db) as con:
        con.execute("UPDATE alembic_version SET version_num = '0123456789ab'")
    before = db.read_bytes()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db.as_posix()}")
    with pytest.raises(tracking.TrackingSchemaError):
        train(load_params("params.yaml"), "OCI-M", manifest="data/manifests/OCI-M.csv", faces="data/faces",
              out_dir="models/OCI-M")
    assert db.read_bytes() == before and not Path("models/OCI-M/last.pt").exists()


def test_an_unusable_tracking_store_leaves_training_untracked_not_failed(workspace, monkeypatch, caplog):
    """MLflow is the index, not the record: a store that cannot be opened (here its folder
    cannot exist: a file stands where its folder should be, which stops root too) gives one loud error,
    and the model and metrics are still written."""
    from mpfas.train import train

    (workspace / "no").write_text("a file, not a folder")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{(workspace / 'no' / 'mlflow.db').as_posix()}")
    with caplog.at_level("ERROR", logger="mpfas.tracking"):
        result = train(load_params("params.yaml"), "OCI-M", manifest="data/manifests/OCI-M.csv", faces="data/faces",
                       out_dir="models/OCI-M")
    assert result.run_id is None and Path("models/OCI-M/best.pt").is_file()
    assert json.loads(Path("models/OCI-M/run.json").read_text())["run_id"] is None
    assert any("WITHOUT MLflow" in r.getMessage() for r in caplog.records)
    assert (workspace / "no").read_text() == "a file, not a folder"


def test_failed_run_is_marked_failed(workspace, mlflow_uri):
    import mlflow

    from mpfas.models.inference import FaceReadError
    from mpfas.train import train

    for victim in (r for r in manifest_rows(workspace) if r.role == "source-train" and r.domain == "C"):
        for face in victim.faces:  # undecodable, found only when drawn (a missing face fails before the run)
            Path(face).write_bytes(Path(face).read_bytes()[:100])
    with pytest.raises(FaceReadError):  # every C video is broken: the first C batch fails
        train(load_params("params.yaml"), "OCI-M", manifest="data/manifests/OCI-M.csv", faces="data/faces",
              out_dir="models/OCI-M")
    run_id = json.loads(Path("models/OCI-M/run.json").read_text())["run_id"]
    assert mlflow.tracking.MlflowClient(mlflow_uri).get_run(run_id).info.status == "FAILED"


@pytest.mark.slow  # a second full train() run; the quick tier keeps test_tiny_training_run_is_tracked
def test_target_oracle_selection_is_labelled(workspace, mlflow_uri):
    from mlflow.tracking import MlflowClient

    from mpfas.train import train

    params = yaml.safe_load(Path("params.yaml").read_text())
    params["train"].update(iterations=1, select="target_oracle", algorithm="bilevel")
    Path("params.yaml").write_text(yaml.safe_dump(params))
    result = train(load_params("params.yaml"), "OCI-M", manifest="data/manifests/OCI-M.csv", faces="data/faces",
                   out_dir="models/OCI-M")
    best = torch.load("models/OCI-M/best.pt", weights_only=True)
    assert best["selection"] == "target_oracle" and "target_min_hter" in best["val"]
    assert "threshold" in best["val"]  # the source-val threshold is still stored
    tags = MlflowClient(mlflow_uri).get_run(result.run_id).data.tags
    assert tags["select"] == "target_oracle" and tags["leakage"].startswith("target-oracle")
