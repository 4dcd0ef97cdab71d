"""Shared walk over a dataset root; each adapter only knows its naming rules."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from ..errors import MpfasError
from .records import VideoRecord

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".avi", ".mov", ".mp4")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
MediaKind = Literal["video", "image"]
MEDIA_EXTENSIONS: dict[str, tuple[str, ...]] = {"video": VIDEO_EXTENSIONS, "image": IMAGE_EXTENSIONS}


class DatasetError(MpfasError):
    """A dataset root is missing, empty or does not follow its dataset's layout."""


@dataclass
class ScanResult:
    records: list[VideoRecord] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)


class DatasetAdapter:
    """Turns a dataset's original layout into :class:`VideoRecord` s.

    Subclasses implement :meth:`parse` for one relative path; ``skip_dirs`` lists
    top-level folders that are part of the dataset but not of the protocols. An
    ``image`` dataset (e.g. CelebA-Spoof) is scanned for image files; each image is a
    one-frame video to every later stage.
    """

    code: str = ""
    name: str = ""
    media: MediaKind = "video"
    skip_dirs: tuple[str, ...] = ()

    def parse(self, relpath: str) -> VideoRecord | None:
        raise NotImplementedError

    def prepare(self, root: Path) -> None:
        """Read side files (e.g. subject lists) before parsing; default: none."""

    def scan(self, root: Path) -> ScanResult:
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"{self.name} ({self.code}): root {root} does not exist or is not a folder")
        self.prepare(root)
        result = ScanResult()
        extensions = MEDIA_EXTENSIONS[self.media]
        for dirpath, dirnames, filenames in os.walk(root):
            rel_dir = Path(dirpath).relative_to(root)
            if rel_dir == Path("."):
                dirnames[:] = [d for d in dirnames if d not in self.skip_dirs]
            dirnames.sort()
            for fname in sorted(filenames):
                if not fname.lower().endswith(extensions):
                    continue
                relpath = (rel_dir / fname).as_posix()
                rec = self.parse(relpath)
                if rec is None:
                    result.unmatched.append(relpath)
                else:
                    size = (Path(dirpath) / fname).stat().st_size
                    result.records.append(replace(rec, size=size))
        if result.unmatched:
            shown = ", ".join(result.unmatched[:10])
            more = f" (+{len(result.unmatched) - 10} more)" if len(result.unmatched) > 10 else ""
            log.warning("%s: %d video file(s) match no naming rule and are skipped: %s%s",
                        self.name, len(result.unmatched), shown, more)
        return result
