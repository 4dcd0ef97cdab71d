"""DVC stage `raw`: demo synthesis (or real-root validation) and the video index."""

import sys
from pathlib import Path

from mpfas.atomic import write_json
from mpfas.raw import build_raw
from mpfas.stage import stage_main


@stage_main(reads=("data.source", "data.demo_root", "data.roots", "demo"))
def main(params) -> None:
    counts = build_raw(params, Path("data/index"), Path("plots/datasets.png"))
    write_json(Path("metrics/raw.json"), counts)


if __name__ == "__main__":
    sys.exit(main())
