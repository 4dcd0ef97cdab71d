"""DVC stage `manifests`: one split CSV per protocol, checked for leaks.

metrics/manifests.json: ``protocols.<name>.<role>.<domain>`` videos per class and faces;
``excluded_no_face.<name>.<role>.<domain>`` videos left out for want of an aligned face.
"""

import sys
from collections import Counter
from pathlib import Path

from mpfas.atomic import write_json
from mpfas.config import DATASET_CODES
from mpfas.datasets import read_index
from mpfas.manifests import count_rows, plan_manifest, read_faces_index, read_manifest, write_manifest
from mpfas.stage import stage_main

OUT = Path("data/manifests")


@stage_main(reads=("manifests",))
def main(params) -> None:
    videos = {code: read_index(Path(f"data/index/{code}.csv"), code) for code in DATASET_CODES}
    faces: dict[str, list[str]] = {}
    for code in DATASET_CODES:
        faces.update(read_faces_index(Path(f"data/faces/{code}/faces.csv")))
    summary = {"target_set": params.manifests.target_set, "protocols": {}, "excluded_no_face": {}}
    for name, protocol in params.manifests.protocols.items():
        manifest = plan_manifest(name, protocol, videos, faces, params.manifests)
        rows = manifest.rows
        write_manifest(rows, OUT / f"{name}.csv")
        read_manifest(OUT / f"{name}.csv", protocol=protocol)  # re-read: the checks every reader runs
        summary["protocols"][name] = count_rows(rows)
        summary["excluded_no_face"][name] = manifest.excluded_counts(protocol)
        roles = Counter(row.role for row in rows)
        print(f"{name}: " + ", ".join(f"{role} {n} videos" for role, n in sorted(roles.items()))
              + f"; {len(manifest.excluded)} without a face left out")
    write_json(Path("metrics/manifests.json"), summary)


if __name__ == "__main__":
    sys.exit(main())
