"""DVC stage `report`: one table over all protocols beside the published numbers."""

import sys

from mpfas.evaluation.report import write_report
from mpfas.presets import PAPER, differences
from mpfas.stage import stage_main


# the report lists every knob that differs from the paper preset
@stage_main(reads=("data.source", "train.protocols", "manifests.protocols", "manifests.target_set",
                   *PAPER.values))
def main(params) -> None:
    summary = write_report(params, preset_differences=differences(params, PAPER))
    for name, p in summary["protocols"].items():
        at_val = "n/a" if p["hter_val_pct"] is None else f"{p['hter_val_pct']:.2f}%"
        print(f"{name}: AUC {p['auc_pct']:.2f}%, HTER@EER {p['hter_eer_pct']:.2f}%, "
              f"HTER@source-val {at_val}, frame oracle HTER {p['frame_hter_oracle_pct']:.2f}% "
              f"({p['selection']} checkpoint, {summary['data_source']} data)")
    print("wrote metrics/summary.json, reports/summary.md, plots/summary.png")


if __name__ == "__main__":
    sys.exit(main())
