"""DVC stage `raw`: demo synthesis (or real-root validation) and the video index.

Usage (dvc.yaml's cmd): python stages/raw.py --index DIR --sheet PNG --metrics JSON
"""

import argparse
import sys
from pathlib import Path

from mpfas.core.atomic import write_json
from mpfas.core.stage import stage_main
from mpfas.data import check_params
from mpfas.data.raw import build_raw

parser = argparse.ArgumentParser(description="Make (demo) or check (real) the datasets and index their videos.")
parser.add_argument("--index", type=Path, required=True, help="folder of the index CSVs, one per dataset")
parser.add_argument("--sheet", type=Path, required=True, help="contact sheet PNG of the datasets")
parser.add_argument("--metrics", type=Path, required=True, help="counts per dataset (JSON)")


@stage_main(parser, sections=("data", "demo"), checks=(check_params,))
def main(params, args) -> None:
    counts = build_raw(params, args.index, args.sheet)
    write_json(args.metrics, counts)


if __name__ == "__main__":
    sys.exit(main())
