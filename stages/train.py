"""DVC stage `train@<protocol>`: meta-learn HFN+MP on the protocol's sources.

Usage (dvc.yaml's cmd): python stages/train.py <protocol> --manifest CSV --faces DIR --out DIR --metrics JSON
    [--loss-curve CSV --val-curve CSV]

Reads the protocol's manifest; writes best.pt, last.pt and run.json (the MLflow run id)
into ``--out``, the training summary to ``--metrics``, and the curves ``dvc plots`` draws.

Runs unchanged under ``torchrun --nproc_per_node=N stages/train.py <protocol> ...`` (data-parallel,
gloo on CPU, NCCL on GPU); only rank 0 writes files and MLflow.
"""

import argparse
import os
import sys
from pathlib import Path

from mpfas.core.atomic import write_json
from mpfas.core.config import ConfigError
from mpfas.core.stage import stage_main
from mpfas.data import check_params
from mpfas.methods import check_model

parser = argparse.ArgumentParser(description="Meta-learn HFN+MP on one protocol's source domains.")
parser.add_argument("protocol", help="a name in manifests.protocols")
parser.add_argument("--manifest", type=Path, required=True, help="the protocol's manifest (manifests stage)")
parser.add_argument("--faces", type=Path, required=True, help="aligned faces root (align stage)")
parser.add_argument("--out", type=Path, required=True, help="model folder: best.pt, last.pt, run.json")
parser.add_argument("--metrics", type=Path, required=True, help="training summary (JSON)")
parser.add_argument("--loss-curve", type=Path, help="training losses per iteration (CSV, for dvc plots)")
parser.add_argument("--val-curve", type=Path, help="source-val metrics per validation (CSV, for dvc plots)")


# training reads the protocol's definition, how faces were made (recorded in the checkpoints), the
# model and training knobs, and how source-val scores
@stage_main(parser, item="protocol",
            sections=("data", "manifests", "extract", "align", "model", "train", "ssdg", "score"),
            checks=(check_params, lambda p: check_model(p.model)))
def main(params, args) -> None:
    protocol = args.protocol
    if protocol not in params.manifests.protocols:
        raise ConfigError(f"usage: python stages/train.py <protocol> ...; got {protocol!r}, "
                          f"known (manifests.protocols): {sorted(params.manifests.protocols)}")
    from mpfas.train import train
    from mpfas.train.curves import Curves

    if (args.loss_curve is None) != (args.val_curve is None):
        raise ConfigError("stages/train.py: give both --loss-curve and --val-curve, or neither")
    curves = Curves.at(args.loss_curve, args.val_curve) if args.loss_curve else None
    result = train(params, protocol, manifest=args.manifest, faces=args.faces, out_dir=args.out,
                   params_file=os.environ.get("MPFAS_PARAMS", "params.yaml"), curves=curves)
    if result.rank != 0:  # data-parallel: rank 0 writes the summary
        return
    write_json(args.metrics, result.summary(params.train.select))
    print(result.describe(params.train.select))


if __name__ == "__main__":
    sys.exit(main())
