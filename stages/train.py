"""DVC stage `train@<protocol>`: meta-learn HFN+MP on the protocol's sources.

Reads data/manifests/<protocol>.csv; writes models/<protocol>/{best,last}.pt and
run.json (the MLflow run id), and metrics/train_<protocol>.json.

Runs unchanged under ``torchrun --nproc_per_node=N stages/train.py <protocol>`` (data-parallel,
gloo on CPU, NCCL on GPU); only rank 0 writes files and MLflow.
"""

import math
import os
import sys
from pathlib import Path

from mpfas.atomic import write_json
from mpfas.config import ConfigError
from mpfas.stage import stage_main


@stage_main(
    reads=("data.source", "model", "manifests.protocols.${item}",
           # recorded in the checkpoints (mpfas.checkpoint.Preprocess)
           "align.crop_size", "align.padding", "align.detect_max_side", "align.select", "align.min_face_size",
           "extract.frames_per_video", "extract.image_ext", "extract.decode",
           "evaluate.faces_per_video", "evaluate.batch_size", "evaluate.precision",  # source-val scoring
           "train.algorithm", "train.first_order", "train.iterations", "train.inner_loops", "train.meta_lr",
           "train.momentum", "train.batch_live", "train.batch_spoof", "train.faces_per_video", "train.seed",
           "train.eval_every", "train.select", "train.device", "train.precision", "train.augment"),
    # cannot change best.pt, last.pt or the metrics: MLflow's experiment, resume and checkpoint
    # cadence, loader threads, and knobs that only enter the run's paper-preset tag
    untracked=("tracking.experiment", "train.resume", "train.checkpoint_every", "train.workers",
               "manifests.val_fraction", "manifests.target_set"),
)
def main(params, protocol: str = "", *extra: str) -> None:
    if not protocol or extra:
        raise ConfigError("usage: python stages/train.py <protocol>  (one of manifests.protocols: "
                          f"{sorted(params.manifests.protocols)})")
    from mpfas.training import train

    result = train(params, protocol, manifest=Path(f"data/manifests/{protocol}.csv"),
                   out_dir=Path(f"models/{protocol}"),
                   params_file=os.environ.get("MPFAS_PARAMS", "params.yaml"))
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
    write_json(Path(f"metrics/train_{protocol}.json"), summary)
    val = (f"source-val HTER {result.best_val['hter']:.4f} AUC {result.best_val['auc']:.4f}"
           if "auc" in result.best_val else "no source-val videos")
    print(f"{protocol}: best iteration {result.best_iteration} ({params.train.select}), {val}, "
          f"{result.seconds_per_iteration:.2f} s/iteration, MLflow run {result.run_id}")


if __name__ == "__main__":
    sys.exit(main())
