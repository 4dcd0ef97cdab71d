"""OULU-NPU's rule on hand-computed cases: Dev EER threshold, Test APCER (worst PAI), BPCER, ACER, folds."""

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from mpfas.core.config import load_params
from mpfas.core.metrics import IsoRates
from mpfas.evaluate.oulu_npu import fold_rates, mean_std, over_folds
from mpfas.evaluate.report import ReportError, build_summary, oulu_summary, render_markdown
from mpfas.evaluate.scoring import ScoreSet, level_metrics

REPO = Path(__file__).resolve().parents[1]

# Dev: at 0.7 one live of three is rejected (0.6) and one attack of three accepted (0.7): FAR = FRR = 1/3
DEV_SCORES = [0.9, 0.8, 0.6, 0.7, 0.3, 0.2]
DEV_LIVE = [1, 1, 1, 0, 0, 0]
# Test at 0.7 (live iff score >= 0.7): live 0.65 rejected -> BPCER 1/4; print 0.71 and 0.7 accepted -> 2/4;
# replay 0.75 accepted -> 1/4; APCER = max = 1/2; ACER = (1/2 + 1/4) / 2 = 3/8
TEST = [(0.95, 1, "live"), (0.65, 1, "live"), (0.72, 1, "live"), (0.8, 1, "live"),
        (0.71, 0, "print"), (0.1, 0, "print"), (0.7, 0, "print"), (0.0, 0, "print"),
        (0.69, 0, "replay"), (0.75, 0, "replay"), (0.2, 0, "replay"), (0.1, 0, "replay")]


def _test_arrays():
    s, y, k = zip(*TEST)
    return np.array(s), np.array(y), np.array(k, dtype=object)


def test_fold_rates_by_hand():
    s, y, k = _test_arrays()
    r = fold_rates(DEV_SCORES, DEV_LIVE, s, y, k)
    assert r.threshold == 0.7
    assert r.test.apcer_per_type == {"print": 0.5, "replay": 0.25}
    assert (r.test.apcer, r.test.bpcer, r.test.acer) == (0.5, 0.25, 0.375)


def test_the_threshold_comes_from_dev_never_test():
    s, y, k = _test_arrays()
    shifted = fold_rates([x + 0.2 for x in DEV_SCORES], DEV_LIVE, s, y, k)  # Dev EER threshold moves to 0.9
    assert shifted.threshold == pytest.approx(0.9)
    assert shifted.test.apcer == 0.0 and shifted.test.bpcer == 0.75  # only 0.95 is accepted
    with pytest.raises(ValueError, match="OULU-NPU dev"):
        fold_rates([0.1, 0.2], [1, 1], s, y, k)


def test_the_evaluate_stage_val_metrics_are_the_oulu_rule():
    """An OULU fold's manifest has Dev as source-val: evaluate's *_val keys are exactly fold_rates."""
    rng = np.random.default_rng(0)
    n = 60
    y = rng.integers(0, 2, n)
    y[:2] = (0, 1)
    kinds = np.where(y == 1, "live", np.where(rng.random(n) < 0.5, "print", "replay")).astype(object)
    test_s = rng.random(n) + 0.3 * y
    dev_y = rng.integers(0, 2, 40)
    dev_y[:2] = (0, 1)
    dev_s = rng.random(40) + 0.3 * dev_y
    m = level_metrics(ScoreSet(test_s, y, kinds, np.arange(n)),
                      ScoreSet(dev_s, dev_y, np.where(dev_y == 1, "live", "print").astype(object), np.arange(40)),
                      where="OULU-P1", resamples=0, seed=0)
    r = fold_rates(dev_s, dev_y, test_s, y, kinds)
    assert m["val_threshold"] == r.threshold
    assert (m["apcer_val"], m["bpcer_val"], m["acer_val"]) == (r.test.apcer, r.test.bpcer, r.test.acer)
    assert (m["apcer_print_val"], m["apcer_replay_val"]) == (r.test.apcer_per_type["print"],
                                                             r.test.apcer_per_type["replay"])


def test_mean_and_sample_std_over_folds():
    ms = mean_std([0.1, 0.2, 0.3])
    assert (ms.mean, ms.folds) == (pytest.approx(0.2), 3) and ms.std == pytest.approx(0.1)  # ddof = 1
    assert mean_std([0.25]).std is None
    with pytest.raises(ValueError):
        mean_std([])
    folds = [IsoRates(0.4, {"print": 0.4}, 0.0, 0.2), IsoRates(0.0, {"print": 0.0}, 0.2, 0.1)]
    out = over_folds(folds)
    assert out["apcer"].mean == pytest.approx(0.2) and out["bpcer"].mean == pytest.approx(0.1)
    assert out["acer"].mean == pytest.approx(0.15)  # the mean of the folds' ACERs
    assert out["acer"].std == pytest.approx(math.sqrt(2 * 0.05 ** 2))


def _fold_file(path: Path, apcer: float, bpcer: float, selection: str = "source_val") -> None:
    video = {"apcer_val": apcer, "bpcer_val": bpcer, "acer_val": (apcer + bpcer) / 2, "val_threshold": 0.5,
             "apcer_print_val": apcer, "apcer_replay_val": apcer / 2}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"video": video, "selection": selection}))


def test_report_table(tmp_path):
    metrics = tmp_path / "metrics"
    _fold_file(metrics / "evaluate" / "OULU-P1" / "OULU-P1.json", 0.1, 0.05)
    for phone in range(1, 6):
        _fold_file(metrics / "evaluate" / "OULU-P3" / f"OULU-P3-{phone}.json", 0.02 * phone, 0.0)
    out = oulu_summary(["P1", "P3"], metrics)
    assert out["P1"]["acer_pct"] == {"mean": 7.5, "std": None}
    assert out["P3"]["evaluated"] == 5 and "acer_pct" not in out["P3"]  # no mean over five of six folds
    assert out["P3"]["folds"]["OULU-P3-6"] is None
    _fold_file(metrics / "evaluate" / "OULU-P3" / "OULU-P3-6.json", 0.12, 0.0)
    out = oulu_summary(["P1", "P3"], metrics)
    assert out["P3"]["apcer_pct"]["mean"] == 7.0 and out["P3"]["bpcer_pct"] == {"mean": 0.0, "std": 0.0}
    assert out["P3"]["apcer_pct"]["std"] == round(100 * float(np.std([0.02 * p for p in range(1, 7)], ddof=1)), 2)
    assert out["P3"]["folds"]["OULU-P3-2"]["apcer_replay_pct"] == 2.0

    params = load_params(REPO / "params.yaml")
    params = dataclasses.replace(params, data=dataclasses.replace(params.data, protocols=[]))
    assert "oulu" not in build_summary(params, metrics, preset_differences={})  # default: no OULU table
    assert "OULU-NPU" not in render_markdown(build_summary(params, metrics, preset_differences={}))
    params = dataclasses.replace(params, manifests=dataclasses.replace(params.manifests, oulu_protocols=["P1", "P3"]))
    md = render_markdown(build_summary(params, metrics, preset_differences={}))
    assert "## OULU-NPU intra-dataset protocols (ISO/IEC 30107-3)" in md
    assert "| P1 | `source_val` | 1/1 | 10.00 | 5.00 | 7.50 |" in md
    assert f"| P3 | `source_val` | 6/6 | 7.00 ± {out['P3']['apcer_pct']['std']:.2f} | 0.00 ± 0.00 |" in md
    assert "- Checkpoint `source_val`: checkpoint picked on Dev" in md and "leaks Test" not in md
    # a fold whose checkpoint was picked on Test says so in its row and below the table
    _fold_file(metrics / "evaluate" / "OULU-P3" / "OULU-P3-6.json", 0.12, 0.0, selection="target_oracle")
    md = render_markdown(build_summary(params, metrics, preset_differences={}))
    assert "| P3 | `source_val`, `target_oracle` (leaks Test) | 6/6 |" in md
    assert "- Checkpoint `target_oracle`: checkpoint picked on TEST" in md
    (metrics / "evaluate" / "OULU-P1" / "OULU-P1.json").write_text(json.dumps({"video": {}}))
    with pytest.raises(ReportError, match=r"OULU-P1\.json: malformed"):
        oulu_summary(["P1"], metrics)
