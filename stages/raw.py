"""DVC stage `raw`: demo synthesis (or real-root validation) and the video index."""

import sys
from pathlib import Path

from mpfas.cli import stage_main
from mpfas.manifests import write_json
from mpfas.raw import build_raw


@stage_main
def main(params) -> None:
    counts = build_raw(params, Path("data/index"), Path("plots/datasets.png"))
    write_json(counts, Path("metrics/raw.json"))


if __name__ == "__main__":
    sys.exit(main())
