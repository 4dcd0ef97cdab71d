"""``mpfas clean``: remove what finished or abandoned experiments left, never what a kept one needs.

Five kinds of waste, each removed only when nothing kept can still use it:

* **experiment temp copies**: workspaces DVC made under ``tmp/exps`` inside ``.dvc`` for queued or
  ``--temp`` experiments; a killed worker leaves its copy behind. Removed only while no
  experiment is queued or running (``dvc queue status``).
* **stale checkpoints**: ``models/<P>/`` of protocols no longer in ``data.protocols``
  (their ``best.pt`` stays in DVC's cache for the commits and experiments that trained
  them; ``models/OULU-<P>/`` of ``manifests.oulu_protocols`` are kept, :func:`kept_models`),
  and temp files of atomic writes (``mpfas.core.atomic``) whose writer is dead.
* **MLflow deleted runs**: runs, experiments and logged models in MLflow's ``deleted``
  lifecycle stage (deleted in the UI) with their artifacts: ``mlflow gc`` on the
  repository's own SQLite store. A server's store (``MLFLOW_TRACKING_URI``) is left to its owner.
* **DVC cache**: objects no commit, experiment or the workspace references
  (``dvc gc --workspace --all-commits --all-experiments``); skipped while experiments
  are queued or running, since a running one has cached outputs no ref names yet.
* **duplicates of cached outputs**: with ``cache.type`` hardlinks DVC links an output to its
  cache object when it first caches it, but a file a stage writes again with content the
  cache already holds (a resumed ``persist`` stage, which DVC first unprotects by copying,
  or a re-run with the same result) stays a second copy. ``dvc checkout --relink`` makes it
  a link again; done only while ``dvc status`` is clean, so it changes no content.

Bytes are counted per inode, not per name: with ``cache.type`` hardlinks a cache object
linked from the workspace frees nothing when only one of its names goes, and is not
counted. ``last.pt`` is never touched: it is the resume point (raise ``train.iterations``
and the train stage continues from it) and a DVC output, whose removal would make
``dvc repro`` train again.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import yaml

from mpfas.core.atomic import TEMP_SUFFIX
from mpfas.core.config import Params
from mpfas.core.errors import MpfasError
from mpfas.data.oulu_protocols import PREFIX as OULU_PREFIX
from mpfas.experiments.sweeps import run_dvc
from mpfas.tracking import DB_NAME, sqlite_uri

MODELS_DIR = "models"
CACHE_FILES = Path(".dvc", "cache", "files", "md5")
UP_TO_DATE = "Data and pipelines are up to date."
EXPS_DIR = Path(".dvc", "tmp", "exps")
TEMP_ROOTS = ("models", "data", "metrics", "plots", "reports")
"""Where the pipeline writes atomically, so where a killed writer's temp file can be."""
_TEMP_NAME = re.compile(rf"^\..+\.(\d+){re.escape(TEMP_SUFFIX)}$")  # mpfas.core.atomic: .<name>.<pid>.tmp
_BUSY = ("Queued", "Running")

InodeKey = tuple[int, int]


@dataclass
class Category:
    """What one kind of cleanup removed (or, dry, would remove)."""

    name: str
    freed: int = 0  # bytes of disk no longer used (inodes whose last name went)
    items: list[str] = field(default_factory=list)  # what went, relative to the repository
    skipped: str = ""  # why nothing was tried


def _inodes(paths: Iterable[Path]) -> dict[InodeKey, tuple[int, int, int]]:
    """Every file under ``paths`` (symlinks not followed): inode -> (bytes on disk, links, names seen)."""
    out: dict[InodeKey, tuple[int, int, int]] = {}

    def add(p: str) -> None:
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            return
        key = (st.st_dev, st.st_ino)
        seen = out.get(key, (0, 0, 0))[2]
        out[key] = (st.st_blocks * 512, st.st_nlink, seen + 1)

    for path in paths:
        if path.is_symlink() or path.is_file():
            add(str(path))
            continue
        for dirpath, dirnames, filenames in os.walk(path):
            for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                add(os.path.join(dirpath, name))
    return out


def freed_between(before: dict[InodeKey, tuple[int, int, int]],
                  after: dict[InodeKey, tuple[int, int, int]]) -> int:
    """Bytes of the inodes that lost every name they had (all their links were among ``before``'s)."""
    total = 0
    for key, (size, links, seen) in before.items():
        gone = seen - after.get(key, (0, 0, 0))[2]
        if gone and gone >= links:
            total += size
    return total


def _remove(paths: Sequence[Path], dry: bool) -> int:
    """Delete ``paths`` (files or folders, also read-only ones); the bytes this frees."""
    before = _inodes(paths)
    if dry:
        return freed_between(before, {})
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    return freed_between(before, _inodes(paths))


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


# ------------------------------------------------------------------ the four kinds


def queue_busy(root: Path) -> list[str]:
    """``dvc queue status`` lines of experiments still queued or running (empty: idle)."""
    text = run_dvc(["queue", "status"], cwd=root)
    return [line.strip() for line in text.splitlines() if line.split() and line.split()[-1] in _BUSY]


def experiment_temp_copies(root: Path, busy: Sequence[str], dry: bool) -> Category:
    cat = Category("experiment temp copies")
    if busy:
        cat.skipped = f"{len(busy)} experiment(s) queued or running"
        return cat
    folder = root / EXPS_DIR
    copies = sorted(p for p in folder.glob("tmp*") if p.is_dir()) if folder.is_dir() else []
    cat.freed = _remove(copies, dry)
    cat.items = [_rel(p, root) for p in copies]
    return cat


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def kept_models(params: Params) -> list[str]:
    """The ``models/`` folders the params train into: ``<P>`` of ``data.protocols`` and ``OULU-<P>``
    of ``manifests.oulu_protocols`` (whose checkpoints are not in DVC's cache at all)."""
    return [*params.data.protocols, *(f"{OULU_PREFIX}{p}" for p in params.manifests.oulu_protocols)]


def stale_checkpoints(root: Path, protocols: Sequence[str], dry: bool) -> Category:
    cat = Category("stale checkpoints")
    models = root / MODELS_DIR
    stale = sorted(p for p in models.iterdir() if p.is_dir() and p.name not in protocols) if models.is_dir() else []
    temps = []
    for top in TEMP_ROOTS:
        if (root / top).is_dir():
            for tmp in (root / top).rglob(f".*{TEMP_SUFFIX}"):
                match = _TEMP_NAME.match(tmp.name)
                if match and tmp.is_file() and not _alive(int(match.group(1))) \
                        and not any(s in tmp.parents for s in stale):
                    temps.append(tmp)
    found = stale + sorted(temps)
    cat.freed = _remove(found, dry)
    cat.items = [_rel(p, root) for p in found]
    return cat


def _file_path(uri: str | None) -> Path | None:
    if not uri or not uri.startswith("file:"):
        return None
    return Path(unquote(urlparse(uri).path))


def deleted_mlflow_artifacts(db: Path) -> tuple[list[str], list[Path]]:
    """What ``mlflow gc`` would remove from the SQLite store ``db`` (read only): the deleted
    runs and logged models (also those of deleted experiments) and their artifact folders.
    Plain read-only SQL: ``MlflowClient`` cannot list deleted logged models, and opening a store
    with it may migrate the DB, which a dry run must never do."""
    con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        gone_exps = "(SELECT experiment_id FROM experiments WHERE lifecycle_stage = 'deleted')"
        rows = con.execute(f"SELECT run_uuid, artifact_uri FROM runs WHERE lifecycle_stage = 'deleted' "
                           f"OR experiment_id IN {gone_exps}").fetchall()
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "logged_models" in tables:
            rows += con.execute(f"SELECT model_id, artifact_location FROM logged_models WHERE lifecycle_stage = "
                                f"'deleted' OR experiment_id IN {gone_exps}").fetchall()
    except sqlite3.DatabaseError as exc:
        raise MpfasError(f"{db}: not a readable MLflow database ({exc})") from None
    finally:
        con.close()
    folders = [p for _, uri in rows if (p := _file_path(uri)) is not None and p.exists()]
    return [r[0] for r in rows], folders


def mlflow_deleted_runs(root: Path, dry: bool) -> Category:
    cat = Category("MLflow deleted runs")
    if os.environ.get("MLFLOW_TRACKING_URI", "").strip():
        cat.skipped = "MLFLOW_TRACKING_URI is set: that store's gc is its owner's (`mlflow gc`)"
        return cat
    db = root / DB_NAME
    if not db.is_file():
        cat.skipped = f"no {DB_NAME}"
        return cat
    ids, folders = deleted_mlflow_artifacts(db)
    cat.items = ids
    before = _inodes(folders)
    if dry or not ids:
        cat.freed = freed_between(before, {})
        return cat
    mlflow = Path(sys.executable).parent / "mlflow"
    uri = sqlite_uri(db)
    done = subprocess.run([str(mlflow if mlflow.is_file() else "mlflow"), "gc", "--backend-store-uri", uri,
                           "--tracking-uri", uri], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise MpfasError(f"`mlflow gc` on {db} failed ({done.returncode}): "
                         f"{(done.stderr or done.stdout).strip()[-2000:]}")
    cat.freed = freed_between(before, _inodes(folders))
    return cat


def dvc_cache(root: Path, busy: Sequence[str], dry: bool) -> Category:
    cat = Category("DVC cache")
    if busy:
        cat.skipped = f"{len(busy)} experiment(s) queued or running"
        return cat
    cache = root / ".dvc" / "cache"
    args = ["gc", "--workspace", "--all-commits", "--all-experiments", "--force"]
    if dry:
        out = run_dvc([*args, "--dry"], cwd=root)
        paths = [Path(line.split("Removing ", 1)[1].strip()) for line in out.splitlines() if "Removing " in line]
        cat.items = [_rel(p, root) for p in paths]
        cat.freed = freed_between(_inodes(paths), {})
        return cat
    before = _inodes([cache])
    run_dvc(args, cwd=root)
    after = _inodes([cache])
    cat.freed = freed_between(before, after)
    cat.items = [f"{len(before) - len(after)} object(s)"] if len(before) > len(after) else []
    return cat


def _cached_outs(root: Path) -> list[tuple[Path, str]]:
    """(path, md5) of every output dvc.lock records that goes through the cache (not ``cache: false``)."""
    lock = yaml.safe_load((root / "dvc.lock").read_text()) if (root / "dvc.lock").is_file() else None
    spec = yaml.safe_load((root / "dvc.yaml").read_text()) if (root / "dvc.yaml").is_file() else None
    if not lock or not spec:
        return []
    out = []
    for name, stage in lock.get("stages", {}).items():
        base, _, item = name.partition("@")
        decl = spec.get("stages", {}).get(base, {})
        decl = decl.get("do", decl)
        uncached = []
        for key in ("outs", "metrics", "plots"):
            for entry in decl.get(key, []) or []:
                if isinstance(entry, dict):
                    (template, opts), = entry.items()
                    if isinstance(opts, dict) and opts.get("cache") is False:
                        uncached.append(_template_regex(template, item))
        for o in stage.get("outs", []) or []:
            if o.get("md5") and not any(r.fullmatch(o["path"]) for r in uncached):
                out.append((root / o["path"], o["md5"]))
    return out


def _template_regex(template: str, item: str) -> re.Pattern[str]:
    parts = re.split(r"(\$\{[^}]+\})", template)
    return re.compile("".join(re.escape(item) if p == "${item}" else ".+" if p.startswith("${") else re.escape(p)
                              for p in parts))


def _object(root: Path, md5: str) -> Path:
    return root / CACHE_FILES / md5[:2] / md5[2:]


def _duplicates(root: Path) -> list[Path]:
    """Workspace files of cached outputs that are a separate copy of their cache object."""

    found = []
    for path, md5 in _cached_outs(root):
        files = [(path, md5)]
        if md5.endswith(".dir"):
            listing = _object(root, md5)
            files = ([(path / e["relpath"], e["md5"]) for e in json.loads(listing.read_text())]
                     if listing.is_file() else [])
        for file, oid in files:
            obj = _object(root, oid)
            try:
                st, cst = os.lstat(file), os.lstat(obj)
            except FileNotFoundError:
                continue
            if (st.st_dev, st.st_ino) != (cst.st_dev, cst.st_ino) and not os.path.islink(file) \
                    and st.st_size == cst.st_size:
                found.append(file)
    return found


def relink_duplicates(root: Path, dry: bool) -> Category:
    cat = Category("duplicates of cached outputs")
    types = run_dvc(["config", "cache.type"], cwd=root).strip() if (root / ".dvc/config").is_file() else ""
    if not re.search(r"\b(hardlink|symlink)\b", types):
        cat.skipped = f"cache.type is {types or 'the default (reflink,copy)'}: copies are intended"
        return cat
    if UP_TO_DATE not in run_dvc(["status"], cwd=root):
        cat.skipped = "`dvc status` is not clean: relinking would overwrite outputs that differ from dvc.lock"
        return cat
    dups = _duplicates(root)
    cat.items = [_rel(p, root) for p in dups]
    if dry or not dups:
        cat.freed = sum(os.lstat(p).st_blocks * 512 for p in dups)
        return cat
    area = [*sorted({p for p, _ in _cached_outs(root)}), root / CACHE_FILES]
    before = _inodes(area)
    run_dvc(["checkout", "--relink", "--quiet"], cwd=root)
    cat.freed = freed_between(before, _inodes(area))
    return cat


def clean(root: Path, protocols: Sequence[str], *, dry: bool = False) -> list[Category]:
    """Every kind in turn (temp copies first: they may hold the last names of cache objects;
    relinking last, when only what the workspace uses is left)."""
    if not (root / ".dvc").is_dir():
        raise MpfasError(f"{root}: not a DVC repository (no .dvc folder); run `mpfas clean` in the project root")
    busy = queue_busy(root)
    return [experiment_temp_copies(root, busy, dry), stale_checkpoints(root, protocols, dry),
            mlflow_deleted_runs(root, dry), dvc_cache(root, busy, dry), relink_duplicates(root, dry)]


def human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def render(categories: Sequence[Category], dry: bool) -> str:
    verb = "would free" if dry else "freed"
    lines = []
    for cat in categories:
        if cat.skipped:
            lines.append(f"{cat.name}: skipped ({cat.skipped})")
            continue
        shown = ", ".join(cat.items[:5]) + (f", ... ({len(cat.items)} in all)" if len(cat.items) > 5 else "")
        lines.append(f"{cat.name}: {verb} {human(cat.freed)} ({cat.freed} bytes)" + (f": {shown}" if shown else ""))
    total = sum(c.freed for c in categories)
    lines.append(f"total: {verb} {human(total)} ({total} bytes)")
    return "\n".join(lines) + "\n"

