"""bench/ocim_gpu.py, the prepared OCIM-table measurement, without a GPU: its projection
arithmetic by hand, and its CPU self-test end to end (real training runs in worker processes,
real MLflow timestamps, real extract and align on profile videos), so that the script works
before anyone spends GPU time on it."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from ocim_gpu import OCIM, PROTOCOLS, project, table_hours  # noqa: E402


def test_the_table_runs_protocols_in_rounds_as_long_as_their_longest():
    hours = {"OCI-M": 1.0, "OMI-C": 2.0, "OCM-I": 3.0, "ICM-O": 4.0}
    assert table_hours(hours, 1) == 10.0
    assert table_hours(hours, 2) == 2.0 + 4.0
    assert table_hours(hours, 4) == 4.0
    assert table_hours(hours, 3) == 3.0 + 4.0


def test_a_protocols_hours_add_steps_evaluations_checkpoints_and_decoding():
    per = project(0.1, eval_rate=100.0, decode_rate=1000.0, ckpt_s=2.0, iterations=1000, every=100)
    faces = 2 * sum(OCIM.values())  # every video's two faces, decoded once
    for protocol, target in PROTOCOLS.items():
        expected = 1000 * 0.1 + 10 * (2 * OCIM[target] / 100.0) + 10 * 2.0 + faces / 1000.0
        assert per[protocol] == pytest.approx(expected / 3600)
    slower = project(0.2, eval_rate=100.0, decode_rate=1000.0, ckpt_s=2.0, iterations=1000, every=100, slowdown=2,
                     startup_s=30.0)
    assert slower["OCI-M"] == pytest.approx((200 + 2 * 10 * 2 * 280 / 100 + 20 + 2 * faces / 1000 + 30) / 3600)


@pytest.mark.slow  # three training processes, two at once, and the preprocessing of short profile videos
def test_cpu_self_test_measures_every_part(tmp_path):
    args = ["--device", "cpu", "--tiny", "--workers", "1"]
    done = subprocess.run([sys.executable, str(REPO / "bench" / "ocim_gpu.py"), *args, "--out", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "ocim_gpu.json").read_text())
    levers, ev = report["levers"], report["evaluation"]
    best = report["best_lever"]  # on CPU the first two are the same code: either may be faster
    assert best == min(("plain", "faces-on-device"), key=lambda k: levers[k]["seconds_per_iteration"])
    extra = [f"{best} + score.batch_size 256"] if ev["faces_per_s_batch256"] > ev["faces_per_s_batch32"] else []
    assert list(levers) == ["plain", "faces-on-device", f"2 at once ({best})", *extra]  # no CUDA graph on CPU
    for res in levers.values():
        assert math.isfinite(res["seconds_per_iteration"]) and res["seconds_per_iteration"] > 0
        assert set(res["protocol_hours"]) == set(PROTOCOLS)
        assert all(run["mlflow"] for run in res.get("runs", [res]))  # MLflow is installed here: the runs logged
    assert [r["protocol"] for r in levers[f"2 at once ({best})"]["runs"]] == ["OCI-M", "OMI-C"]
    assert report["ocim_table_hours"] == min(r["ocim_table_hours"] for r in levers.values())
    assert levers[report["ocim_table_option"]]["ocim_table_hours"] == report["ocim_table_hours"]
    assert ev["faces"] > 0 and ev["faces_per_s_batch32"] > 0 and ev["cold_faces_per_s"] > 0
    pre = report["preprocessing"]
    assert set(pre["profiles"]) == {"O-1080p", "C-480p", "C-720p", "I-240p", "M-720x480", "M-640x480"}
    for row in pre["profiles"].values():  # MTCNN found the demo face in the profile videos
        assert row["align_cpu_detection_rate"] > 0.5
        assert row["extract_per_video_s"] >= 0 and row["align_cpu_startup_s"] >= 0
    assert report["ocim_preprocess_minutes"] == pre["ocim_minutes_align_cpu"] > 0
    table = (tmp_path / "ocim_gpu.md").read_text()
    assert "| faces-on-device |" in table and "ocim_table_hours:" in table
    assert (tmp_path / "commands.txt").read_text().startswith("python bench/ocim_gpu.py " + " ".join(args))
