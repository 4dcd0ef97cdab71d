"""The paper's setting: the preset, ImageNet weights files, all-source training, precision,
the official selection and the fidelity switches (channel order, pyramid init)."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torchvision
import yaml

from helpers import param_defaults as dflt
from helpers.faces import make_workspace
from mpfas.core.config import ConfigError, load_params
from mpfas.core.presets import PAPER, apply_preset, differences, dvc_set_args
from mpfas.models import build_model
from mpfas.models import weights as weights_mod
from mpfas.models.inference import score_frames

REPO = Path(__file__).resolve().parents[1]


def _cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mpfas", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


# ------------------------------------------------------------------ the preset

def test_paper_preset_sets_every_knob_and_keeps_comments(tmp_path):
    params_file = tmp_path / "params.yaml"
    params_file.write_text((REPO / "params.yaml").read_text())
    before = load_params(params_file)
    assert "model.backbone" in differences(before)  # the demo defaults are not the paper's

    dry = _cli("preset", "paper", "--params", str(params_file), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert params_file.read_text() == (REPO / "params.yaml").read_text()  # a dry run writes nothing
    assert "model.backbone: 'efficientnet_lite0' -> 'resnet50'" in dry.stdout

    done = _cli("preset", "paper", "--params", str(params_file))
    assert done.returncode == 0, done.stderr
    p = load_params(params_file)
    assert (p.model.backbone, p.model.input_size, p.model.pattern) == ("resnet50", 256, "meta")
    assert p.model.pretrained == "weights/resnet50-19c8e357.pth"
    assert (p.model.channel_order, p.model.pyramid_init) == ("bgr", "official")
    assert p.train.inner_loops == 4 and p.train.meta_lr == 0.001 and p.train.momentum == 0.9
    assert (p.train.batch_live, p.train.batch_spoof, p.train.faces_per_video, p.train.seed) == (4, 4, 2, 666)
    assert p.train.eval_every == 200 and p.train.select == "target_oracle" and p.train.precision == "fp32"
    assert p.manifests.val_fraction == 0.0 and p.manifests.target_set == "all"
    assert p.score.precision == "fp32" and p.score.faces_per_video == 2
    assert differences(p) == {}
    # the user's data settings and the file's comments survive
    assert p.data == before.data
    text = params_file.read_text()
    assert "# The single source of knobs." in text
    assert "# efficientnet_lite0 (CPU demo, docs/demo.md) | resnet18 | resnet50 (the paper)" in text


def test_preset_as_dvc_exp_arguments_and_own_weights_path(tmp_path):
    args = dvc_set_args(PAPER, {"model.pretrained": "/data/w.pth"})
    pairs = dict(a.split("=", 1) for a in args[1::2])
    assert args[::2] == ["-S"] * len(PAPER.values)
    assert pairs["model.pretrained"] == "/data/w.pth" and pairs["train.select"] == "target_oracle"
    out = _cli("preset", "paper", "--dvc-args", "--pretrained", "w 1.pth")
    assert out.returncode == 0 and "-S 'model.pretrained=w 1.pth'" in out.stdout


def test_preset_refuses_to_write_an_invalid_file(tmp_path):
    params_file = tmp_path / "params.yaml"
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"]["protocols"] = ["NOPE"]  # already broken: the result would not load
    params_file.write_text(yaml.safe_dump(params))
    original = params_file.read_text()
    with pytest.raises(ConfigError, match=r"train\.protocols"):
        apply_preset(params_file, PAPER)
    assert params_file.read_text() == original


# ------------------------------------------------------------------ ImageNet weights

@pytest.fixture
def resnet18_file(tmp_path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "repo" / "weights" / "resnet18-test.pth"
    path.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    (tmp_path / "repo" / ".dvc").mkdir()
    return path


def test_relative_weights_path_resolves_from_a_dvc_experiment_copy(resnet18_file, monkeypatch):
    root = resnet18_file.parents[1]
    copy = root / ".dvc" / "tmp" / "exps" / "tmpabc123"  # where `dvc exp run --temp/--queue` runs
    copy.mkdir(parents=True)
    monkeypatch.chdir(copy)
    model = build_model(dflt.model(pretrained="weights/resnet18-test.pth", input_size=64))
    assert model.pretrained_sha256 == weights_mod.sha256_of(resnet18_file)
    assert torch.equal(model.hfn.rgb_stream.body.conv1.weight,
                       torch.load(resnet18_file, weights_only=True)["conv1.weight"])
    monkeypatch.chdir(root.parent)
    with pytest.raises(FileNotFoundError, match=r"model\.pretrained"):
        build_model(dflt.model(pretrained="weights/missing.pth", input_size=64))


def test_known_weights_files_are_named_by_their_hash_prefix():
    for prefix, known in weights_mod.KNOWN_WEIGHTS.items():  # efficientnet_lite0's file spells it with '-'
        assert known.file.startswith(f"{known.arch.replace('_', '-')}-{prefix}.pth")
    versions = {(k.arch, k.version) for k in weights_mod.KNOWN_WEIGHTS.values()}
    assert versions == {("resnet18", "IMAGENET1K_V1"), ("resnet50", "IMAGENET1K_V1"), ("resnet50", "IMAGENET1K_V2"),
                        ("efficientnet_lite0", "ImageNet")}
    assert weights_mod.identify("19c8e357" + "0" * 56).file.startswith("resnet50-19c8e357.pth")
    assert weights_mod.identify("deadbeef" + "0" * 56) is None


def test_v2_weights_load_with_a_warning_naming_v1(resnet18_file, monkeypatch):
    sha = weights_mod.sha256_of(resnet18_file)
    # pretend this file is a V2 release (no V2 file ships here); the logic under test is the lookup
    monkeypatch.setitem(weights_mod.KNOWN_WEIGHTS, sha[:8],
                        weights_mod.KnownWeights("resnet18", "IMAGENET1K_V2", f"resnet18-{sha[:8]}.pth"))
    with pytest.warns(weights_mod.NotPaperWeightsWarning, match="IMAGENET1K_V1.*resnet18-f37072fd.pth"):
        build_model(dflt.model(pretrained=str(resnet18_file), input_size=64))
    monkeypatch.setitem(weights_mod.KNOWN_WEIGHTS, sha[:8],
                        weights_mod.KnownWeights("resnet18", "IMAGENET1K_V1", f"resnet18-{sha[:8]}.pth"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", weights_mod.NotPaperWeightsWarning)
        build_model(dflt.model(pretrained=str(resnet18_file), input_size=64))


# ------------------------------------------------------------------ fidelity switches

def test_bgr_reverses_the_channels_at_the_input():
    torch.manual_seed(0)
    rgb_model = build_model(dflt.model(input_size=64, pretrained="random")).eval()
    bgr_model = build_model(dflt.model(input_size=64, pretrained="random", channel_order="bgr")).eval()
    bgr_model.load_state_dict(rgb_model.state_dict())
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        a, b = rgb_model(x.flip(1)), bgr_model(x)
    assert torch.allclose(a.logits, b.logits) and torch.allclose(a.map, b.map)
    with torch.no_grad():
        assert not torch.allclose(rgb_model(x).logits, b.logits)


def test_official_pyramid_init_is_default_and_shared_by_both_streams():
    torch.manual_seed(0)
    assert dflt.model().pyramid_init == "official"  # params.yaml's default
    official = build_model(dflt.model(input_size=64, pretrained="random"))
    normal = build_model(dflt.model(input_size=64, pretrained="random", pyramid_init="normal"))
    for m, shared in ((official, True), (normal, False)):
        for a, b in zip(m.hfn.rgb_stream.pyramid_convs(), m.hfn.pattern_stream.pyramid_convs()):
            assert torch.equal(a.weight, b.weight) == shared
    # PyTorch's default (kaiming-uniform) conv init is far wider than N(0, 0.01) with zero bias
    assert official.hfn.rgb_stream.lateral3.weight.std() > 0.03
    assert official.hfn.rgb_stream.lateral3.bias.abs().sum() > 0
    assert normal.hfn.rgb_stream.lateral3.weight.std() < 0.012
    assert normal.hfn.rgb_stream.lateral3.bias.abs().sum() == 0


def test_precision_is_fp32_by_default_and_bf16_is_a_cpu_no_op(tmp_path):
    from PIL import Image

    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.png")
        Image.new("RGB", (64, 64), (40 * i, 90, 200 - 30 * i)).save(paths[-1])
    model = build_model(dflt.model(input_size=64, pretrained="random"))
    fp32 = score_frames(model, paths, 64, 2, "cpu")
    assert fp32.dtype == "float64" and torch.isfinite(torch.from_numpy(fp32)).all()
    assert (score_frames(model, paths, 64, 2, "cpu", "bf16") == fp32).all()
    with pytest.raises(ValueError, match="precision"):
        score_frames(model, paths, 64, 2, "cpu", "fp16")
    assert load_params(REPO / "params.yaml").train.precision == "fp32"


# ------------------------------------------------------------------ real data, all sources

def test_real_data_with_random_init_refuses_unless_asked(tmp_path, monkeypatch):
    from mpfas.train import train

    make_workspace(tmp_path, overrides={"data": {"source": "real", "roots": {c: "/nowhere" for c in "OCIM"}}})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"model\.pretrained.*'random'"):
        train(load_params("params.yaml"), "OCI-M", manifest="data/manifests/OCI-M.csv", faces="data/faces",
              out_dir="models/OCI-M")
    assert not Path("models").exists()  # refused before any work


def test_source_val_selection_needs_source_val_videos(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["manifests"]["val_fraction"] = 0
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match=r"train\.select.*val_fraction is 0"):
        load_params(tmp_path / "params.yaml")


@pytest.mark.slow  # train(), evaluate and report end to end
def test_all_source_training_selects_last_and_evaluates_without_source_val(tmp_path, monkeypatch):
    """val_fraction 0: no source-val rows; select 'last'; evaluate and report cope."""
    from mpfas.evaluate.report import build_summary, render_markdown
    from mpfas.evaluate.scoring import evaluate
    from mpfas.manifests.build import read_manifest
    from mpfas.models.checkpoint import load_model
    from mpfas.train import train

    make_workspace(tmp_path, val_videos=0, overrides={
        "manifests": {"val_fraction": 0.0}, "train": {**_tiny_train(), "select": "last"}})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}")
    params = load_params("params.yaml")
    result = train(params, "OCI-M", manifest="data/manifests/OCI-M.csv", faces="data/faces", out_dir="models/OCI-M")
    assert result.best_iteration == params.train.iterations and "auc" not in result.best_val
    best = torch.load("models/OCI-M/best.pt", weights_only=True)
    assert best["selection"] == "last" and best["threshold"] is None and best["threshold_rule"] == "none"

    model, ckpt = load_model(Path("models/OCI-M/best.pt"), "cpu")
    info = ckpt.info(Path("models/OCI-M/best.pt"))
    rows = read_manifest(Path("data/manifests/OCI-M.csv"), faces_root=tmp_path / "data/faces")
    ev = evaluate("OCI-M", rows, lambda p: score_frames(model, p, 64, 8, "cpu"), params.score.faces_per_video,
                  params.evaluate, info)
    video = ev.metrics["video"]
    assert video["hter_val"] is None and video["val_threshold"] is None and "hter_val_ci" not in video
    assert video["auc"] is not None and video["hter_oracle"] is not None
    assert ev.metrics["leakage_free"] == {"checkpoint": True, "threshold_source_val": False}
    assert "no source-val" in ev.metrics["notes"]["video_val_threshold"]

    Path("metrics/evaluate").mkdir(parents=True)
    Path("metrics/evaluate/OCI-M.json").write_text(json.dumps(ev.metrics, default=float))
    summary = build_summary(dflt.params(**{**params.__dict__}), Path("metrics"),
                            preset_differences=differences(params))
    page = render_markdown(summary)
    assert summary["protocols"]["OCI-M"]["leakage_free"] is False
    assert "n/a (no source-val)" in page and "last @ iter" in page


@pytest.mark.slow  # a 4-iteration train() scoring the target each iteration
def test_target_oracle_selects_on_frame_level_min_hter(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from mpfas.train import train

    make_workspace(tmp_path, overrides={"train": {**_tiny_train(), "iterations": 4, "eval_every": 1,
                                                  "select": "target_oracle"}})
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    result = train(load_params("params.yaml"), "OCI-M", manifest="data/manifests/OCI-M.csv", faces="data/faces",
                   out_dir="models/OCI-M")
    history = MlflowClient(uri).get_metric_history(result.run_id, "target_frame_min_hter")
    assert [m.step for m in history] == [1, 2, 3, 4]
    # the first iteration with the lowest frame-level target min-HTER (the official strict <: a later
    # equal one, whatever its AUC, does not replace it)
    best_step = min(history, key=lambda m: (m.value, m.step)).step
    assert result.best_iteration == best_step
    tags = MlflowClient(uri).get_run(result.run_id).data.tags
    assert "model.backbone=resnet18" in tags["paper_preset_differs"]


def _tiny_train() -> dict:
    return {"iterations": 2, "inner_loops": 1, "batch_live": 2, "batch_spoof": 2, "eval_every": 1, "seed": 666}


def test_target_oracle_ties_keep_the_first_checkpoint(monkeypatch):
    """Equal frame-level target min-HTER at two iterations: the earlier stays best even when the
    later has the higher AUC (the official trainer replaces only on a strictly lower HTER)."""
    from mpfas.train import loop

    scores = iter([{"frame_min_hter": 0.2, "frame_auc": 0.7}, {"frame_min_hter": 0.2, "frame_auc": 0.9},
                   {"frame_min_hter": 0.1, "frame_auc": 0.5}])
    monkeypatch.setattr(loop, "validate", lambda *a, **k: next(scores))
    params = dflt.params(train=dflt.train(select="target_oracle"))
    best, kept = None, []
    for it in (1, 2, 3):
        _, key = loop._validation(None, {"source-val": [], "target": []}, params, torch.device("cpu"), it)
        if loop._better(key, best):
            best, kept = key, [*kept, it]
    assert kept == [1, 3]
