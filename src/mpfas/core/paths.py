"""Where the repository is, also from inside DVC's temporary experiment copies.

``dvc exp run --temp`` and queued experiments run in a copy of the workspace in DVC's
temporary experiments folder (``tmp`` then ``exps`` inside the root's ``.dvc``). Files
that live only in the main workspace (the MLflow database, ImageNet weights the user
placed there) must be found from the copy too.
"""

from __future__ import annotations

import os
from pathlib import Path

_EXPS_PARTS = (".dvc", "tmp", "exps")


def main_root(cwd: str | Path | None = None) -> Path:
    """The main repository root, also inside a DVC temp-experiment copy.

    Outside such a copy, the nearest ancestor holding ``.dvc`` (how DVC finds its root),
    else cwd. ``.git`` alone does not count: a parent folder under git (a home directory,
    a monorepo) or a nested git checkout is not this project's root.
    """
    here = Path(cwd or os.getcwd()).resolve()
    parts = here.parts
    for i in range(len(parts) - len(_EXPS_PARTS), 0, -1):
        if parts[i : i + len(_EXPS_PARTS)] == _EXPS_PARTS:
            return Path(*parts[:i])
    for candidate in (here, *here.parents):
        if (candidate / ".dvc").is_dir():
            return candidate
    return here


def repo_file(path: str | Path, cwd: str | Path | None = None) -> Path:
    """A user-given file path: absolute as is; relative from the working directory when the
    file is there, else from the main repository root (DVC's experiment copies)."""
    path = Path(path).expanduser()
    if path.is_absolute():
        return path
    here = Path(cwd or os.getcwd())
    if (here / path).exists():
        return here / path
    return main_root(here) / path
