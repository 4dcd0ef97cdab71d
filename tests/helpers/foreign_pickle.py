"""A foreign checkpoint that runs code when unpickled: what ``weights_only=True`` must refuse.

Saved with ``torch.save`` (torch's real zip format), so a ``weights_only=False`` load
would unpickle it and create ``marker``; the tests assert the marker never appears.
"""

from __future__ import annotations

from pathlib import Path

import torch


class CreatesFile:
    """Unpickling calls ``open(marker, "w")``: the file's existence proves the code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def save_foreign(path: Path, marker: Path, payload_key: str = "model", **extra) -> Path:
    """A checkpoint-shaped dict whose ``payload_key`` entry runs code when loaded."""
    torch.save({payload_key: CreatesFile(marker), **extra}, path)
    assert not marker.exists()
    return path
