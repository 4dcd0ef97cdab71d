"""A throwaway copy of this repository to run the real `dvc repro` in, and checks on it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from mpfas.core.config import load_params

REPO = Path(__file__).resolve().parents[2]

TINY = {  # small enough for CI on 2 cores, large enough for every check to mean something
    "demo": {"subjects": 4, "frames": 6},
    "extract": {"frames_per_video": 2},
    "align": {"crop_size": 64},
    "manifests": {"val_fraction": 0.25},
    "model": {"input_size": 64},
    "data": {"protocols": ["OCI-M"]},
    "train": {"iterations": 3, "inner_loops": 1, "eval_every": 3, "batch_live": 2, "batch_spoof": 2},
    "evaluate": {"bootstrap": 50},
    "runtime": {"checkpoint_every": 3},
}


def copy_repo(dest: Path, overrides: dict | None = None) -> Path:
    """Copy the tracked and untracked-but-not-ignored files, then commit them in a new repo."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO, check=True, capture_output=True,
    ).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    for section, values in (overrides or TINY).items():
        params[section].update(values)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=dest, check=True)
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-qm", "copy"], cwd=dest, check=True)
    return dest


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{e['PATH']}"
    e.pop("MLFLOW_TRACKING_URI", None)
    return e


def dvc(repo: Path, *args: str, timeout: int = 1200,
        extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "dvc"), *args], cwd=repo,
                          env={**env(), **(extra_env or {})}, capture_output=True, text=True, timeout=timeout)


# ---------------------------------------------------------------- runtime edits re-run nothing

def stages_to_run(repo: Path) -> set[str]:
    """The stages of ``repo``'s dvc.yaml that have something to run under its params.yaml: all but
    a ``foreach`` over an empty list (the OULU-NPU stages by default: ``manifests.oulu_protocols: []``)."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    out = set()
    for name, stage in yaml.safe_load((repo / "dvc.yaml").read_text())["stages"].items():
        items = stage.get("foreach", [name])
        if isinstance(items, str):
            assert items.startswith("${") and items.endswith("}"), items
            for part in items[2:-1].split("."):
                items = items[part] if isinstance(items, dict) else params[part]
        if items:
            out.add(name)
    return out


def check_runtime_edits_rerun_nothing(repo: Path, stages: tuple[str, ...] = ()) -> None:
    """Called by test_pipeline on its tiny ``dvc repro`` (one shared run keeps CI short):
    edits to the ``runtime`` section leave everything up to date. With ``stages``
    (test_oulu_training: the OULU-NPU ones) only they and what they depend on are checked."""
    from helpers.pipeline_copy import env

    original = text = (repo / "params.yaml").read_text()
    params = load_params(repo / "params.yaml")
    for old, new in ((f"train_workers: {params.runtime.train_workers}\n", "train_workers: 1\n"),
                     ("resume: auto", "resume: never"), ("experiment: mpfas", "experiment: elsewhere"),
                     (f"checkpoint_every: {params.runtime.checkpoint_every}\n", "checkpoint_every: 7\n"),
                     ("device: auto", "device: cpu")):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    (repo / "params.yaml").write_text(text)
    try:
        dvc = str(Path(sys.executable).parent / "dvc")
        status = subprocess.run([dvc, "status", "--json", *(["--with-deps", *stages] if stages else [])],
                                cwd=repo, env=env(), capture_output=True, text=True, timeout=300)
        assert status.returncode == 0 and json.loads(status.stdout) == {}, status.stdout
    finally:
        (repo / "params.yaml").write_text(original)
