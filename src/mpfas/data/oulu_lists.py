"""OULU-NPU's own protocol lists, read to check the folds ``oulu_protocols`` derives from names.

The release ships ``Protocols/Protocol_<n>/{Train,Dev,Test}.txt`` (protocols 1 and 2) and
``Train_<k>.txt`` etc. (protocols 3 and 4, six folds), one video per line as
``<label>,<phone>_<session>_<user>_<file>``, the label positive for a real access and
negative for an attack. Our folds come from the conditions of the dataset paper's Table II;
where a copy has the lists, the raw stage compares the two on every indexed video, so a fold
that would differ from the official one is found before anything trains on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mpfas.core.errors import first_of
from mpfas.data.base import VIDEO_EXTENSIONS, DatasetError
from mpfas.data.datasets.oulu import oulu_name
from mpfas.data.oulu_protocols import OULU_PROTOCOLS, OuluFold, oulu_folds
from mpfas.data.records import Label, VideoRecord

SPLIT_FILES = {"train": "Train", "dev": "Dev", "test": "Test"}


@dataclass(frozen=True)
class OuluListCheck:
    """Our folds against the release's lists (``folder``: where they were found, or None)."""

    folder: Path | None
    lists: int                      # list files compared
    disagreements: tuple[str, ...]  # "<list file>: <video>: <what differs>"

    def summary(self) -> dict[str, object]:
        return {"found": self.folder is not None, "lists": self.lists, "disagreements": len(self.disagreements)}

    def describe(self, shown: int = 10) -> str:
        return (f"OULU-NPU (O): the protocol folds derived from the file names disagree with the release's "
                f"lists in {self.folder} on {len(self.disagreements)} video(s): "
                f"{first_of(self.disagreements, shown, '; ')}")


def protocol_folder(root: Path) -> Path | None:
    """The folder holding ``Protocol_1`` ... under ``root`` (``Protocols/``, sometimes nested twice)."""
    found = sorted(Path(root).rglob("Protocol_1"), key=lambda p: len(p.parts))
    return found[0].parent if found and found[0].is_dir() else None


def read_list(path: Path) -> dict[str, bool]:
    """Video name (without extension) -> is live, from one list file; fails naming the file and line."""
    out: dict[str, bool] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        label, _, name = (part.strip() for part in line.partition(","))
        try:
            value = int(label)
        except ValueError:
            raise DatasetError(f"{path}:{number}: {line!r} is not '<label>,<video>' (OULU-NPU protocol list)") from None
        if name.lower().endswith(VIDEO_EXTENSIONS):
            name = name.rsplit(".", 1)[0]
        out[name] = value > 0
    return out


def _lists(folder: Path, protocol: str) -> list[dict[str, Path]]:
    """Split -> list file, per fold of one protocol whose three files are present."""
    base = folder / f"Protocol_{protocol[1:]}"
    suffixes = [""] if protocol in ("P1", "P2") else [f"_{k}" for k in range(1, 7)]
    groups = [{split: base / f"{stem}{suffix}.txt" for split, stem in SPLIT_FILES.items()} for suffix in suffixes]
    return [files for files in groups if all(p.is_file() for p in files.values())]


def _fold_for(protocol: str, test_names: dict[str, bool]) -> OuluFold | None:
    """Our fold matching an official one: the only fold of P1/P2, else the fold whose left-out
    phone is the one phone of the official test list (the lists' numbering is not relied on)."""
    folds = oulu_folds(protocol)
    if len(folds) == 1:
        return folds[0]
    phones = {int(name.split("_")[0]) for name in test_names if name[:1].isdigit()}
    return next((f for f in folds if phones == {f.fold}), None)


def check_oulu_lists(root: Path, records: list[VideoRecord]) -> OuluListCheck:
    """Compare every fold's splits and labels with the release's lists, on the indexed videos."""
    folder = protocol_folder(root)
    if folder is None:
        return OuluListCheck(None, 0, ())
    indexed = {PurePosixPath(r.relpath).stem: r for r in records if oulu_name(r.relpath) is not None}
    problems: list[str] = []
    lists = 0
    for protocol in OULU_PROTOCOLS:
        for files in _lists(folder, protocol):
            official = {split: read_list(path) for split, path in files.items()}
            lists += len(files)
            fold = _fold_for(protocol, official["test"])
            if fold is None:
                problems.append(f"{files['test'].relative_to(folder)}: holds more than one phone")
                continue
            in_fold: dict[str, set[str]] = {split: set() for split in files}
            for stem, rec in indexed.items():
                split = fold.split_of(rec)
                if split is not None:
                    in_fold[split].add(stem)
            for split, path in files.items():
                where = path.relative_to(folder).as_posix()
                ours = in_fold[split]
                listed = {name for name in official[split] if name in indexed}
                ours_is = f"our {fold.name} {split}"
                problems += [f"{where}: {name}: listed, not in {ours_is}" for name in sorted(listed - ours)]
                problems += [f"{where}: {name}: in {ours_is}, not listed" for name in sorted(ours - listed)]
                problems += [f"{where}: {name}: listed as {'live' if live else 'attack'}"
                             for name, live in sorted(official[split].items())
                             if name in listed and (indexed[name].label == Label.LIVE) != live]
    return OuluListCheck(folder, lists, tuple(problems))
