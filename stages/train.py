"""DVC stage `train@<protocol>`: meta-learn HFN+MP on the protocol's sources.

Usage (dvc.yaml's cmd): python stages/train.py <protocol> --manifest CSV --faces DIR --out DIR --metrics JSON
    [--loss-curve CSV --val-curve CSV]

Reads the protocol's manifest; writes best.pt, last.pt and run.json (the MLflow run id)
into ``--out``, the training summary to ``--metrics``, and the curves ``dvc plots`` draws.

Runs unchanged under ``torchrun --nproc_per_node=N stages/train.py <protocol> ...`` (data-parallel,
gloo on CPU, NCCL on GPU); only rank 0 writes files and MLflow.
"""

import argparse
import math
import os
import sys
from pathlib import Path

from mpfas.atomic import write_json
from mpfas.config import ConfigError
from mpfas.stage import stage_main

parser = argparse.ArgumentParser(description="Meta-learn HFN+MP on one protocol's source domains.")
parser.add_argument("protocol", help="a name in manifests.protocols")
parser.add_argument("--manifest", type=Path, required=True, help="the protocol's manifest (manifests stage)")
parser.add_argument("--faces", type=Path, required=True, help="aligned faces root (align stage)")
parser.add_argument("--out", type=Path, required=True, help="model folder: best.pt, last.pt, run.json")
parser.add_argument("--metrics", type=Path, required=True, help="training summary (JSON)")
parser.add_argument("--loss-curve", type=Path, help="training losses per iteration (CSV, for dvc plots)")
parser.add_argument("--val-curve", type=Path, help="source-val metrics per validation (CSV, for dvc plots)")


@stage_main(
    parser, item="protocol",
    reads=("data.source", "model", "manifests.protocols.${item}",
           # recorded in the checkpoints (mpfas.checkpoint.Preprocess)
           "align.crop_size", "align.padding", "align.detect_max_side", "align.select", "align.min_face_size",
           "extract.frames_per_video", "extract.image_ext", "extract.decode",
           "evaluate.faces_per_video", "evaluate.batch_size", "evaluate.precision",  # source-val scoring
           "train.algorithm", "train.first_order", "train.iterations", "train.inner_loops", "train.meta_lr",
           "train.momentum", "train.batch_live", "train.batch_spoof", "train.faces_per_video", "train.seed",
           "train.eval_every", "train.select", "train.device", "train.precision", "train.augment",
           "tracking.system_metrics"),  # on: training reruns to sample them
    # cannot change best.pt, last.pt or the metrics: MLflow's experiment, resume and checkpoint
    # cadence, loader threads, and knobs that only enter the run's paper-preset tag
    untracked=("tracking.experiment", "train.resume", "train.checkpoint_every", "train.workers",
               "manifests.val_fraction", "manifests.target_set"),
)
def main(params, args) -> None:
    protocol = args.protocol
    if protocol not in params.manifests.protocols:
        raise ConfigError(f"usage: python stages/train.py <protocol> ...; got {protocol!r}, "
                          f"known (manifests.protocols): {sorted(params.manifests.protocols)}")
    from mpfas.training import train
    from mpfas.training.curves import Curves

    if (args.loss_curve is None) != (args.val_curve is None):
        raise ConfigError("stages/train.py: give both --loss-curve and --val-curve, or neither")
    curves = Curves.at(args.loss_curve, args.val_curve) if args.loss_curve else None
    result = train(params, protocol, manifest=args.manifest, faces=args.faces, out_dir=args.out,
                   params_file=os.environ.get("MPFAS_PARAMS", "params.yaml"), curves=curves)
    if result.rank != 0:  # data-parallel: rank 0 writes the summary
        return
    summary = {
        "protocol": protocol, "run_id": result.run_id, "select": params.train.select,
        "iterations": result.iterations, "resumed_from": result.start_iteration,
        "best_iteration": result.best_iteration, "device": result.device, "world_size": result.world_size,
        # None when last.pt was already complete and nothing was left to train
        "seconds_per_iteration": (round(result.seconds_per_iteration, 4)
                                  if math.isfinite(result.seconds_per_iteration) else None),
        # null when manifests.val_fraction is 0 (every source video trained)
        "source_val": ({k: result.best_val[k] for k in ("auc", "eer", "hter", "threshold", "videos")}
                       if "auc" in result.best_val else None),
    }
    write_json(args.metrics, summary)
    val = (f"source-val HTER {result.best_val['hter']:.4f} AUC {result.best_val['auc']:.4f}"
           if "auc" in result.best_val else "no source-val videos")
    print(f"{protocol}: best iteration {result.best_iteration} ({params.train.select}), {val}, "
          f"{result.seconds_per_iteration:.2f} s/iteration, MLflow run {result.run_id}")


if __name__ == "__main__":
    sys.exit(main())
