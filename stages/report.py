"""DVC stage `report`: one table over all protocols beside the published numbers.

Usage (dvc.yaml's cmd): python stages/report.py --metrics-dir DIR --summary JSON --markdown MD --plot PNG
"""

import argparse
import os
import sys
from pathlib import Path

from mpfas.core.presets import differences, preset_for
from mpfas.core.stage import stage_main
from mpfas.evaluate.report import write_report
from mpfas.tracking import log_pipeline_summary

parser = argparse.ArgumentParser(description="Summarise every protocol beside the published numbers.")
parser.add_argument("--metrics-dir", type=Path, required=True,
                    help="folder holding evaluate/<protocol>.json and align/<code>.json")
parser.add_argument("--summary", type=Path, required=True, help="the summary (JSON)")
parser.add_argument("--markdown", type=Path, required=True, help="the summary table (Markdown)")
parser.add_argument("--plot", type=Path, required=True, help="the summary figure (PNG)")


# the report lists every knob that differs from the paper preset: it reads the preset's sections
@stage_main(parser, sections=("data", "manifests", "align", "model", "train", "ssdg", "score"))
def main(params, args) -> None:
    official = preset_for(params.model.method)  # the run's own method's official setting
    summary = write_report(params, preset_differences=differences(params, official), preset=official.name,
                           metrics_dir=args.metrics_dir,
                           summary_json=args.summary, summary_md=args.markdown, summary_png=args.plot)
    # the table and plot as artifacts of this pipeline run's parent MLflow run (its protocol runs' parent)
    parent = log_pipeline_summary(params.runtime.experiment, os.environ.get("MPFAS_PARAMS", "params.yaml"),
                                  [args.markdown, args.plot])
    if parent:
        print(f"summary logged to MLflow parent run {parent}")
    for name, p in summary["protocols"].items():
        at_val = "n/a" if p["hter_val_pct"] is None else f"{p['hter_val_pct']:.2f}%"
        print(f"{name}: AUC {p['auc_pct']:.2f}%, HTER@EER {p['hter_eer_pct']:.2f}%, "
              f"HTER@source-val {at_val}, frame oracle HTER {p['frame_hter_oracle_pct']:.2f}% "
              f"({p['selection']} checkpoint, {summary['data_source']} data)")
    print(f"wrote {args.summary}, {args.markdown}, {args.plot}")


if __name__ == "__main__":
    sys.exit(main())
