"""Video records and face lists of four datasets, as the index and align stages would give
them, for planning manifests without any files."""

from __future__ import annotations

from helpers import param_defaults as dflt
from mpfas.core.config import Protocol
from mpfas.data import Label, VideoRecord

SPLITS = {"O": ["train", "dev", "test"], "C": ["train", "test"], "I": ["train", "dev", "test"],
          "M": ["train", "test"]}


def make_videos(subjects=10):
    """Per dataset, ``subjects`` subjects with one video per label; two face files per video."""
    videos, faces = {}, {}
    for code, splits in SPLITS.items():
        recs = []
        for s in range(subjects):
            for label in Label:
                r = VideoRecord(code, f"s{s}/{label.value}.avi", str(s), splits[s % len(splits)], label)
                recs.append(r)
                faces[r.video_id] = [f"data/faces/{code}/s{s}/{label.value}/f{i}.png" for i in (0, 5)]
        videos[code] = recs
    return videos, faces


CFG = dflt.manifests(protocols={"OCI-M": Protocol(["O", "C", "I"], "M")}, val_fraction=0.3)

