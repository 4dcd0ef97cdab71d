"""DVC stage `evaluate@<protocol>`: score target and source-val videos, write metrics and plots.

Usage (dvc.yaml's cmd): python stages/evaluate.py <protocol> --model PT --run JSON --manifest CSV
    --faces DIR --curve CSV --scores CSV --metrics JSON --roc JSON --plots DIR
"""

import argparse
import sys
from pathlib import Path

from mpfas.core.stage import stage_main
from mpfas.evaluate.protocol import Outputs, evaluate_protocol
from mpfas.evaluate.scoring import EvaluationError
from mpfas.serve.mlflow_model import publish_best

parser = argparse.ArgumentParser(description="Score one protocol's videos with its selected checkpoint.")
parser.add_argument("protocol", help="a name in manifests.protocols")
parser.add_argument("--model", type=Path, required=True, help="the checkpoint (train stage's best.pt)")
parser.add_argument("--run", type=Path, required=True, help="run.json naming the MLflow run to log to")
parser.add_argument("--manifest", type=Path, required=True, help="the protocol's manifest (manifests stage)")
parser.add_argument("--faces", type=Path, required=True, help="faces folder the manifest's paths lie in")
parser.add_argument("--curve", type=Path, required=True,
                    help="training's validation curve (train stage): the paper-style and last-N views")
parser.add_argument("--scores", type=Path, required=True, help="per-frame target scores (CSV)")
parser.add_argument("--metrics", type=Path, required=True, help="metrics (JSON)")
parser.add_argument("--roc", type=Path, required=True, help="target ROC points (JSON, a DVC plot)")
parser.add_argument("--plots", type=Path, required=True, help="folder of ROC, DET and histogram images")


@stage_main(parser, item="protocol",
            sections=("score", "evaluate", "data", "manifests"))
def main(params, args) -> None:
    protocol = args.protocol
    if protocol not in params.manifests.protocols:
        raise EvaluationError(f"usage: python stages/evaluate.py <protocol> ...; got {protocol!r}, "
                              f"known (manifests.protocols): {sorted(params.manifests.protocols)}")
    done = evaluate_protocol(params, protocol, params.manifests.protocols[protocol], checkpoint=args.model,
                             run_json=args.run, manifest=args.manifest, faces=args.faces,
                             out=Outputs(args.scores, args.metrics, args.roc, args.plots), curve=args.curve)
    publish_best(protocol, done.run_id, args.model)  # best.pt as MLflow models in the protocol's run, registered
    print(done.describe())


if __name__ == "__main__":
    sys.exit(main())
