"""bench/gpu_check.py without a GPU: its CPU mode runs the same code path, so CI can tell that
the prepared GPU check works before anyone spends GPU time on it."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "gpu_check.py"
# the script end to end in fresh interpreters (a tiny training run, scoring, export): full suite only
pytestmark = pytest.mark.slow


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    return {**env, **extra}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict]:
    """One CPU run in tiny mode, its JSON going to $OUT as on the device machine."""
    out = tmp_path_factory.mktemp("out")
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--tiny"], cwd=REPO,
                          env=_env(OUT=str(out)), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done, json.loads((out / "gpu_check.json").read_text())


def _finite_positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_report_fields_and_verdict(tiny):
    done, report = tiny
    assert report["verdict"] == "PASS" and report["error"] is None
    env = report["environment"]
    assert env["device"] == "cpu" and env["torch"] == torch.__version__ and env["device_name"]
    assert report["config"]["bench"]["backbone"] == "resnet18" and report["config"]["bench"]["input_size"] == 64
    assert any("no-op" in note for note in report["notes"])  # says the CPU comparison is trivial
    assert "VERDICT: PASS" in done.stdout and "spearman" in done.stdout


def test_training_numbers_are_sane(tiny):
    _, report = tiny
    steps = report["config"]["warmup"] + report["config"]["iters"]
    for precision in ("fp32", "bf16"):
        run = report["train"][precision]
        for key in ("seconds_per_iteration", "images_per_second", "tflop_per_iteration", "achieved_tflops"):
            assert _finite_positive(run[key]), (precision, key, run[key])
        assert run["mfu"] is None and run["peak_memory_gib"] is None  # CUDA-only numbers
        assert len(run["losses"]) == steps
        assert all(_finite_positive(v) for step in run["losses"] for v in step.values())
    assert report["train"]["fp32"]["tflop_per_iteration"] == report["train"]["bf16"]["tflop_per_iteration"]


def test_scoring_and_metrics(tiny):
    _, report = tiny
    for precision in ("fp32", "bf16"):
        run = report["score"][precision]
        assert _finite_positive(run["faces_per_second"]) and run["output_dtype"] == "float32"
        assert set(run["metrics"]) == {"auc", "eer", "eer_threshold", "best_hter", "best_hter_threshold",
                                       "far", "frr", "hter"}
        assert all(0 <= run["metrics"][k] <= 1 for k in ("auc", "eer", "best_hter", "far", "frr", "hter"))
    assert report["score"]["fp32"]["metrics"] == report["score"]["bf16"]["metrics"]


def test_agreement_is_exact_on_cpu(tiny):
    _, report = tiny
    agree = report["agreement"]
    for key in ("score_mean_abs", "score_max_abs", "flip_fraction", "final_loss_rel", "weights_rel_l2",
                "loss_max_abs"):
        assert agree[key] == 0.0, key
    assert agree["auc_fp32"] == agree["auc_bf16_trained"] == report["score"]["fp32"]["metrics"]["auc"]
    assert agree["spearman"] == pytest.approx(1.0) and agree["kendall"] == pytest.approx(1.0)
    assert agree["end_to_end"]["score_max_abs"] == 0.0
    status = {c["name"]: c["status"] for c in report["checks"]}
    assert status["bf16 autocast active"] == "not judged"
    assert all(s in ("pass", "not judged") for s in status.values())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a machine without CUDA")
def test_cuda_without_a_gpu_fails_fast(tmp_path):
    target = tmp_path / "never.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cuda", "--json", str(target)], cwd=REPO,
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and not target.exists()
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no CUDA device" in lines[0]


def test_out_of_memory_is_reported(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    import gpu_check

    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB\n(details)")

    monkeypatch.setattr(gpu_check, "train_run", oom)
    target = tmp_path / "oom.json"
    assert gpu_check.main(["--device", "cpu", "--tiny", "--faces", "4", "--json", str(target)]) == 1
    report = json.loads(target.read_text())
    assert report["verdict"] == "FAIL"
    assert report["error"] == ("CUDA out of memory during training fp32: "
                               "CUDA out of memory. Tried to allocate 20.00 GiB")


def test_training_is_judged_by_where_it_ends(tmp_path, monkeypatch):
    """bf16 training that ends at a higher loss, or with a worse held-out AUC, fails; drift alone
    does not."""
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    import gpu_check

    def run(losses: list[float]) -> gpu_check.TrainRun:
        return gpu_check.TrainRun("fp32", 1.0, 1.0, 1.0, 1.0, None, None, None, None,
                                  [{"meta_test_loss": v, "meta_train_loss": v} for v in losses])

    def report(bf16_losses: list[float], auc_bf16: float) -> gpu_check.Report:
        rep = gpu_check.Report(environment={}, config={}, bounds={})
        rep.train = {"fp32": run([0.9] * 10 + [0.30] * 10), "bf16": run(bf16_losses)}
        rep.score = {p: gpu_check.ScoreRun(p, 1.0, "float32", None, 0.0, {}) for p in ("fp32", "bf16")}
        rep.agreement = gpu_check.Agreement(
            score_mean_abs=0.001, score_max_abs=0.01, score_std_fp32=0.2, spearman=0.999, kendall=0.99,
            flip_fraction=0.0, final_loss_rel=gpu_check.final_loss_gap(rep.train, 10), auc_fp32=1.0,
            auc_bf16_trained=auc_bf16, weights_rel_l2=0.5, update_rel_l2=2.0,
            loss_max_abs=gpu_check.loss_gap(rep.train))
        return rep

    def status(rep: gpu_check.Report) -> dict[str, str]:
        return {c.name.split(" (")[0]: c.status for c in gpu_check.judge(rep, gpu_check.Bounds(), torch.device("cpu"))}

    drifted = report([0.8] * 10 + [0.31] * 10, 0.99)  # large per-step gaps, same end
    assert drifted.agreement.loss_max_abs == pytest.approx(0.1)
    assert set(status(drifted).values()) <= {"pass", "not judged"}
    higher = status(report([0.9] * 10 + [0.36] * 10, 1.0))  # ends 20 % higher
    assert higher["final loss rel gap"] == "fail"
    worse = status(report([0.9] * 10 + [0.30] * 10, 0.95))
    assert worse["AUC drop, bf16-trained"] == "fail" and worse["final loss rel gap"] == "pass"


def test_agreement_measures_and_judges_a_real_difference(monkeypatch):
    """On CPU bf16 changes nothing, so the CPU run's agreement is 0 by construction; here two
    runs that really differ check the arithmetic and that the bounds catch a bad one."""
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    import gpu_check as g

    labels = np.array([1, 1, 0, 0])
    s32, s16 = np.array([0.9, 0.6, 0.4, 0.1]), np.array([0.8, 0.3, 0.7, 0.2])  # one pair swapped, two flips
    init = {"w": torch.zeros(2)}
    states = {"fp32": {"w": torch.tensor([3.0, 4.0])}, "bf16": {"w": torch.tensor([3.0, 4.6])}}

    def run(precision, losses):
        return g.TrainRun(precision, 1.0, 1.0, 1.0, 1.0, None, None, None, None,
                          [{"meta_test": v, "meta_train": v} for v in losses])

    runs = {"fp32": run("fp32", [1.0, 0.5, 0.4]), "bf16": run("bf16", [1.0, 0.7, 0.6])}
    agree = g.agreement({"fp32": s32, "bf16": s16}, s16, labels, states, init, ["w"], runs, 0.5, 2)
    assert agree.score_mean_abs == pytest.approx(0.2) and agree.score_max_abs == pytest.approx(0.3)
    assert agree.flip_fraction == pytest.approx(0.5)
    assert agree.spearman == pytest.approx(0.8) and agree.kendall == pytest.approx(2 / 3)  # ranks 4321 vs 4231
    assert agree.final_loss_rel == pytest.approx((0.65 - 0.45) / 0.45) and agree.loss_max_abs == pytest.approx(0.2)
    assert agree.weights_rel_l2 == pytest.approx(0.6 / 5) and agree.update_rel_l2 == pytest.approx(0.6 / 5)
    assert agree.auc_fp32 == 1.0 and agree.auc_bf16_trained == pytest.approx(0.75)
    bounds = g.Bounds()  # the bounds the GPU check judges with catch a disagreement this large
    assert g.bounded("spearman", agree.spearman, bounds.spearman, upper=False).status == "fail"
    assert g.bounded("flips at threshold", agree.flip_fraction, bounds.flip_fraction).status == "fail"
    assert g.bounded("score max |diff|", agree.score_max_abs, bounds.score_max_abs).status == "fail"
