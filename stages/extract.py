"""DVC stage `extract@<code>`: evenly spaced frames of every indexed video of one dataset.

Usage: python stages/extract.py <O|C|I|M>
"""

import sys
from pathlib import Path

from mpfas import atomic
from mpfas.config import DATASET_CODES
from mpfas.datasets import read_index
from mpfas.errors import MpfasError
from mpfas.preprocess.extract import run_extract
from mpfas.stage import stage_main


@stage_main(reads=("extract", "data.source", "data.demo_root", "data.roots.${item}"))
def main(params, code: str = "") -> None:
    if code not in DATASET_CODES:
        raise MpfasError(f"usage: python stages/extract.py <dataset code>, one of {DATASET_CODES}; got {code!r}")
    index = Path(f"data/index/{code}.csv")
    if not index.is_file():
        raise MpfasError(f"{index}: not found; run the raw stage first")
    summary = run_extract(read_index(index, code), params.data.root(code), Path("data/frames") / code,
                          params.extract, dataset=code)
    atomic.write_json(Path(f"metrics/extract_{code}.json"), summary.as_dict())
    print(f"extract {code}: {summary.videos} videos ({summary.skipped} already done), {summary.frames} frames, "
          f"{summary.errors} unreadable, {summary.warnings} warnings")


if __name__ == "__main__":
    sys.exit(main())
