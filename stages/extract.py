"""DVC stage `extract@<code>`: evenly spaced frames of every indexed video of one dataset.

Usage (dvc.yaml's cmd): python stages/extract.py <code> --index CSV --out DIR --metrics JSON
"""

import argparse
import sys
from pathlib import Path

from mpfas.core import atomic
from mpfas.core.errors import MpfasError
from mpfas.core.stage import stage_main
from mpfas.data import check_params, dataset_codes, dataset_root, read_index
from mpfas.preprocess.extract import run_extract

parser = argparse.ArgumentParser(description="Extract evenly spaced frames of one dataset's videos.")
parser.add_argument("code", help="a registered dataset code (one of data.datasets)")
parser.add_argument("--index", type=Path, required=True, help="the dataset's index CSV (raw stage)")
parser.add_argument("--out", type=Path, required=True, help="frames folder of the dataset")
parser.add_argument("--metrics", type=Path, required=True, help="extraction summary (JSON)")


@stage_main(parser, item="code", sections=("data", "extract"), checks=(check_params,))
def main(params, args) -> None:
    code = args.code
    if code not in dataset_codes():
        raise MpfasError(f"usage: python stages/extract.py <dataset code>, one of {dataset_codes()}; got {code!r}")
    if not args.index.is_file():
        raise MpfasError(f"{args.index}: not found; run the raw stage first")
    summary = run_extract(read_index(args.index, code), dataset_root(params.data, code), args.out, params.extract,
                          params.runtime.extract_workers, dataset=code)
    atomic.write_json(args.metrics, summary.as_dict())
    print(f"extract {code}: {summary.videos} videos ({summary.skipped} already done), {summary.frames} frames, "
          f"{summary.errors} unreadable, {summary.warnings} warnings")


if __name__ == "__main__":
    sys.exit(main())
