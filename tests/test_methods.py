"""Methods as a registry, and SSDG-R (the baseline) against hand-computed values and the
official code's behaviour: losses, the gradient reversal, a short training that learns, and a
trained checkpoint through predict, ONNX and the MLflow model."""

from __future__ import annotations

import itertools
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from helpers import param_defaults as dflt
from helpers.faces import TINY, make_workspace, manifest_rows
from mpfas.core.config import ConfigError, load_params, parse_params
from mpfas.core.presets import PRESETS, differences, preset_for
from mpfas.methods import build_model, get_method, method_names
from mpfas.methods.ssdg.losses import (
    asymmetric_triplet_loss,
    live_adversarial_loss,
    pairwise_distances,
    triplet_labels,
)
from mpfas.methods.ssdg.model import Discriminator, GradientReversal, SSDGNet, grl_coefficient, normalise_feature
from mpfas.methods.ssdg.trainer import SSDGTrainer
from mpfas.models import RandomInitWarning


def _ssdg(size: int = 64) -> SSDGNet:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomInitWarning)
        return build_model(dflt.model(method="ssdg", backbone="resnet18", input_size=size, pretrained=""))


# ------------------------------------------------------------------ the registry

def test_both_methods_are_registered_and_an_unknown_one_names_the_key():
    assert {"hfn_mp", "ssdg"} <= set(method_names())
    with pytest.raises(ConfigError, match=r"model\.method: 'nope' is not a registered method"):
        get_method("nope")
    text = (dflt.PARAMS_FILE).read_text().replace("method: hfn_mp", "method: nope")
    params = parse_params(text)  # the parser knows no registry; the train stage checks it (below)
    with pytest.raises(ConfigError, match=r"model\.method"):
        get_method(params.model.method)


def test_the_ssdg_preset_writes_its_official_setting(tmp_path):
    from mpfas.__main__ import main

    params_file = tmp_path / "params.yaml"
    params_file.write_text(dflt.PARAMS_FILE.read_text())
    assert main(["preset", "ssdg-paper", "--params", str(params_file)]) == 0
    p = load_params(params_file)
    assert (p.model.method, p.model.backbone, p.model.input_size) == ("ssdg", "resnet18", 256)
    assert (p.train.iterations, p.train.eval_every, p.train.batch_live, p.train.faces_per_video) == (4000, 10, 10, 1)
    assert p.train.select == "target_oracle" and p.ssdg.lr == 0.001
    assert differences(p, PRESETS["ssdg-paper"]) == {}


def test_each_method_is_compared_with_its_own_official_preset():
    assert preset_for("hfn_mp").name == "paper" and preset_for("ssdg").name == "ssdg-paper"
    ssdg = dflt.params(model=dflt.model(method="ssdg"))
    diffs = differences(ssdg, PRESETS["ssdg-paper"])
    assert "model.method" not in diffs
    assert diffs["train.iterations"] == {"ours": 100, "preset": 4000}
    assert "model.method" in differences(ssdg, PRESETS["paper"])


# ------------------------------------------------------------------ losses, by hand

def test_pairwise_distances_and_feature_normalisation_by_hand():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]], requires_grad=True)
    d = pairwise_distances(x)
    assert torch.allclose(d, torch.tensor([[0.0, 5.0, 0.0], [5.0, 0.0, 5.0], [0.0, 5.0, 0.0]]))
    d.sum().backward()  # equal rows: distance 0, and still a finite gradient
    assert torch.isfinite(x.grad).all()
    f = normalise_feature(torch.tensor([[3.0, 4.0]]))  # ||f|| = 5: f / (sqrt(5) sqrt(2))
    assert torch.allclose(f, torch.tensor([[3.0, 4.0]]) / math.sqrt(10))


def test_asymmetric_triplet_loss_by_hand():
    """Two live faces (domains 0, 1), one spoof of domain 0 (class 1), one of domain 1 (class 2)."""
    is_live, domain = torch.tensor([1, 1, 0, 0]), torch.tensor([0, 1, 0, 1])
    labels = triplet_labels(is_live, domain)
    assert labels.tolist() == [0, 0, 1, 2]  # all live faces one class; spoofs by domain
    f = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.05, 0.0], [1.0, 0.0]])
    # valid triplets (a, p, n): a, p live (0, 1 or 1, 0), n a spoof: 4 of them;
    # d(0,1) = 0.1; d(0,2) = 0.05, d(0,3) = 1.0; d(1,2) = 0.05, d(1,3) = 0.9
    terms = [0.1 - 0.05 + 0.1, 0.1 - 1.0 + 0.1, 0.1 - 0.05 + 0.1, 0.1 - 0.9 + 0.1]
    positive = [t for t in terms if t > 0]
    want = sum(positive) / len(positive)  # mean over the triplets that still violate the margin
    got = asymmetric_triplet_loss(f, labels, margin=0.1)
    assert got.item() == pytest.approx(want) == pytest.approx(0.15)
    # a brute-force reference on random features agrees
    g = torch.randn(9, 5)
    lab = torch.tensor([0, 0, 0, 1, 1, 2, 2, 3, 3])
    dist = torch.cdist(g.double(), g.double())
    vals = [max(0.0, float(dist[a, p] - dist[a, n] + 0.1)) for a, p, n in itertools.permutations(range(9), 3)
            if lab[a] == lab[p] and lab[a] != lab[n]]
    hard = [v for v in vals if v > 1e-16]
    assert asymmetric_triplet_loss(g, lab, 0.1).item() == pytest.approx(sum(hard) / len(hard), rel=1e-5)


def test_live_adversarial_loss_is_the_domain_cross_entropy():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    want = -(math.log(math.exp(2) / (math.exp(2) + 2)) + math.log(math.e / (math.e + 2))) / 2
    assert live_adversarial_loss(logits, torch.tensor([0, 1])).item() == pytest.approx(want)


def test_grl_schedule_and_sign():
    assert grl_coefficient(0, 4000) == 0.0
    assert grl_coefficient(4000, 4000) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert grl_coefficient(400, 4000) == pytest.approx(2 / (1 + math.exp(-1)) - 1)
    # the reversal flips (and scales) the gradient that reaches the feature extractor
    torch.manual_seed(0)
    disc = Discriminator(3).eval()
    feature = torch.randn(6, 512, requires_grad=True)
    domain = torch.tensor([0, 1, 2, 0, 1, 2])
    F.cross_entropy(disc(feature, 0.7), domain).backward()
    reversed_grad = feature.grad.clone()
    feature.grad = None
    F.cross_entropy(disc.fc2(disc.dropout(F.relu(disc.fc1(feature)))), domain).backward()
    assert torch.allclose(reversed_grad, -0.7 * feature.grad)
    assert GradientReversal.apply(torch.ones(2), 0.5).tolist() == [1.0, 1.0]  # identity forward


def test_the_discriminator_gradient_reaches_the_backbone_reversed():
    """Through the whole network: the adversarial loss alone moves the body's weights the opposite
    way of a plain domain classifier on the same features."""
    torch.manual_seed(0)
    model, disc = _ssdg(), Discriminator(2).eval()
    model.eval()  # no dropout: both passes see the same features
    x, domain = torch.rand(4, 3, 64, 64), torch.tensor([0, 1, 0, 1])
    grads = []
    for reverse in (True, False):
        model.zero_grad()
        f = model(x).feature
        logits = disc(f, 1.0) if reverse else disc.fc2(disc.dropout(F.relu(disc.fc1(f))))
        F.cross_entropy(logits, domain).backward()
        grads.append(model.body.conv1.weight.grad.clone())
    assert grads[1].abs().max() > 0 and torch.allclose(grads[0], -grads[1], atol=1e-7)


def test_classifier_columns_are_renormalised_and_eval_matches_train_without_writing():
    torch.manual_seed(0)
    model = _ssdg()
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        model.classifier.weight.mul_(3.0)
    model.eval()
    before = model.classifier.weight.clone()
    out_eval = model(x)
    assert torch.equal(model.classifier.weight, before)  # eval never writes the weights
    model.train()  # the training path, with the statistics eval used: BatchNorm in eval, no dropout
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.eval()
    model.dropout.p = 0.0
    out_train = model(x)
    norms = model.classifier.weight.norm(dim=0)
    assert torch.allclose(norms, torch.ones_like(norms))  # the official in-place column normalisation
    assert torch.allclose(out_eval.logits, out_train.logits, atol=1e-5)
    score = model.frame_score(out_eval)
    assert torch.allclose(score, out_eval.logits.softmax(1)[:, 1]) and score.dtype == torch.float32


# ------------------------------------------------------------------ training on faces

def test_the_lr_drops_tenfold_where_the_official_schedule_does():
    params = dflt.params(model=dflt.model(method="ssdg"), train=dflt.train(iterations=4000))
    trainer = SSDGTrainer(_ssdg(), params, ["O", "C", "I"])
    assert [trainer.lr_at(it) for it in (1, 1500, 1501, 4000)] == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4])


@pytest.mark.slow  # one 30-iteration SSDG run, then predict, ONNX and the MLflow model on it
def test_ssdg_learns_and_its_checkpoint_serves_like_any(tmp_path, monkeypatch, mlflow_uri):
    from mpfas.models.inference import load_faces, score_frames
    from mpfas.serve.export import export_onnx, run_onnx, torch_outputs
    from mpfas.serve.mlflow_model import publish
    from mpfas.serve.predict import load_model
    from mpfas.train import train
    from mpfas.train.curves import Curves

    make_workspace(tmp_path, overrides={
        "model": {**TINY["model"], "method": "ssdg"},
        "train": {"iterations": 30, "eval_every": 10, "batch_live": 3, "batch_spoof": 3},
        "ssdg": {"lr": 0.01}})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    params = load_params("params.yaml")
    result = train(params, "OCI-M", manifest="data/manifests/OCI-M.csv", faces="data/faces",
                   out_dir="models/OCI-M", curves=Curves.at("loss.csv", "val.csv"))
    import pandas as pd

    loss = pd.read_csv("loss.csv")
    assert {"loss", "cls", "triplet", "adversarial", "grl", "lr"} <= set(loss.columns)
    assert loss["loss"].tail(5).mean() < loss["loss"].head(5).mean()
    assert loss["grl"].is_monotonic_increasing and loss["grl"].iloc[0] > 0
    best = torch.load("models/OCI-M/best.pt", weights_only=True)
    assert best["model_config"]["method"] == "ssdg" and not any(k.startswith("discriminator") for k in best["model"])
    last = torch.load("models/OCI-M/last.pt", weights_only=True)
    assert set(last["resume"]["trainer"]) == {"sgd", "discriminator"}  # the discriminator resumes too

    loaded = load_model("models/OCI-M/best.pt")
    assert isinstance(loaded.model, SSDGNet) and loaded.threshold == pytest.approx(best["threshold"])
    faces = [f for r in manifest_rows(tmp_path) if r.role == "target" for f in r.faces][:6]
    scores = score_frames(loaded.model, faces, 64, 4, "cpu")
    report = export_onnx("models/OCI-M/best.pt", tmp_path / "ssdg.onnx")
    rgb = load_faces(faces, 64).numpy()
    got, ref = run_onnx(tmp_path / "ssdg.onnx", rgb), torch_outputs(loaded.model, rgb)
    assert set(got) == {"score", "logits"} and report.max_abs_diff <= 1e-4
    assert np.ptp(ref["logits"][:, 1]) > 1e-3  # the faces differ to the model: the parity check is not blind
    np.testing.assert_allclose(got["logits"], ref["logits"], atol=1e-4)
    np.testing.assert_allclose(got["score"], scores, atol=1e-4)

    import mlflow

    done = publish(result.run_id, "models/OCI-M/best.pt")
    mlflow.set_tracking_uri(mlflow_uri)
    pyfunc = mlflow.pyfunc.load_model(done.logged.model_uri)
    np.testing.assert_allclose(pyfunc.predict(rgb), scores, atol=1e-5)
    assert yaml.safe_load(Path("params.yaml").read_text())["model"]["method"] == "ssdg"
