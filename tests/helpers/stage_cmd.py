"""A stage's command line exactly as dvc.yaml's ``cmd`` writes it (paths live there only),
for tests that run one stage script by hand in a repo-like folder."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def stage_argv(name: str, item: str = "") -> list[str]:
    """``[script, *arguments]`` of stage ``name`` (``${item}`` replaced by ``item``); the
    script as an absolute path into this repository, the arguments relative to the stage's cwd."""
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][name]
    words = stage.get("do", stage)["cmd"].replace("${item}", item).split()
    assert words[0] == "python" and "${" not in " ".join(words), words
    return [str(REPO / words[1]), *words[2:]]


def stage_module(name: str):
    """``stages/<name>.py`` imported, not run."""
    spec = importlib.util.spec_from_file_location(f"stage_{name}", REPO / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
