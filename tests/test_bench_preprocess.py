"""bench/preprocess.py and its inputs (bench/profiles.py) at a tiny scale.

The profiles must write what they claim (size, rate, codec, GOP, B-frames: what makes
decoding and seeking cost what the real datasets cost), and one bench run over a 1080p
H.264 and a 240p H.264 profile must finish with its tables, our crops equal to the
files the align stage wrote, and landmark agreement within the goal.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "preprocess.py"


@pytest.fixture()
def bench_modules(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    import preprocess
    import profiles

    return profiles, preprocess


@pytest.mark.parametrize("key", ["O-1080p", "C-480p", "I-240p", "M-640x480"])
def test_profile_videos_have_the_stated_format(tmp_path, bench_modules, key):
    profiles, _ = bench_modules
    p = next(p for p in profiles.PROFILES if p.key == key)
    p = replace(p, gop_s=5 / p.fps)  # a keyframe every 5 frames, so 12 frames hold three GOPs
    path = profiles.write_video(tmp_path / f"v{p.suffix}", p, seed=1, frames=12)
    with av.open(str(path)) as box:
        stream = box.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == (p.codec, *p.size)
        assert round(float(stream.average_rate or stream.guessed_rate)) == p.fps
        frames = list(box.decode(stream))
    assert len(frames) == 12
    if p.codec == "h264":
        assert sum(f.key_frame for f in frames) == 3
        assert sum(f.pict_type == av.video.frame.PictureType.B for f in frames) > 0


def test_nme_is_mean_point_error_over_the_reference_eye_distance(bench_modules):
    _, preprocess = bench_modules
    ref = np.array([[100, 100], [160, 100], [130, 130], [110, 160], [150, 160]], float)
    assert preprocess.nme(ref, ref) == 0.0
    assert preprocess.nme(ref + np.array([3.0, 4.0]), ref) == pytest.approx(5 / 60)


@pytest.mark.slow  # the bench end to end: decode, detect and time two profiles
@pytest.mark.timeout(600)
def test_bench_on_two_profiles(tmp_path):
    out = tmp_path / "bench.json"
    md = tmp_path / "bench.md"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--source", "profiles", "--profiles", "O-1080p,I-240p", "--videos", "1",
         "--frames", "12", "--official-frames", "2", "--workdir", str(tmp_path / "work"), "--json", str(out),
         "--markdown", str(md)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    groups = {g["key"]: g for g in report["groups"]}
    assert set(groups) == {"O-1080p", "I-240p"}
    for g in groups.values():
        a = g["agreement"]
        assert g["frames_per_video"] == 12 and g["official_projected"]
        assert math.isfinite(g["speedup"]) and g["speedup"] > 0
        assert a["pipeline_frames"] == 3 and a["pipeline_crops_reproduced"] == 3, a  # ours = what align wrote
        assert a["frames"] >= 3 and a["rate"] >= 0.95 and a["nme_max"] <= 0.05, a
    assert groups["O-1080p"]["real_videos"] == 4950 and groups["I-240p"]["real_videos"] == 1200
    # disk: three full-resolution frames per video weigh more at 1080p than at 240p; faces are
    # 256 px either way; the projection is bytes per video times the real videos
    o, i = groups["O-1080p"], groups["I-240p"]
    assert o["frames_mb_per_video"] > 10 * i["frames_mb_per_video"] > 0
    assert 0 < o["faces_mb_per_video"] < o["frames_mb_per_video"]
    assert o["frames_gb"] == pytest.approx(o["frames_mb_per_video"] * 4950 / 1000)
    table = md.read_text()
    assert "| O OULU-NPU | 4950 |" in table and "| **total** | 6150 |" in table
    assert "| **total** |" in done.stdout
