"""A throwaway copy of this repository to run the real `dvc repro` in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

TINY = {  # small enough for CI on 2 cores, large enough for every check to mean something
    "demo": {"subjects": 4, "frames": 6},
    "extract": {"frames_per_video": 2},
    "align": {"crop_size": 64},
    "manifests": {"val_fraction": 0.25},
    "model": {"input_size": 64},
    "train": {"protocols": ["OCI-M"], "iterations": 3, "inner_loops": 1, "eval_every": 3,
              "checkpoint_every": 3, "batch_live": 2, "batch_spoof": 2},
    "evaluate": {"bootstrap": 50},
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
