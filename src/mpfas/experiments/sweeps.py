"""The DVC calls behind ``mpfas seeds``: queue one experiment per seed, read the finished ones.

Only this module runs ``dvc`` (the CLI and ``mpfas.experiments.cleanup`` above it through :func:`run_dvc`);
the parsing and statistics are in ``mpfas.experiments.seeds``, which takes ``dvc exp show --json``
output as plain data.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mpfas.core.errors import MpfasError

EVALUATE_DIR = "metrics/evaluate"
"""Where dvc.yaml's evaluate stage writes ``<P>.json`` (the CLI's default, as MODELS_DIR is)."""
TRAIN_METRICS = "metrics/train_{protocol}.json"
"""Where dvc.yaml's train stage writes each protocol's source-val numbers."""


def dvc_executable() -> str:
    """``dvc`` beside this interpreter (the virtual environment's), else the one on PATH."""
    beside = Path(sys.executable).parent / "dvc"
    found = str(beside) if beside.is_file() else shutil.which("dvc")
    if not found:
        raise MpfasError("dvc not found (install the requirements: make setup)")
    return found


def run_dvc(args: Sequence[str], *, cwd: Path | None = None) -> str:
    """Run ``dvc ARGS``; its stdout, or MpfasError with its stderr."""
    done = subprocess.run([dvc_executable(), *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise MpfasError(f"`dvc {shlex.join(args)}` failed ({done.returncode}): "
                         f"{(done.stderr or done.stdout).strip()[-2000:]}")
    return done.stdout


def queue_args(seeds: Sequence[int], sets: Sequence[str] = ()) -> list[str]:
    """``dvc exp run --queue`` with one experiment per seed (Hydra sweep ``train.seed=1,2,3``);
    ``sets`` are more ``-S key=value`` overrides, themselves sweepable (a grid times the seeds)."""
    if not seeds:
        raise MpfasError("--seeds: give at least one seed")
    if len(set(seeds)) != len(seeds):
        raise MpfasError(f"--seeds: repeated seed in {list(seeds)}")
    if any(s.split("=", 1)[0].strip() == "train.seed" for s in sets):
        raise MpfasError("-S train.seed=...: the seeds are --seeds")
    args = ["exp", "run", "--queue", "-S", "train.seed=" + ",".join(str(s) for s in seeds)]
    for s in sets:
        args += ["-S", s]
    return args


def queue_seeds(seeds: Sequence[int], sets: Sequence[str] = (), *, start: bool = False, jobs: int = 1,
                cwd: Path | None = None) -> list[str]:
    """Queue the experiments (and start ``jobs`` workers when ``start``); the dvc output lines."""
    out = run_dvc(queue_args(seeds, sets), cwd=cwd).splitlines()
    if start:
        out += run_dvc(["queue", "start", "-j", str(jobs)], cwd=cwd).splitlines()
    return out


def exp_show(*, all_commits: bool = False, cwd: Path | None = None) -> list[dict[str, Any]]:
    """``dvc exp show --json``: the baseline commit(s) and their experiments, params and metrics."""
    text = run_dvc(["exp", "show", "--json", *(["-A"] if all_commits else [])], cwd=cwd)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise MpfasError(f"`dvc exp show --json` printed no JSON: {exc}") from None
