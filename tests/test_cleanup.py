"""`mpfas clean`'s own accounting and its checkpoint rules, without a pipeline (the whole command on a
real tiny pipeline, with experiments and MLflow: tests/test_pipeline.py)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

from mpfas.core.config import load_params
from mpfas.experiments.cleanup import _inodes, freed_between, kept_models, stale_checkpoints


def _blob(path, n=100_000):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(n))
    return path


def test_bytes_are_counted_per_inode_not_per_name(tmp_path):
    a = _blob(tmp_path / "area/a.bin")
    b = _blob(tmp_path / "area/b.bin")
    os.link(b, tmp_path / "area/b2.bin")  # two names in the area: freed when both go
    c = _blob(tmp_path / "area/c.bin")
    os.link(c, tmp_path / "elsewhere.bin")  # a name outside (the workspace's link of a cache object)
    before = _inodes([tmp_path / "area"])
    blocks = {p: os.stat(p).st_blocks * 512 for p in (a, b, c)}
    for p in (a, b, tmp_path / "area/b2.bin", c):
        p.unlink()
    assert freed_between(before, _inodes([tmp_path / "area"])) == blocks[a] + blocks[b]


def test_stale_checkpoints_and_dead_writers_temp_files_go(tmp_path):
    kept = [_blob(tmp_path / "models/OCI-M/best.pt"), _blob(tmp_path / "models/OCI-M/last.pt"),
            _blob(tmp_path / f"data/faces/.x.png.{os.getpid()}.tmp"),  # a live writer's
            _blob(tmp_path / "models/OCI-M/notes.tmp")]  # not a temp name of mpfas.core.atomic
    dead = subprocess.Popen(["true"])
    dead.wait()
    gone = [tmp_path / "models/OLD-P", _blob(tmp_path / f"models/OCI-M/.best.pt.{dead.pid}.tmp"),
            _blob(tmp_path / f"data/faces/O/.f.png.{dead.pid}.tmp")]
    _blob(tmp_path / "models/OLD-P/last.pt", 300_000)
    size = sum(os.stat(p).st_blocks * 512 for g in gone for p in ([g] if g.is_file() else g.rglob("*")))

    dry = stale_checkpoints(tmp_path, ["OCI-M"], dry=True)
    assert dry.freed == size and all(p.exists() for p in gone)
    done = stale_checkpoints(tmp_path, ["OCI-M"], dry=False)
    assert done.freed == size and sorted(done.items) == sorted(p.relative_to(tmp_path).as_posix() for p in gone)
    assert not any(p.exists() for p in gone) and all(p.exists() for p in kept)


def test_oulu_checkpoints_are_kept_while_their_protocol_is_on(tmp_path):
    """models/OULU-<P>/ are not in DVC's cache: removing them would lose them, so they stay while
    manifests.oulu_protocols names P."""
    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    params = dataclasses.replace(params, manifests=dataclasses.replace(params.manifests, oulu_protocols=["P3"]))
    assert kept_models(params) == [*params.data.protocols, "OULU-P3"]
    kept = _blob(tmp_path / "models/OULU-P3/OULU-P3-1/last.pt")
    gone = _blob(tmp_path / "models/OULU-P1/OULU-P1/last.pt")
    stale_checkpoints(tmp_path, kept_models(params), dry=False)
    assert kept.exists() and not gone.exists()
