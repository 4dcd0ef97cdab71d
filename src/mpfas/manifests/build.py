"""Per-protocol split manifests: which video plays which role, with its aligned faces.

Label convention (also in docs/datasets.md): ``label`` is live / print / replay; ``is_live`` is 1
for live (the positive class: a higher score means more likely live) and 0 for any
attack. ``role`` is ``source-train`` (meta-learning data), ``source-val`` (a
subject-disjoint slice of the sources, used to pick the checkpoint and fix the
decision threshold without looking at the target) or ``target`` (the unseen domain).

A video without any aligned face is left out: it has nothing to train on or score (the
official data lists keep such videos and the official loader skips them as it loads,
docs/provenance.md). Such videos are
counted per role and domain (``excluded_no_face`` in metrics/manifests.json), and a
faceless row is refused wherever a manifest is checked or read.

OULU-NPU's intra-dataset protocols (``plan_oulu_manifest``) reuse the three roles for the
official splits: ``source-train`` is the Train split, ``source-val`` the Dev split (the
one that fixes the threshold, as the OULU-NPU protocols prescribe) and ``target`` the Test
split. So training, checkpoint selection, the leak checks and the source-val threshold of
the evaluate stage apply unchanged; the domain is ``O`` in every role.
"""

from __future__ import annotations

import logging
import random
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from mpfas.core.atomic import write_csv
from mpfas.core.config import ManifestsConfig, Protocol
from mpfas.core.rows import CsvLine, RowError, one_of, read_csv_rows, read_faces_csv
from mpfas.data import Label, VideoRecord, dataset_codes, dataset_name
from mpfas.data.oulu_protocols import OuluFold
from mpfas.data.records import LABELS, SPLITS

log = logging.getLogger(__name__)

ROLES = ("source-train", "source-val", "target")
OULU_ROLES = {"train": "source-train", "dev": "source-val", "test": "target"}
OULU_DOMAINS = Protocol(sources=["O"], target="O")
"""The domains of every OULU-NPU fold's manifest (for the checks; it is not a cross-domain protocol)."""
TARGET_SPLITS = {"all": None, "train+test": {"train", "test"}, "test": {"test"}}


class ManifestError(RowError):
    """A manifest would leak data between roles, lacks a class, or points outside its root."""


@dataclass(frozen=True)
class ManifestRow:
    dataset: str
    domain: str
    video_id: str
    subject: str
    split: str
    label: str
    is_live: int
    attack: str
    role: str
    faces: list[str]


COLUMNS = [f.name for f in fields(ManifestRow)]


@dataclass(frozen=True)
class ExcludedVideo:
    """A video that would have had ``role`` but has no aligned face."""

    domain: str
    video_id: str
    role: str


@dataclass(frozen=True)
class Manifest:
    rows: list[ManifestRow]
    excluded: list[ExcludedVideo]

    def excluded_counts(self, protocol: Protocol) -> dict[str, dict[str, int]]:
        """Excluded videos per role and domain, zeros included so every run reports the same keys."""
        sources = {d: 0 for d in sorted(protocol.sources)}
        out = {"source-train": dict(sources), "source-val": dict(sources), "target": {protocol.target: 0}}
        for e in self.excluded:
            out[e.role][e.domain] += 1
        return out


def plan_manifest(
    name: str,
    protocol: Protocol,
    videos: dict[str, list[VideoRecord]],
    faces: dict[str, list[str]],
    cfg: ManifestsConfig,
) -> Manifest:
    """Assign roles for one protocol, leaving out (and listing) videos without a face.

    ``videos`` maps a domain code to its index records; ``faces`` maps a video id to
    its aligned face paths in frame order. The source-val subjects are drawn from the
    videos with faces; a faceless source video is counted under the role its subject
    got (source-train when no video of the subject has a face).
    """
    rows: list[ManifestRow] = []
    excluded: list[ExcludedVideo] = []
    for domain in protocol.sources:
        recs = [r for r in videos[domain] if faces.get(r.video_id)]
        val_subjects = _val_subjects(recs, cfg.val_fraction, f"{cfg.seed}:{name}:{domain}")
        for r in videos[domain]:
            role = "source-val" if r.subject in val_subjects else "source-train"
            if faces.get(r.video_id):
                rows.append(_row(r, faces, role))
            else:
                excluded.append(ExcludedVideo(domain, r.video_id, role))
    allowed = TARGET_SPLITS[cfg.target_set]
    for r in videos[protocol.target]:
        if allowed is None or r.split in allowed:
            if faces.get(r.video_id):
                rows.append(_row(r, faces, "target"))
            else:
                excluded.append(ExcludedVideo(protocol.target, r.video_id, "target"))
    check_manifest(name, rows, protocol)
    if excluded:
        by = Counter((e.role, e.domain) for e in excluded)
        log.warning("%s: %d video(s) without any aligned face left out (%s), e.g. %s; see "
                    "data/faces/<D>/failures.csv", name, len(excluded),
                    ", ".join(f"{role} {domain}: {n}" for (role, domain), n in sorted(by.items())),
                    ", ".join(e.video_id for e in excluded[:3]))
    return Manifest(rows, excluded)


def plan_oulu_manifest(fold: OuluFold, videos: list[VideoRecord], faces: dict[str, list[str]]) -> Manifest:
    """The manifest of one OULU-NPU fold: its Train, Dev and Test videos as source-train,
    source-val and target, leaving out (and listing) videos without a face."""
    rows: list[ManifestRow] = []
    excluded: list[ExcludedVideo] = []
    for r in videos:
        split = fold.split_of(r)
        if split is None:
            continue
        role = OULU_ROLES[split]
        if faces.get(r.video_id):
            rows.append(_row(r, faces, role))
        else:
            excluded.append(ExcludedVideo(r.dataset, r.video_id, role))
    check_manifest(fold.name, rows, OULU_DOMAINS)
    if excluded:
        log.warning("%s: %d video(s) without any aligned face left out, e.g. %s", fold.name, len(excluded),
                    ", ".join(e.video_id for e in excluded[:3]))
    return Manifest(rows, excluded)


def check_manifest(name: str, rows: list[ManifestRow], protocol: Protocol) -> None:
    """Refuse manifests that would leak data, hold a faceless video, or cannot train and evaluate."""
    faceless = [row.video_id for row in rows if not row.faces]
    if faceless:
        raise ManifestError(f"{name}: {len(faceless)} video(s) without an aligned face, e.g. {faceless[0]}; "
                            "they cannot be trained on or scored")
    leak = find_leak(rows)
    if leak is not None:
        raise ManifestError(f"{name}: {leak.message}")
    for role, domains in (("source-train", protocol.sources), ("source-val", protocol.sources),
                          ("target", [protocol.target])):
        for domain in domains:
            classes = {row.is_live for row in rows if row.role == role and row.domain == domain}
            if classes != {0, 1}:
                have = "no videos" if not classes else ("only live" if classes == {1} else "only spoof")
                raise ManifestError(
                    f"{name}: {role} of domain {domain} ({dataset_name(domain)}) has {have}; "
                    "it needs both live and spoof videos (check the dataset, align failures, "
                    "manifests.val_fraction or manifests.target_set)"
                )


def write_manifest(rows: list[ManifestRow], path: Path) -> None:
    write_csv(path, ({**asdict(row), "faces": ";".join(row.faces)} for row in rows), COLUMNS)


@dataclass(frozen=True)
class Leak:
    """Row ``index`` repeats a video or a subject of row ``earlier`` in a way no manifest may."""

    index: int
    earlier: int
    field: str
    message: str


def find_leak(rows: list[ManifestRow]) -> Leak | None:
    """The first row that lists a video twice, or puts a subject (per domain) in a second role:
    source-train and source-val, or a source role and the target, would share a person."""
    videos: dict[str, int] = {}
    subjects: dict[tuple[str, str], int] = {}
    for i, row in enumerate(rows):
        j = videos.setdefault(row.video_id, i)
        if j != i:
            twice = "listed twice" if rows[j].role == row.role else f"in two roles ({rows[j].role}, {row.role})"
            return Leak(i, j, "video_id", f"video {row.video_id} is {twice}")
        j = subjects.setdefault((row.domain, row.subject), i)
        if rows[j].role != row.role:
            return Leak(i, j, "subject", f"subject {row.subject} of domain {row.domain} is in both "
                                         f"{rows[j].role} and {row.role}")
    return None


def read_manifest(path: str | Path, faces_root: str | Path, protocol: Protocol | None = None) -> list[ManifestRow]:
    """Read a manifest, checking on every read what the manifests stage checked when it wrote it.

    Each row: known domain, label, split and role; ``is_live`` 1 for live and 0 for attacks;
    at least one face, every face path inside ``faces_root``. Across rows: no video twice and
    no subject in two roles. With ``protocol``, each role holds only that protocol's domains.
    """
    path, faces_root = Path(path), Path(faces_root)
    lines = read_csv_rows(path, COLUMNS, ManifestError, made_by="manifests")
    rows = [_parse_row(line, faces_root) for line in lines]
    leak = find_leak(rows)
    if leak is not None:
        raise lines[leak.index].fail(leak.field, f"{leak.message} (see line {lines[leak.earlier].line})")
    if protocol is not None:
        for line, row in zip(lines, rows):
            _check_domain(line, row, protocol)
    return rows


def _parse_row(line: CsvLine, faces_root: Path) -> ManifestRow:
    domain = line.choice("domain", dataset_codes())
    video_id = line.text("video_id")
    if not video_id.startswith(f"{domain}/"):
        raise line.fail("video_id", f"{video_id!r} does not start with its domain {domain!r}")
    label = line.choice("label", LABELS)
    is_live = int(line.choice("is_live", ("0", "1")))
    if is_live != int(label == Label.LIVE.value):
        raise line.fail("is_live", f"{is_live} disagrees with label {label!r} (live is 1, print and replay 0)")
    faces = [p for p in line.values["faces"].split(";") if p]
    if not faces:
        raise line.fail("faces", f"video {video_id} has no aligned face; the manifests stage leaves such "
                                 "videos out (rebuild with `dvc repro manifests`)")
    return ManifestRow(
        dataset=line.values["dataset"], domain=domain, video_id=video_id, subject=line.text("subject"),
        split=line.choice("split", SPLITS), label=label, is_live=is_live, attack=line.values["attack"],
        role=line.choice("role", ROLES), faces=[line.path_in("faces", faces_root, p, kind="faces") for p in faces],
    )


def _check_domain(line: CsvLine, row: ManifestRow, protocol: Protocol) -> None:
    allowed = [protocol.target] if row.role == "target" else protocol.sources
    if row.domain not in allowed:
        raise line.fail("domain", f"{row.domain!r} in role {row.role}, but the protocol's "
                                  f"{'target is' if row.role == 'target' else 'sources are'} {one_of(allowed)}")


def count_rows(rows: list[ManifestRow]) -> dict[str, dict[str, dict[str, int]]]:
    """Videos per role, domain and class, for metrics/manifests.json."""
    counts: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    for row in rows:
        counts[row.role][row.domain][row.label] += 1
        counts[row.role][row.domain]["faces"] += len(row.faces)
    return {role: {d: dict(c) for d, c in sorted(doms.items())} for role, doms in sorted(counts.items())}


def read_faces_index(path: Path, rel_to: str | Path = ".") -> dict[str, list[str]]:
    """Aligned face paths per video id, in frame order, from an align stage's faces.csv."""
    per_video: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for row in read_faces_csv(path, rel_to):
        per_video[row.video_id].append((row.frame, row.path))
    return {vid: [p for _, p in sorted(items)] for vid, items in per_video.items()}


def _row(r: VideoRecord, faces: dict[str, list[str]], role: str) -> ManifestRow:
    return ManifestRow(
        dataset=dataset_name(r.dataset), domain=r.dataset, video_id=r.video_id, subject=r.subject,
        split=r.split, label=r.label.value, is_live=int(r.label is Label.LIVE), attack=r.attack,
        role=role, faces=faces[r.video_id],
    )


def _val_subjects(recs: list[VideoRecord], fraction: float, seed: str) -> set[str]:
    """A seeded, subject-disjoint validation slice (at least one subject, never all)."""
    subjects = sorted({r.subject for r in recs})
    if len(subjects) < 2:
        return set()
    rng = random.Random(seed)
    rng.shuffle(subjects)
    n_val = min(len(subjects) - 1, max(1, round(fraction * len(subjects))))
    return set(subjects[:n_val])
