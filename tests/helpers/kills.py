"""SIGKILL a real ``dvc repro`` (its whole process group) at a chosen point, and read its log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers.pipeline_copy import env

OUTPUT_DIRS = ("data", "models", "metrics")


def start_repro(repo: Path, log: Path) -> subprocess.Popen:
    fh = log.open("w")
    return subprocess.Popen([str(Path(sys.executable).parent / "dvc"), "repro"], cwd=repo, env=env(),
                            stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)


def kill_when(repo: Path, name: str, ready: Callable[[], bool], timeout: float = 400.0,
              poll: float = 0.1) -> dict:
    """Run ``dvc repro`` until ``ready()`` holds, SIGKILL its whole process group, and say what
    the kill left behind (temp files, the stage DVC was running). Its log is
    ``<repo>-<name>.log`` beside the repository."""
    log = repo.parent / f"{repo.name}-{name}.log"
    proc = start_repro(repo, log)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if proc.poll() is not None:
                pytest.fail(f"dvc repro ended (rc {proc.returncode}) before the {name} kill point:\n"
                            + log.read_text()[-3000:])
            if time.monotonic() > deadline:
                pytest.fail(f"{name} kill point not reached in {timeout:.0f} s:\n" + log.read_text()[-3000:])
            time.sleep(poll)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    time.sleep(0.5)  # let the kernel reap the group (extract/align workers die with their parent)
    ran, unchanged = stages_in_log(log.read_text())
    return {"stage": ran[-1] if ran else None, "ran": ran, "unchanged": unchanged,
            "temp_files": temp_files(repo), "rc": proc.returncode}


def in_stage(repo: Path, name: str, prefix: str, settle: float = 1.5) -> Callable[[], bool]:
    """A ``ready`` for :func:`kill_when`: the ``name`` run's log shows a stage starting with
    ``prefix`` running, and ``settle`` seconds have passed (into its work, not just its start)."""
    log = repo.parent / f"{repo.name}-{name}.log"

    def ready() -> bool:
        if f"Running stage '{prefix}" not in (log.read_text() if log.is_file() else ""):
            return False
        time.sleep(settle)
        return True
    return ready


def stages_in_log(log: str) -> tuple[list[str], list[str]]:
    """The stages ``dvc repro`` ran, and those it skipped as unchanged, from its output."""
    lines = log.splitlines()
    ran = [line.split("'")[1] for line in lines if line.startswith("Running stage")]
    unchanged = [line.split("'")[1] for line in lines if line.endswith("didn't change, skipping")]
    return ran, unchanged


def temp_files(repo: Path) -> list[str]:
    """Atomic-write temp files left under the pipeline's output folders."""
    return sorted(p.relative_to(repo).as_posix() for d in OUTPUT_DIRS for p in (repo / d).rglob("*.tmp"))
