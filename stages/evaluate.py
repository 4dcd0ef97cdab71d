"""DVC stage `evaluate@<protocol>`: score target and source-val videos, write metrics and plots.

Usage (dvc.yaml's cmd): python stages/evaluate.py <protocol> --model PT --run JSON --manifest CSV
    --faces DIR --scores CSV --metrics JSON --roc JSON --plots DIR
"""

import argparse
import logging
import sys
from pathlib import Path

from mpfas.checkpoint import load_model
from mpfas.device import resolve_device
from mpfas.evaluation.evaluate import EvaluationError, evaluate, write_outputs
from mpfas.inference import score_frames
from mpfas.manifests import read_manifest
from mpfas.stage import stage_main
from mpfas.tracking import log_evaluation

log = logging.getLogger("evaluate")

parser = argparse.ArgumentParser(description="Score one protocol's videos with its selected checkpoint.")
parser.add_argument("protocol", help="a name in manifests.protocols")
parser.add_argument("--model", type=Path, required=True, help="the checkpoint (train stage's best.pt)")
parser.add_argument("--run", type=Path, required=True, help="run.json naming the MLflow run to log to")
parser.add_argument("--manifest", type=Path, required=True, help="the protocol's manifest (manifests stage)")
parser.add_argument("--faces", type=Path, required=True, help="faces folder the manifest's paths lie in")
parser.add_argument("--scores", type=Path, required=True, help="per-frame target scores (CSV)")
parser.add_argument("--metrics", type=Path, required=True, help="metrics (JSON)")
parser.add_argument("--roc", type=Path, required=True, help="target ROC points (JSON, a DVC plot)")
parser.add_argument("--plots", type=Path, required=True, help="folder of ROC, DET and histogram images")


@stage_main(parser, item="protocol",
            reads=("evaluate", "train.device", "data.source", "manifests.target_set"),
            untracked=("manifests.protocols.${item}",))  # only to refuse an unknown protocol
def main(params, args) -> None:
    protocol = args.protocol
    if protocol not in params.manifests.protocols:
        raise EvaluationError(f"usage: python stages/evaluate.py <protocol> ...; got {protocol!r}, "
                              f"known (manifests.protocols): {sorted(params.manifests.protocols)}")
    cfg = params.evaluate
    device = resolve_device(params.train.device)
    checkpoint = args.model
    model, ckpt = load_model(checkpoint, device)
    info = ckpt.info(checkpoint)
    info["data_source"] = params.data.source
    info["target_set"] = params.manifests.target_set
    rows = read_manifest(args.manifest, args.faces, protocol=params.manifests.protocols[protocol])

    def score_fn(paths: list[str]):
        return score_frames(model, paths, model.input_size, cfg.batch_size, device, cfg.precision)

    ev = evaluate(protocol, rows, score_fn, cfg, info)
    artifacts = write_outputs(
        ev,
        scores_csv=args.scores,
        metrics_json=args.metrics,
        roc_json=args.roc,
        plot_dir=args.plots,
    )
    # the score CSV can be large on real data; MLflow gets it too (the brief asks for it)
    run_id = log_evaluation(args.run, ev.metrics, artifacts, step=info["iteration"], manifest=args.manifest)
    if run_id:  # best.pt as MLflow models in the protocol's run, once, and registered; never fails the stage
        try:
            from mpfas.serving.mlflow_model import publish

            done = publish(run_id, checkpoint)
            if done.logged is None:
                print(f"{protocol}: MLflow models of this best.pt already in run {run_id}")
            else:
                print(f"{protocol}: MLflow model {done.logged.model_uri}, registered as mpfas-{protocol} "
                      f"version {done.version}" + (" (alias best-source-val)" if done.alias_moved else ""))
        except Exception as exc:  # noqa: BLE001 - the DVC outputs above are the record
            log.warning("best.pt of %s not logged as an MLflow model: %s", protocol, exc)
    v = ev.metrics["video"]
    at_val = "n/a (no source-val)" if v["hter_val"] is None else f"{v['hter_val']:.2%}"
    print(f"{protocol} ({info['selection']} checkpoint, iteration {info['iteration']}): video AUC "
          f"{v['auc']:.4f}, HTER@EER {v['hter_eer']:.2%}, HTER@source-val {at_val}, "
          f"oracle HTER {v['hter_oracle']:.2%}")


if __name__ == "__main__":
    sys.exit(main())
