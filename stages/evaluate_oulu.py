"""DVC stage `evaluate_oulu@<P>`: score every fold of OULU-NPU protocol P with its best.pt.

Usage (dvc.yaml's cmd): python stages/evaluate_oulu.py <P> --models DIR --manifests DIR --faces DIR
    --scores DIR --metrics DIR --plots DIR

Each fold is evaluated as ``stages/evaluate.py`` evaluates a protocol (mpfas.evaluate.protocol):
``<scores>/<fold>.csv``, ``<metrics>/<fold>.json``, ``<plots>/<fold>/`` (ROC points and images), logged
to the fold's training run. Its source-val is the Dev split, so the metrics' ``apcer_val``,
``bpcer_val`` and ``acer_val`` are the OULU-NPU rule (Dev EER threshold, rates on Test) that the
report's OULU-NPU table averages over the folds.
"""

import argparse
import sys
from pathlib import Path

from mpfas.core.stage import stage_main
from mpfas.data.oulu_protocols import oulu_folds
from mpfas.evaluate.protocol import Outputs, evaluate_protocol
from mpfas.evaluate.scoring import EvaluationError
from mpfas.manifests.build import OULU_DOMAINS
from mpfas.serve.mlflow_model import publish_best

parser = argparse.ArgumentParser(description="Score each fold of one OULU-NPU protocol with its selected checkpoint.")
parser.add_argument("protocol", help="P1, P2, P3 or P4 (a name in manifests.oulu_protocols)")
parser.add_argument("--models", type=Path, required=True, help="train_oulu's folder: <fold>/best.pt, run.json")
parser.add_argument("--manifests", type=Path, required=True, help="folder of the folds' manifests (<fold>.csv)")
parser.add_argument("--faces", type=Path, required=True, help="faces folder the manifests' paths lie in")
parser.add_argument("--scores", type=Path, required=True, help="folder of per-frame target scores (<fold>.csv)")
parser.add_argument("--metrics", type=Path, required=True, help="folder of metrics (<fold>.json)")
parser.add_argument("--plots", type=Path, required=True, help="folder of <fold>/: ROC points (roc.json) and images")


@stage_main(parser, item="protocol",
            sections=("score", "evaluate", "data", "manifests"))
def main(params, args) -> None:
    protocol = args.protocol
    if protocol not in params.manifests.oulu_protocols:
        raise EvaluationError(f"usage: python stages/evaluate_oulu.py <P> ...; got {protocol!r}, "
                              f"on (manifests.oulu_protocols): {params.manifests.oulu_protocols}")
    for fold in oulu_folds(protocol):
        model = args.models / fold.name / "best.pt"
        done = evaluate_protocol(params, fold.name, OULU_DOMAINS, checkpoint=model,
                                 run_json=args.models / fold.name / "run.json",
                                 manifest=args.manifests / f"{fold.name}.csv", faces=args.faces,
                                 out=Outputs(args.scores / f"{fold.name}.csv", args.metrics / f"{fold.name}.json",
                                             args.plots / fold.name / "roc.json", args.plots / fold.name))
        publish_best(fold.name, done.run_id, model)
        print(done.describe())


if __name__ == "__main__":
    sys.exit(main())
