"""DVC stage `train_oulu@<P>`: meta-learn HFN+MP on every fold of OULU-NPU protocol P, in order.

Usage (dvc.yaml's cmd): python stages/train_oulu.py <P> --manifests DIR --faces DIR --out DIR --metrics JSON

P is one of ``manifests.oulu_protocols`` (P1-P4); its folds (one for P1 and P2, six for P3
and P4: ``OULU-P3-<left-out phone>``) train one after another through the same loop as
``stages/train.py``, each from ``<manifests>/<fold>.csv`` into its own ``<out>/<fold>/`` (best.pt,
last.pt, run.json) with its own MLflow run, on the Train split's phones as pseudo-domains
(mpfas.train.protocols). A killed run resumes at the fold and iteration it reached: folds
already complete resume at their last iteration and train no further.
"""

import argparse
import os
import sys
from pathlib import Path

from mpfas.core.atomic import write_json
from mpfas.core.config import ConfigError
from mpfas.core.stage import stage_main
from mpfas.data import check_params
from mpfas.data.oulu_protocols import oulu_folds
from mpfas.methods import check_model

parser = argparse.ArgumentParser(description="Meta-learn HFN+MP on each fold of one OULU-NPU protocol.")
parser.add_argument("protocol", help="P1, P2, P3 or P4 (a name in manifests.oulu_protocols)")
parser.add_argument("--manifests", type=Path, required=True, help="folder of the folds' manifests (<fold>.csv)")
parser.add_argument("--faces", type=Path, required=True, help="aligned faces root (align stage)")
parser.add_argument("--out", type=Path, required=True, help="models folder: <fold>/best.pt, last.pt, run.json")
parser.add_argument("--metrics", type=Path, required=True, help="training summary per fold (JSON)")


# the keys every training stage reads (mpfas.train.keys), and which OULU-NPU protocols are on
@stage_main(parser, item="protocol",
            sections=("data", "manifests", "extract", "align", "model", "train", "ssdg", "score"),
            checks=(check_params, lambda p: check_model(p.model)))
def main(params, args) -> None:
    protocol = args.protocol
    if protocol not in params.manifests.oulu_protocols:
        raise ConfigError(f"usage: python stages/train_oulu.py <P> ...; got {protocol!r}, "
                          f"on (manifests.oulu_protocols): {params.manifests.oulu_protocols}")
    from mpfas.train import train

    folds = {}
    for fold in oulu_folds(protocol):
        result = train(params, fold.name, manifest=args.manifests / f"{fold.name}.csv", faces=args.faces,
                       out_dir=args.out / fold.name, params_file=os.environ.get("MPFAS_PARAMS", "params.yaml"),
                       script="stages/train_oulu.py")
        folds[fold.name] = result.summary(params.train.select)
        if result.rank == 0:
            print(result.describe(params.train.select))
    if result.rank == 0:  # data-parallel: rank 0 writes the summary
        write_json(args.metrics, {"protocol": protocol, "folds": folds})


if __name__ == "__main__":
    sys.exit(main())
