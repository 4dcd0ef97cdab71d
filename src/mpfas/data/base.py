"""Shared walk over a dataset root; each adapter only knows its naming rules."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Literal

from mpfas.core.errors import MpfasError, first_of
from mpfas.data.records import VideoRecord

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
        seen: set[tuple[int, int]] = set()  # folders already walked: symlinks are followed, loops are not
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            rel_dir = Path(dirpath).relative_to(root)
            st = os.stat(dirpath)
            if (st.st_dev, st.st_ino) in seen:
                dirnames[:] = []
                continue
            seen.add((st.st_dev, st.st_ino))
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
            log.warning("%s: %d video file(s) match no naming rule and are skipped: %s",
                        self.name, len(result.unmatched), first_of(result.unmatched))
        return result

    def suggest_root(self, root: Path, unmatched: list[str]) -> Path | None:
        """Where the layout really starts when ``root`` is one or two folders off: the first
        sub-folder under which unmatched files follow the naming rules (a root pointed one level
        too high, e.g. at the folder the archive unpacked into), or ``root``'s parent when
        prefixing its own name makes them match (a root pointed at one split folder)."""
        root = Path(root)
        for depth in (1, 2):
            hits: dict[str, int] = {}
            for rel in unmatched:
                parts = PurePosixPath(rel).parts
                if len(parts) > depth and self.parse(PurePosixPath(*parts[depth:]).as_posix()) is not None:
                    prefix = PurePosixPath(*parts[:depth]).as_posix()
                    hits[prefix] = hits.get(prefix, 0) + 1
            if hits:
                return root / max(sorted(hits), key=hits.__getitem__)
        if any(self.parse(f"{root.name}/{rel}") is not None for rel in unmatched):
            return root.parent
        return None
