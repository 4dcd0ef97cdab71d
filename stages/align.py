"""DVC stage `align@<code>`: MTCNN-detected, 5-point-aligned face crops of one dataset's frames.

Usage (dvc.yaml's cmd): python stages/align.py <code> --index CSV --frames CSV --out DIR --metrics JSON --sheet PNG
"""

import argparse
import sys
from pathlib import Path

from mpfas.core.errors import MpfasError
from mpfas.core.stage import stage_main
from mpfas.data import dataset_codes, read_index
from mpfas.preprocess.align import run_align

parser = argparse.ArgumentParser(description="Detect and align the faces in one dataset's frames.")
parser.add_argument("code", help="a registered dataset code (one of data.datasets)")
parser.add_argument("--index", type=Path, required=True, help="the dataset's index CSV (raw stage)")
parser.add_argument("--frames", type=Path, required=True, help="the dataset's frames.csv (extract stage)")
parser.add_argument("--out", type=Path, required=True, help="faces folder of the dataset")
parser.add_argument("--metrics", type=Path, required=True, help="detection summary (JSON)")
parser.add_argument("--sheet", type=Path, required=True, help="contact sheet PNG of aligned faces")


@stage_main(parser, item="code", sections=("align",))
def main(params, args) -> None:
    code = args.code
    if code not in dataset_codes():
        raise MpfasError(f"usage: python stages/align.py <dataset code>, one of {dataset_codes()}; got {code!r}")
    if not args.index.is_file():
        raise MpfasError(f"{args.index}: not found; run the raw stage first")
    summary = run_align(read_index(args.index, code), args.frames, args.out, params.align,
                        metrics_path=args.metrics, sheet_path=args.sheet, dataset=code,  # the code picks the limit
                        workers=params.runtime.align_workers)
    print(f"align {code}: {summary.faces} faces from {summary.frames} frames "
          f"(detection rate {summary.detection_rate:.1%}, {summary.skipped} videos already done); "
          f"{summary.videos_without_face} video(s) with no face in any frame "
          f"({summary.videos_without_face_rate:.1%}, limit align.max_failed_videos.{code}={summary.max_failed_videos})")


if __name__ == "__main__":
    sys.exit(main())
