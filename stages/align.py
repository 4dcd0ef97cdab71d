"""DVC stage `align@<code>`: MTCNN-detected, 5-point-aligned face crops of one dataset's frames.

Usage: python stages/align.py <O|C|I|M>
"""

import sys
from pathlib import Path

from mpfas.config import DATASET_CODES
from mpfas.datasets import read_index
from mpfas.errors import MpfasError
from mpfas.preprocess.align import run_align
from mpfas.stage import stage_main


@stage_main(reads=("align",))
def main(params, code: str = "") -> None:
    if code not in DATASET_CODES:
        raise MpfasError(f"usage: python stages/align.py <dataset code>, one of {DATASET_CODES}; got {code!r}")
    index = Path(f"data/index/{code}.csv")
    if not index.is_file():
        raise MpfasError(f"{index}: not found; run the raw stage first")
    summary = run_align(read_index(index, code), Path(f"data/frames/{code}/frames.csv"), Path("data/faces") / code,
                        params.align, metrics_path=Path(f"metrics/align_{code}.json"),
                        sheet_path=Path(f"plots/faces_{code}.png"), dataset=code)  # the code picks the limit
    print(f"align {code}: {summary.faces} faces from {summary.frames} frames "
          f"(detection rate {summary.detection_rate:.1%}, {summary.skipped} videos already done); "
          f"{summary.videos_without_face} video(s) with no face in any frame "
          f"({summary.videos_without_face_rate:.1%}, limit align.max_failed_videos.{code}={summary.max_failed_videos})")


if __name__ == "__main__":
    sys.exit(main())
