"""The evaluate and report libraries on real PNG faces, a real tiny model and a real MLflow DB."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import param_defaults as dflt
from helpers.stage_cmd import stage_argv
from mpfas.core.config import load_params
from mpfas.core.metrics import roc_auc
from mpfas.core.presets import differences
from mpfas.evaluate.report import ReportError, build_summary, render_markdown, write_report
from mpfas.evaluate.scoring import (
    SCORE_COLUMNS,
    EvaluationError,
    evaluate,
    write_outputs,
)
from mpfas.evaluate.views import target_views
from mpfas.manifests.build import ManifestRow, read_manifest, write_manifest
from mpfas.methods import get_method
from mpfas.models.checkpoint import Checkpoint, CheckpointError, Preprocess, load_model, save
from mpfas.models.inference import load_faces, score_frames
from mpfas.tracking import flat_metrics, log_evaluation

REPO = Path(__file__).resolve().parents[1]
BRIGHTNESS = {"live": 200, "print": 60, "replay": 110}
CFG = dflt.evaluate(bootstrap=200, seed=0)


def _write_faces(root: Path, video: str, label: str, n: int, seed: int, size: int = 64) -> list[str]:
    """``n`` noisy PNG faces whose brightness depends on the label (repo-relative paths)."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        level = BRIGHTNESS[label] + rng.normal(0, 25)
        img = np.clip(rng.normal(level, 20, (size, size, 3)), 0, 255).astype(np.uint8)
        rel = Path("data/faces") / video / f"f{i:05d}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / rel)
        paths.append(rel.as_posix())
    return paths


def _manifest(root: Path, *, target_labels=("live", "print", "replay") * 4,
              val_labels=("live", "print", "replay") * 3) -> list[ManifestRow]:
    rows = []
    for role, domain, labels in (("target", "M", target_labels), ("source-val", "O", val_labels)):
        for i, label in enumerate(labels):
            vid = f"{domain}/{role}/v{i:02d}.avi"
            rows.append(ManifestRow(
                dataset=domain, domain=domain, video_id=vid, subject=str(i), split="test",
                label=label, is_live=int(label == "live"), attack="" if label == "live" else label,
                role=role, faces=_write_faces(root, vid, label, 3, seed=1000 * (role == "target") + i),
            ))
    return rows


def brightness_scorer(paths: list[str]) -> np.ndarray:
    """A real, deterministic scorer: mean pixel value of the loaded face (bright = live)."""
    return load_faces(paths, 64).mean(dim=(1, 2, 3)).numpy()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_evaluate_metrics_and_outputs(workdir):
    rows = _manifest(workdir)
    ev = evaluate("OCI-M", rows, brightness_scorer, 2, CFG, {"selection": "source_val", "iteration": 7})
    m = ev.metrics
    assert m["selection"] == "source_val" and m["iteration"] == 7
    # live is clearly brighter than both attacks: perfect separation at video and frame level
    for level in ("video", "frame"):
        lv = m[level]
        assert lv["auc"] == 1.0
        assert lv["hter_eer"] == 0.0 and lv["hter_oracle"] == 0.0
        assert lv["auc_ci"][0] <= lv["auc"] <= lv["auc_ci"][1]
        assert lv["hter_eer_ci"][0] <= lv["hter_eer"] <= lv["hter_eer_ci"][1]
        assert lv["hter_val_ci"][0] <= lv["hter_val"] <= lv["hter_val_ci"][1]
        assert set(lv) >= {"apcer_val", "bpcer_val", "acer_val", "apcer_print_val", "apcer_replay_val",
                           "val_threshold", "eer_threshold", "tpr_at_fpr_1pct"}
        assert lv["acer_val"] == pytest.approx((lv["apcer_val"] + lv["bpcer_val"]) / 2)
        assert lv["apcer_val"] == max(lv["apcer_print_val"], lv["apcer_replay_val"])
    # 8 attack videos cannot resolve FPR = 1%: null with a note, never NaN
    assert m["video"]["tpr_at_fpr_1pct"] is None
    assert "video_tpr_at_fpr_1pct" in m["notes"]
    assert m["counts"]["target"] == {"videos": 12, "frames": 24, "live": 4, "print": 4, "replay": 4,
                                     "attack": 8}
    assert m["counts"]["source_val"]["videos"] == 9
    # separable source-val: its EER threshold is the lowest live video score, above every attack
    val_live = [v.score for v in ev.val if v.row.is_live]
    val_attack = [v.score for v in ev.val if not v.row.is_live]
    assert m["video"]["val_threshold"] == min(val_live) > max(val_attack)
    assert m["video"]["val_eer"] == 0.0

    out = write_outputs(ev, scores_csv=Path("data/scores/OCI-M.csv"), metrics_json=Path("metrics/OCI-M.json"),
                        roc_json=Path("plots/roc/OCI-M.json"), plot_dir=Path("plots/OCI-M"))
    assert all(p.is_file() and p.stat().st_size > 0 for p in out)
    with open("data/scores/OCI-M.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == SCORE_COLUMNS
    assert len(table) == 24  # 12 target videos x 2 frames (first and last of 3)
    assert {r["video_id"].split("/")[1] for r in table} == {"target"}
    first = [r for r in table if r["video_id"] == table[0]["video_id"]]
    assert [Path(r["frame"]).name for r in first] == ["f00000.png", "f00002.png"]
    assert float(first[0]["video_score"]) == pytest.approx(
        np.mean([float(r["frame_score"]) for r in first]), abs=2e-6)
    roc = json.loads(Path("plots/roc/OCI-M.json").read_text())  # strict JSON (no Infinity)
    assert roc[0] == {"fpr": 0.0, "tpr": 0.0, "threshold": None}
    assert roc[-1]["fpr"] == 1.0 and roc[-1]["tpr"] == 1.0
    assert json.loads(Path("metrics/OCI-M.json").read_text())["video"]["auc"] == 1.0
    assert Path("plots/OCI-M/hist.png").read_bytes()[:4] == b"\x89PNG"
    flat = flat_metrics(m)
    assert flat["eval/video/auc"] == 1.0 and "eval/video/auc_ci_low" in flat
    assert not any(k.endswith("tpr_at_fpr_1pct") and k.startswith("eval/video") for k in flat)


def test_overlapping_scores_give_nontrivial_metrics(workdir):
    rows = _manifest(workdir)
    rng = np.random.default_rng(1)
    noisy = lambda paths: brightness_scorer(paths) + rng.normal(0, 0.6, len(paths))  # noqa: E731
    m = evaluate("OCI-M", rows, noisy, 2, CFG).metrics["video"]
    assert 0 < m["hter_oracle"] <= m["hter_eer"]
    assert 0 <= m["auc"] < 1
    assert m["auc_ci"][0] < m["auc_ci"][1]


def test_single_class_target_is_a_clear_error(workdir):
    rows = _manifest(workdir, target_labels=("live",) * 4)
    with pytest.raises(EvaluationError, match=r"OCI-M video-level target: needs both live and attack"):
        evaluate("OCI-M", rows, brightness_scorer, 2, CFG)
    rows = _manifest(workdir, val_labels=("print", "replay"))
    with pytest.raises(EvaluationError, match=r"OCI-M video-level source-val: needs both"):
        evaluate("OCI-M", rows, brightness_scorer, 2, CFG)


def test_nan_scores_are_refused(workdir):
    rows = _manifest(workdir)
    with pytest.raises(EvaluationError, match="NaN"):
        evaluate("OCI-M", rows, lambda p: np.full(len(p), np.nan), 2, CFG)


def _tiny_checkpoint(path: Path) -> torch.nn.Module:
    from mpfas.models import build_model

    torch.manual_seed(0)
    cfg = dflt.model(backbone="resnet18", input_size=64, pattern="meta")
    with pytest.warns(Warning):  # random init is announced
        model = build_model(cfg)
    model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    save(Checkpoint(kind="best", model=model.state_dict(), model_config=dataclasses.asdict(cfg),
                    preprocess=Preprocess.from_params(dflt.params()), protocol="OCI-M", iteration=5,
                    selection="source_val", val={}, threshold=None, threshold_rule="none", run_id="",
                    fingerprint=""), path)
    return model


def test_checkpoint_model_scores_the_manifest(workdir):
    torch.set_num_threads(2)
    rows = _manifest(workdir, target_labels=("live", "print", "replay") * 2, val_labels=("live", "print"))
    original = _tiny_checkpoint(Path("models/OCI-M/best.pt"))
    model, ckpt = load_model(Path("models/OCI-M/best.pt"), "cpu")
    info = ckpt.info(Path("models/OCI-M/best.pt"))
    assert info["iteration"] == 5 and info["selection"] == "source_val"
    assert info["model"] == {"backbone": "resnet18", "input_size": 64, "pattern": "meta"}
    faces = rows[0].faces[:2]
    np.testing.assert_allclose(score_frames(model, faces, 64, 4, "cpu"),
                               score_frames(original, faces, 64, 4, "cpu"), rtol=1e-5)
    ev = evaluate("OCI-M", rows, lambda p: score_frames(model, p, 64, 8, "cpu"), 2, CFG, info)
    for level in ("video", "frame"):
        v = ev.metrics[level]
        assert 0 <= v["auc"] <= 1 and 0 <= v["hter_val"] <= 1
        assert v["auc_ci"][0] <= v["auc"] <= v["auc_ci"][1]
    video_scores = np.array([v.score for v in ev.target])
    assert ((video_scores >= 0) & (video_scores <= 1)).all()  # frame_score is in [0, 1]
    assert ev.metrics["video"]["auc"] == pytest.approx(
        roc_auc(video_scores, [v.row.is_live for v in ev.target]))


def test_missing_checkpoint_names_the_file(workdir):
    with pytest.raises(CheckpointError, match=r"models/X/best.pt: checkpoint not found"):
        load_model(Path("models/X/best.pt"), "cpu")


def test_unversioned_checkpoint_asks_to_retrain(workdir):
    """The dict training wrote before checkpoints had a schema: one line, the file, re-train."""
    path = Path("models/OCI-M/best.pt")
    model = _tiny_checkpoint(path)
    torch.save({"model": model.state_dict(), "model_config": dataclasses.asdict(dflt.model(input_size=64)),
                "iteration": 5, "protocol": "OCI-M", "select": "source_val", "val": {}}, path)
    with pytest.raises(CheckpointError) as info:
        load_model(path, "cpu")
    message = str(info.value)
    assert message.startswith(f"{path}: written before checkpoints had a schema version") and "re-train" in message
    assert len(message.splitlines()) == 1


def test_log_evaluation_adds_eval_metrics_and_artifacts(workdir, monkeypatch):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{(workdir / 'mlflow.db').as_posix()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("t", artifact_location=(workdir / "art").as_uri())
    run_id = client.create_run(exp).info.run_id
    client.set_terminated(run_id)
    Path("models/OCI-M").mkdir(parents=True)
    Path("models/OCI-M/run.json").write_text(json.dumps({"run_id": run_id, "experiment_id": exp}))
    rows = _manifest(workdir)
    ev = evaluate("OCI-M", rows, brightness_scorer, 2, dataclasses.replace(CFG, bootstrap=0),
                  {"selection": "source_val"})
    arts = write_outputs(ev, scores_csv=Path("s.csv"), metrics_json=Path("m.json"),
                         roc_json=Path("roc.json"), plot_dir=Path("p"))
    assert log_evaluation(Path("models/OCI-M/run.json"), ev.metrics, arts, step=3) == run_id
    run = client.get_run(run_id)
    assert run.data.metrics["eval/video/auc"] == 1.0
    assert "eval/frame/hter_val" in run.data.metrics
    assert run.data.tags["eval_selection"] == "source_val"
    logged = {Path(a.path).name for a in client.list_artifacts(run_id, "eval")}
    assert {"s.csv", "m.json", "roc.png", "det.png", "hist.png"} <= logged
    # no run file: warn and skip, never fail the stage
    assert log_evaluation(Path("models/none/run.json"), ev.metrics, []) is None


def _metrics_file(path: Path, auc: float, hter: float) -> None:
    level = {"auc": auc, "hter_eer": hter, "hter_val": hter + 0.05, "hter_oracle": hter - 0.01,
             "auc_ci": [auc - 0.02, min(1.0, auc + 0.01)], "hter_eer_ci": [hter - 0.02, hter + 0.02]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "video": level, "frame": level, "selection": "source_val", "iteration": 60,
        "counts": {"target": {"videos": 48}, "source_val": {"videos": 30}},
    }))


def test_report_table_and_published_numbers(workdir):
    params = load_params(REPO / "params.yaml")
    params = dataclasses.replace(params, data=dataclasses.replace(params.data, protocols=["OCI-M", "MI-C"]))
    _metrics_file(Path("metrics/evaluate/OCI-M.json"), 0.9, 0.12)
    with pytest.raises(ReportError, match=r"metrics/evaluate/MI-C.json"):
        build_summary(params, Path("metrics"), preset_differences=differences(params))
    _metrics_file(Path("metrics/evaluate/MI-C.json"), 0.8, 0.2)
    summary = write_report(params, preset_differences=differences(params), metrics_dir=Path("metrics"),
                           summary_json=Path("metrics/summary.json"), summary_md=Path("reports/summary.md"),
                           summary_png=Path("plots/summary.png"))
    oci = summary["protocols"]["OCI-M"]
    assert oci["auc_pct"] == 90.0 and oci["hter_eer_pct"] == 12.0 and oci["hter_val_pct"] == 17.0
    assert oci["published"]["HFN+MP"] == {"hter": 5.24, "auc": 97.28}
    assert summary["protocols"]["MI-C"]["published"]["SA-FAS"] is None
    assert summary["mean"]["auc_pct"] == 85.0
    md = Path("reports/summary.md").read_text()
    assert "DEMO-SYNTHETIC" in md and "not comparable" in md
    assert ("| OCI-M (O&C&I→M) | source_val @ iter 60 | 90.00 [88.00, 91.00] | 17.00 (leakage-free) | "
            "12.00 [10.00, 14.00] | 11.00 |") in md
    # the published numbers sit beside our frame-level oracle HTER and frame AUC, said to be target-selected
    assert "| OCI-M (O&C&I→M) | 11.00 | 90.00 | 5.24 / 97.28 |" in md and "—" in md
    assert "NOT selected on the target" in md and "lowest video-level HTER on source-val" in md
    assert "we infer that the published numbers" in md  # a fact about the papers we could not check
    assert "docs/provenance.md" in md and "DESIGN" not in md
    assert "`model.backbone`: 'efficientnet_lite0'" in md  # knobs that differ from the paper preset
    assert json.loads(Path("metrics/summary.json").read_text())["data_source"] == "demo"
    assert Path("plots/summary.png").stat().st_size > 1000
    real = dataclasses.replace(params, data=dataclasses.replace(params.data, source="real"))
    assert "DEMO" not in render_markdown(build_summary(real, Path("metrics"), preset_differences=differences(real)))
    # a target-selected checkpoint: its HTER@source-val is not called leakage-free
    data = json.loads(Path("metrics/evaluate/OCI-M.json").read_text())
    Path("metrics/evaluate/OCI-M.json").write_text(json.dumps({**data, "selection": "target_oracle"}))
    summary = build_summary(params, Path("metrics"), preset_differences=differences(params))
    assert summary["protocols"]["OCI-M"]["leakage_free"] is False
    assert "17.00 (checkpoint chosen on the target)" in render_markdown(summary)


def _curve(path: Path, hters: list[float], aucs: list[float], every: int = 20) -> None:
    """A training validation curve as the train stage writes it, with target columns (the video
    columns, SSDG-R's rule, hold the same numbers shifted by 0.01 / 0.02)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = ["step,target_auc,target_frame_auc,target_frame_min_hter,target_hter,val_auc,val_hter"]
    rows += [f"{every * (i + 1)},{a - 0.02},{a},{h},{h + 0.01},0.9,0.1" for i, (h, a) in enumerate(zip(hters, aucs))]
    path.write_text("\n".join(rows) + "\n")


HFN, SSDG = get_method("hfn_mp").oracle, get_method("ssdg").oracle


def test_views_pick_the_target_minimum_by_each_methods_rule_and_average_the_last_n(tmp_path):
    curve = tmp_path / "val.csv"
    hters, aucs = [0.30, 0.20, 0.25, 0.20, 0.22], [0.70, 0.80, 0.78, 0.85, 0.83]
    _curve(curve, hters, aucs)
    views = target_views(curve, 3, HFN)
    # HFN+MP: a later evaluation with equal HTER and higher AUC does not replace the first (strict <)
    assert views["paper_style"] | {"chosen": None} == {"iteration": 40, "hter": 0.20, "auc": 0.80,
                                                      "level": "frame", "chosen": None}
    last = views["last_n"]
    assert last["iterations"] == [60, 80, 100] and last["n"] == 3 and views["evaluations"] == 5
    assert last["hter"]["mean"] == pytest.approx(np.mean(hters[2:]))
    assert last["auc"]["std"] == pytest.approx(np.std(aucs[2:], ddof=1))
    assert target_views(curve, 10, HFN)["last_n"] | {"chosen": None} == {
        **target_views(curve, 5, HFN)["last_n"], "requested": 10, "chosen": None}
    # SSDG-R: video HTER at the target's EER threshold, and of equal values the later one (<=)
    ssdg = target_views(curve, 3, SSDG)["paper_style"]
    assert (ssdg["iteration"], ssdg["hter"], ssdg["auc"], ssdg["level"]) == (80, pytest.approx(0.21),
                                                                             pytest.approx(0.83), "video")
    curve.write_text("step,val_auc\n20,0.9\n")  # a run from before the target was recorded
    assert target_views(curve, 3, HFN) is None and target_views(tmp_path / "none.csv", 3, HFN) is None


def test_report_refuses_metrics_of_another_method_and_labels_an_ssdg_run(workdir):
    """A report of model.method X never mixes in metrics an evaluate stage wrote for method Y; an
    SSDG-R run is compared with its own preset and shows its own (video-level) paper-style rule."""
    params = load_params(REPO / "params.yaml")
    params = dataclasses.replace(params, data=dataclasses.replace(params.data, protocols=["OCI-M"]))
    _metrics_file(Path("metrics/evaluate/OCI-M.json"), 0.9, 0.12)
    _curve(Path("curve.csv"), [0.3, 0.1, 0.2], [0.7, 0.95, 0.9])
    data = json.loads(Path("metrics/evaluate/OCI-M.json").read_text())
    data.update(method="ssdg", method_title="SSDG-R (Jia et al., CVPR 2020)",
                views=target_views(Path("curve.csv"), 2, SSDG))
    Path("metrics/evaluate/OCI-M.json").write_text(json.dumps(data))
    with pytest.raises(ReportError, match=r"evaluated for method 'ssdg', but model.method is 'hfn_mp'"):
        build_summary(params, Path("metrics"), preset_differences={})
    ssdg = dataclasses.replace(params, model=dataclasses.replace(params.model, method="ssdg"))
    md = render_markdown(build_summary(ssdg, Path("metrics"), preset_differences={}, preset="ssdg-paper"))
    assert "SSDG-R (Jia et al., CVPR 2020)'s official code keeps the lowest target video HTER at the " \
           "target's EER threshold (last on ties) on the target set" in md
    assert "paper-style: video HTER %" in md and "None of the `ssdg-paper` preset's knobs" in md


def test_report_shows_three_labelled_views_and_sets_the_paper_style_beside_published(workdir):
    params = load_params(REPO / "params.yaml")
    params = dataclasses.replace(params, data=dataclasses.replace(params.data, protocols=["OCI-M"]))
    _metrics_file(Path("metrics/evaluate/OCI-M.json"), 0.9, 0.12)
    _curve(Path("curve.csv"), [0.3, 0.1, 0.2], [0.7, 0.95, 0.9])
    data = json.loads(Path("metrics/evaluate/OCI-M.json").read_text())
    data["views"] = target_views(Path("curve.csv"), 2, HFN)
    Path("metrics/evaluate/OCI-M.json").write_text(json.dumps(data))
    md = render_markdown(build_summary(params, Path("metrics"), preset_differences=differences(params)))
    assert "| OCI-M (O&C&I→M) | 90.00 / 17.00 | 10.00 / 95.00 (40) | 15.00 ± 7.07 / 92.50 ± 3.54 (2) |" in md
    assert "**Paper-style**: checkpoint: the lowest target frame HTER" in md and "leaks the test set" in md
    assert "**Leakage-free**: checkpoint `source_val`" in md and "**Last N** (`evaluate.last_n`)" in md
    assert "| OCI-M (O&C&I→M) | 10.00 | 95.00 | 5.24 / 97.28 |" in md  # paper-style beside published
    Path("metrics/evaluate/OCI-M.json").write_text(json.dumps({**data, "selection": "target_oracle"}))
    md = render_markdown(build_summary(params, Path("metrics"), preset_differences=differences(params)))
    assert "| OCI-M (O&C&I→M) | none (checkpoint chosen on the target) | 10.00 / 95.00 (40) |" in md
    # the paper preset in full still differs where no knob reaches: the report never says "every knob"
    md = render_markdown(build_summary(params, Path("metrics"), preset_differences={}))
    assert "None of the `paper` preset's knobs" in md and "face detector and the frame sampling, still differs" in md


def test_report_detection_table_shows_release_completeness(workdir):
    """Real roots: the detection table says how much of each official release the raw stage
    indexed (metrics/raw.json); a dataset the raw stage did not check reads "—"."""
    params = load_params(REPO / "params.yaml")
    params = dataclasses.replace(params, data=dataclasses.replace(params.data, protocols=["OCI-M"]))
    _metrics_file(Path("metrics/evaluate/OCI-M.json"), 0.9, 0.12)
    for code, videos in {"O": 4948, "C": 600, "I": 1200, "M": 280}.items():
        Path("metrics/align").mkdir(parents=True, exist_ok=True)
        Path(f"metrics/align/{code}.json").write_text(json.dumps(
            {"videos": videos, "videos_with_faces": videos, "frames": 2 * videos, "detection_rate": 1.0}))
    releases = {"O": {"official": 4950, "missing": 2, "unofficial": 0, "complete": False},
                "C": {"official": 600, "missing": 0, "unofficial": 0, "complete": True}}
    Path("metrics/raw.json").write_text(json.dumps(
        {"source": "real", "datasets": {c: {"videos": 1, "release": r} for c, r in releases.items()}}))
    summary = build_summary(params, Path("metrics"), preset_differences=differences(params))
    assert summary["detection"]["O"]["release"] == releases["O"] and "release" not in summary["detection"]["M"]
    md = render_markdown(summary)
    assert "| O (OULU-NPU) | 4948 | 4948 of 4950 (2 missing) | 0 | 9896 | 100.00 |" in md
    assert "| C (CASIA-FASD) | 600 | all 600 | 0 |" in md
    assert "| M (MSU-MFSD) | 280 | — | 0 |" in md


@pytest.mark.slow
def test_evaluate_stage_script_end_to_end(workdir):
    """`python stages/evaluate.py OCI-M` from a repo-like folder, then `stages/report.py`."""
    text = (REPO / "params.yaml").read_text().replace("protocols: [OCI-M, OMI-C, OCM-I, ICM-O]",
                                                      "protocols: [OCI-M]")
    text = text.replace("bootstrap: 1000", "bootstrap: 50")
    Path("params.yaml").write_text(text)
    rows = _manifest(workdir, target_labels=("live", "print", "replay") * 2, val_labels=("live", "print"))
    write_manifest(rows, Path("data/manifests/OCI-M.csv"))
    assert len(read_manifest(Path("data/manifests/OCI-M.csv"), "data/faces")) == len(rows)
    _tiny_checkpoint(Path("models/OCI-M/best.pt"))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{(workdir / 'mlflow.db').as_posix()}",
           "OMP_NUM_THREADS": "2"}
    for cmd in (stage_argv("evaluate", "OCI-M"), stage_argv("report")):
        done = subprocess.run([sys.executable, *cmd], cwd=workdir, env=env,
                              capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr[-3000:]
    for p in ("data/scores/OCI-M.csv", "metrics/evaluate/OCI-M.json", "plots/roc/OCI-M.json",
              "plots/OCI-M/roc.png", "plots/OCI-M/det.png", "plots/OCI-M/hist.png",
              "metrics/summary.json", "reports/summary.md", "plots/summary.png"):
        assert Path(p).is_file(), p
    bad = subprocess.run([sys.executable, *stage_argv("evaluate", "NOPE")], cwd=workdir, env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "NOPE" in bad.stderr


def test_worse_than_chance_model_writes_strict_json(workdir):
    """The oracle of an inverted scorer is "reject everything" (+inf): null in JSON, with a note."""
    rows = _manifest(workdir)
    ev = evaluate("OCI-M", rows, lambda p: -brightness_scorer(p), 2, dataclasses.replace(CFG, bootstrap=20))
    assert ev.metrics["video"]["auc"] == 0.0
    assert ev.metrics["video"]["oracle_threshold"] == np.inf
    assert ev.metrics["video"]["hter_oracle"] == 0.5
    write_outputs(ev, scores_csv=Path("s.csv"), metrics_json=Path("m.json"), roc_json=Path("r.json"),
                  plot_dir=Path("p"))
    saved = json.loads(Path("m.json").read_text())
    assert saved["video"]["oracle_threshold"] is None
    assert "reject every face" in saved["notes"]["video_oracle_threshold"]


def test_a_checkpoint_of_another_protocol_or_run_is_refused(tmp_path):
    """evaluate@P reports only P's own best.pt, from the run its run.json names."""
    from helpers.checkpoints import make_checkpoint
    from mpfas.evaluate.protocol import check_belongs
    from mpfas.models.checkpoint import load

    path = make_checkpoint(tmp_path / "best.pt")  # trained for OCI-M, no MLflow run
    ckpt = dataclasses.replace(load(path), run_id="a" * 32)
    run_json = tmp_path / "run.json"
    run_json.write_text(json.dumps({"run_id": "a" * 32, "protocol": "OCI-M"}))
    check_belongs(ckpt, path, "OCI-M", run_json)
    with pytest.raises(CheckpointError, match=r"best\.pt: trained for protocol 'OCI-M', not 'OMI-C'; re-run train"):
        check_belongs(ckpt, path, "OMI-C", run_json)
    run_json.write_text(json.dumps({"run_id": "b" * 32, "protocol": "OCI-M"}))
    with pytest.raises(CheckpointError, match=f"written by MLflow run {'a' * 32}, but .*run.json names run {'b' * 32}"):
        check_belongs(ckpt, path, "OCI-M", run_json)
    check_belongs(dataclasses.replace(ckpt, run_id=""), path, "OCI-M", run_json)  # trained without MLflow

    # and the evaluation itself checks it, before scoring or writing anything
    from mpfas.evaluate.protocol import Outputs, evaluate_protocol

    save(ckpt, path)
    params = dflt.params()
    out = Outputs(*(tmp_path / p for p in ("scores.csv", "metrics.json", "roc.json", "plots")))
    with pytest.raises(CheckpointError, match=r"run\.json names run"):
        evaluate_protocol(params, "OCI-M", params.manifests.protocols["OCI-M"], checkpoint=path, run_json=run_json,
                          manifest=tmp_path / "unread.csv", faces=tmp_path, out=out)
    assert not (tmp_path / "scores.csv").exists()


def test_evaluation_holds_the_manifest_to_the_protocols_domains(workspace):
    """A source subject moved into the target role leaks nothing, but evaluate@OCI-M must not score
    an O video as M's: the rows are read against the protocol, before any scoring."""
    import csv

    from helpers.checkpoints import make_checkpoint
    from mpfas.evaluate.protocol import Outputs, evaluate_protocol
    from mpfas.manifests.build import ManifestError

    path = workspace / "data/manifests/OCI-M.csv"
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    moved = next(r for r in rows if r["domain"] == "O" and r["role"] == "source-train")["subject"]
    for row in rows:
        if row["domain"] == "O" and row["subject"] == moved:
            row["role"] = "target"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    params = load_params("params.yaml")
    out = Outputs(*(workspace / p for p in ("scores.csv", "metrics.json", "roc.json", "plots")))
    with pytest.raises(ManifestError, match="field domain: 'O' in role target, but the protocol's target is M"):
        evaluate_protocol(params, "OCI-M", params.manifests.protocols["OCI-M"],
                          checkpoint=make_checkpoint(workspace / "best.pt"), run_json=workspace / "run.json",
                          manifest=path, faces=workspace / "data/faces", out=out)
    assert not (workspace / "scores.csv").exists()


def test_an_undecodable_target_face_stops_evaluation_in_one_line(workspace):
    from helpers.checkpoints import make_checkpoint
    from mpfas.evaluate.protocol import Outputs, evaluate_protocol
    from mpfas.models.inference import FaceReadError

    params = load_params("params.yaml")
    rows = read_manifest(workspace / "data/manifests/OCI-M.csv", workspace / "data/faces")
    face = Path(next(r for r in rows if r.role == "target").faces[0])
    face.write_bytes(face.read_bytes()[:100])
    out = Outputs(*(workspace / p for p in ("scores.csv", "metrics.json", "roc.json", "plots")))
    with pytest.raises(FaceReadError) as err:
        evaluate_protocol(params, "OCI-M", params.manifests.protocols["OCI-M"],
                          checkpoint=make_checkpoint(workspace / "best.pt"), run_json=workspace / "run.json",
                          manifest=workspace / "data/manifests/OCI-M.csv", faces=workspace / "data/faces", out=out)
    assert str(err.value).startswith(f"{face}: not a readable image") and "\n" not in str(err.value)
    assert not (workspace / "metrics.json").exists()
