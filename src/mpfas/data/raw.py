"""The ``raw`` stage: make (demo) or validate (real) the datasets, then index their videos."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from mpfas.core.atomic import write_text
from mpfas.core.config import Params
from mpfas.core.errors import first_of
from mpfas.data import (
    DatasetError,
    VideoRecord,
    adapter_for,
    dataset_codes,
    dataset_name,
    dataset_root,
    demo_codes,
    write_index,
)
from mpfas.data.oulu_lists import check_oulu_lists
from mpfas.data.release import check_release

log = logging.getLogger(__name__)


def indexed_codes(params: Params) -> list[str]:
    """Which datasets the raw stage indexes, in registry order: those of ``data.datasets``,
    all of which the demo must draw, or in real mode each whose root is set. Config
    validation already made sure the chosen protocols' roots are set
    (``Params.used_datasets``), so an unused dataset may be left without a root."""
    chosen = set(params.data.datasets)
    if params.data.source == "demo":
        undrawn = sorted(chosen - set(demo_codes()))
        if undrawn:
            raise DatasetError(f"data.datasets: the demo cannot draw {undrawn} (real data only); "
                               "leave them out or use data.source 'real'")
        return [code for code in demo_codes() if code in chosen]
    codes = [code for code in dataset_codes() if code in chosen and params.data.roots.get(code)]
    if not codes:
        raise DatasetError("data.roots: no root of data.datasets is set, but data.source is 'real'")
    return codes


def index_datasets(params: Params) -> dict[str, list[VideoRecord]]:
    """Scan the datasets' roots with their adapters; fail naming the param to fix."""
    out: dict[str, list[VideoRecord]] = {}
    for code in indexed_codes(params):
        hint = (f"set data.roots.{code} in params.yaml to the {dataset_name(code)} root"
                if params.data.source == "real" else "re-run the raw stage to rebuild the demo")
        root = dataset_root(params.data, code)
        adapter = adapter_for(code)
        try:
            result = adapter.scan(root)
        except DatasetError as exc:
            raise DatasetError(f"{exc}; {hint}") from None
        if not result.records:
            found = f"{len(result.unmatched)} video file(s) that match no naming rule" if result.unmatched \
                else "no video files"
            better = adapter.suggest_root(root, result.unmatched) if result.unmatched else None
            if better is not None and params.data.source == "real":
                hint = f"its layout starts at {better}: set data.roots.{code} to that folder"
            raise DatasetError(f"{dataset_name(code)} ({code}): {root} holds {found}; {hint}")
        out[code] = result.records
    return out


def check_copies(params: Params, records: dict[str, list[VideoRecord]], index_dir: Path) -> dict[str, dict]:
    """Real roots only: each indexed dataset against its official release (``datasets.release``)
    and, where an OULU-NPU copy has them, our protocol folds against its own lists
    (``datasets.oulu_lists``). Missing videos are listed in ``<index_dir>/<D>_missing.txt``. A
    copy missing an official file or lists that disagree stop the stage, naming what differs, with
    ``data.incomplete: fail`` (the default), before any index is written; ``warn`` logs the same
    account and goes on. Returns per dataset what metrics/raw.json records."""
    if params.data.source != "real":
        return {}
    releases = {code: check for code, recs in records.items() if (check := check_release(code, recs))}
    short = []
    for check in releases.values():
        listing = Path(index_dir) / f"{check.code}_missing.txt"
        if check.missing:
            write_text(listing, "\n".join(check.missing) + "\n")
            short.append(check)
        else:
            listing.unlink(missing_ok=True)
        if check.unofficial:
            log.warning("%s (%s): %d indexed video(s) follow the naming rules but are not in the official "
                        "release: %s", dataset_name(check.code), check.code, len(check.unofficial),
                        first_of(check.unofficial))
    accounts = []
    if short:
        files = ", ".join(str(Path(index_dir) / f"{c.code}_missing.txt") for c in short)
        accounts.append("; ".join(c.describe() for c in short) + f" (all of them in {files}). The paper's "
                        "protocols use every video: restore them under data.roots")
    out: dict[str, dict] = {code: {"release": check.summary()} for code, check in releases.items()}
    if "O" in records:  # OULU-NPU ships its protocols as lists; the other datasets' splits are folders
        oulu = check_oulu_lists(dataset_root(params.data, "O"), records["O"])
        out.setdefault("O", {})["protocol_lists"] = oulu.summary()
        if oulu.folder is None:
            log.info("OULU-NPU: no Protocols/Protocol_1 folder under the root; folds not compared with it")
        elif oulu.disagreements:
            accounts.append(oulu.describe() + ". The OULU-NPU results would not be the official protocols'")
    if accounts:
        account = "; ".join(accounts)
        if params.data.incomplete == "fail":
            raise DatasetError(f"{account}; or set data.incomplete: warn to run on what is there")
        log.warning("%s (data.incomplete: warn: going on)", account)
    return out


def build_raw(params: Params, index_dir: Path, contact_sheet_png: Path | None = None) -> dict:
    """Synthesise the demo if asked, write one index CSV per dataset, return counts."""
    if params.data.source == "demo":
        from mpfas.demo import synthesize_demo  # heavy imports only when needed

        synthesize_demo(params.demo, Path(params.data.demo_root), codes=params.data.datasets)
    else:
        # Real roots are read-only inputs; the demo folder only records where they are.
        Path(params.data.demo_root).mkdir(parents=True, exist_ok=True)
    records = index_datasets(params)
    checks = check_copies(params, records, index_dir)
    if contact_sheet_png is not None:
        from mpfas.data.contact_sheet import dataset_sheet

        dataset_sheet(records, {code: dataset_root(params.data, code) for code in records}, contact_sheet_png)
    counts = {}
    for code, recs in records.items():
        write_index(recs, index_dir / f"{code}.csv")
        labels = Counter(r.label.value for r in recs)
        counts[code] = {"videos": len(recs), **{k: labels.get(k, 0) for k in ("live", "print", "replay")},
                        "splits": dict(sorted(Counter(r.split for r in recs).items()))}
        counts[code].update(checks.get(code, {}))
        log.info("%s: %d videos (%s)", dataset_name(code), len(recs), dict(labels))
    return {"source": params.data.source, "datasets": counts}
