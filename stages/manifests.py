"""DVC stage `manifests`: one split CSV per protocol, checked for leaks.

Usage (dvc.yaml's cmd): python stages/manifests.py --index DIR --faces DIR --out DIR --metrics JSON

Reads the index and faces.csv of each dataset in ``data.datasets``; a protocol whose
domains are not all among them gets no manifest (config makes sure ``data.protocols``
are covered). metrics/manifests.json: ``protocols.<name>.<role>.<domain>`` videos per
class and faces; ``excluded_no_face.<name>.<role>.<domain>`` videos left out for want of
an aligned face. With ``manifests.oulu_protocols`` (and O indexed) it also writes one
manifest per OULU-NPU fold (``OULU-P1.csv``, ``OULU-P3-<phone>.csv``, ...; roles as in
mpfas.manifests.build), counted under ``oulu_protocols`` and ``oulu_excluded_no_face``.
"""

import argparse
import sys
from collections import Counter
from pathlib import Path

from mpfas.core.atomic import write_json
from mpfas.core.config import Protocol
from mpfas.core.stage import stage_main
from mpfas.data import check_params, read_index
from mpfas.data.oulu_protocols import all_oulu_folds
from mpfas.manifests.build import (
    OULU_DOMAINS,
    Manifest,
    count_rows,
    plan_manifest,
    plan_oulu_manifest,
    read_faces_index,
    read_manifest,
    write_manifest,
)

parser = argparse.ArgumentParser(description="Write one split CSV per protocol.")
parser.add_argument("--index", type=Path, required=True, help="folder of the index CSVs (<code>.csv)")
parser.add_argument("--faces", type=Path, required=True, help="faces folder (<code>/faces.csv per dataset)")
parser.add_argument("--out", type=Path, required=True, help="folder of the manifests (<protocol>.csv)")
parser.add_argument("--metrics", type=Path, required=True, help="counts per protocol, role and domain (JSON)")


@stage_main(parser, sections=("manifests", "data"), checks=(check_params,))
def main(params, args) -> None:
    codes = params.data.datasets
    videos = {code: read_index(args.index / f"{code}.csv", code) for code in codes}
    faces: dict[str, list[str]] = {}
    for code in codes:
        faces.update(read_faces_index(args.faces / code / "faces.csv"))
    summary = {"target_set": params.manifests.target_set, "protocols": {}, "excluded_no_face": {}}
    for name, protocol in params.manifests.protocols.items():
        missing = [d for d in protocol.domains if d not in codes]
        if missing:
            print(f"{name}: no manifest, data.datasets lacks {missing}")
            continue
        manifest = plan_manifest(name, protocol, videos, faces, params.manifests)
        _write(name, manifest, args, protocol=protocol)
        summary["protocols"][name] = count_rows(manifest.rows)
        summary["excluded_no_face"][name] = manifest.excluded_counts(protocol)
    if params.manifests.oulu_protocols:  # the keys appear only when asked for: the default summary is unchanged
        summary["oulu_protocols"], summary["oulu_excluded_no_face"] = {}, {}
        for fold in all_oulu_folds(params.manifests.oulu_protocols):
            manifest = plan_oulu_manifest(fold, videos["O"], faces)
            _write(fold.name, manifest, args, protocol=OULU_DOMAINS)
            summary["oulu_protocols"][fold.name] = count_rows(manifest.rows)
            summary["oulu_excluded_no_face"][fold.name] = manifest.excluded_counts(OULU_DOMAINS)
    write_json(args.metrics, summary)


def _write(name: str, manifest: Manifest, args: argparse.Namespace, *, protocol: Protocol) -> None:
    rows = manifest.rows
    write_manifest(rows, args.out / f"{name}.csv")
    read_manifest(args.out / f"{name}.csv", args.faces, protocol=protocol)  # re-read: the checks every reader runs
    roles = Counter(row.role for row in rows)
    print(f"{name}: " + ", ".join(f"{role} {n} videos" for role, n in sorted(roles.items()))
          + f"; {len(manifest.excluded)} without a face left out")


if __name__ == "__main__":
    sys.exit(main())
