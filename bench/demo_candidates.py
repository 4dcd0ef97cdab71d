"""Demo settings compared on source-val, target numbers reported beside them.

    python bench/demo_candidates.py --candidates resnet18-random,lite0-imagenet,lite0-random
    python bench/demo_candidates.py --candidates lite0-imagenet --seeds 666,1,2 --set train.iterations=200

Each candidate is ``params.yaml`` plus a few overrides (``CANDIDATES``, then ``--set``). For
every protocol in ``data.protocols`` it trains with the library on the pipeline's own
manifests and faces (run ``dvc repro -s manifests`` first) into a temporary folder, then
evaluates the selected checkpoint as the evaluate stage does. Nothing of the workspace is
written; MLflow records go to a throwaway store.

The rule, fixed before any target number was looked at: candidates are ranked by the mean
over protocols (and seeds) of the source-val video HTER of the checkpoint training
selected (lower first), then by the mean source-val video AUC (higher first). Candidates
within ``TIE`` HTER points of the best count as tied, and the cheapest of them (seconds
per iteration) wins: source-val has few videos, and a smaller difference is noise. The
target numbers are printed beside, never ranked on.

Writes ``<out>/candidates.json`` (every run's numbers) and ``<out>/candidates.md`` (the
table) with the command and the machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import torch
import yaml

from mpfas.core.config import parse_params
from mpfas.core.stats import Stat
from mpfas.evaluate.protocol import Outputs, evaluate_protocol
from mpfas.train import train
from mpfas.train.curves import Curves

CANDIDATES: dict[str, dict[str, Any]] = {
    "resnet18-random": {"model.backbone": "resnet18", "model.pretrained": ""},
    "lite0-imagenet": {"model.backbone": "efficientnet_lite0", "model.pretrained": "bundled"},
    "lite0-random": {"model.backbone": "efficientnet_lite0", "model.pretrained": "random"},
    "lite0-imagenet-96px": {"model.backbone": "efficientnet_lite0", "model.pretrained": "bundled",
                            "model.input_size": 96},
    "lite0-imagenet-k2": {"model.backbone": "efficientnet_lite0", "model.pretrained": "bundled",
                          "train.inner_loops": 2},
    "lite0-imagenet-96px-k2": {"model.backbone": "efficientnet_lite0", "model.pretrained": "bundled",
                               "model.input_size": 96, "train.inner_loops": 2},
    "lite0-imagenet-k1": {"model.backbone": "efficientnet_lite0", "model.pretrained": "bundled",
                          "train.inner_loops": 1},
}
TIE = 2.0  # source-val HTER points within which candidates count as equal


def _params(base: dict, overrides: dict[str, Any]):
    raw = json.loads(json.dumps(base))
    for key, value in overrides.items():
        section, name = key.split(".", 1)
        raw[section][name] = value
    return parse_params(yaml.safe_dump(raw), "params.yaml + overrides")


def _value(text: str) -> Any:
    return yaml.safe_load(text)


def run_one(params, protocol: str, work: Path) -> dict[str, Any]:
    """Train and evaluate one protocol; the numbers the table needs (fractions)."""
    out = work / protocol
    curves = Curves.at(out / "loss.csv", out / "val.csv")
    start = time.perf_counter()
    result = train(params, protocol, manifest=f"data/manifests/{protocol}.csv", faces="data/faces",
                   out_dir=out, curves=curves, script="bench/demo_candidates.py")
    train_seconds = time.perf_counter() - start
    done = evaluate_protocol(params, protocol, params.manifests.protocols[protocol], checkpoint=out / "best.pt",
                             run_json=out / "run.json", manifest=Path(f"data/manifests/{protocol}.csv"),
                             faces=Path("data/faces"), curve=curves.source_val.path,
                             out=Outputs(out / "scores.csv", out / "metrics.json", out / "roc.json", out / "plots"))
    m = done.evaluation.metrics
    val = torch.load(out / "best.pt", weights_only=True)["val"]
    return {"protocol": protocol, "seed": params.train.seed, "best_iteration": result.best_iteration,
            "train_seconds": round(train_seconds, 1),
            "seconds_per_iteration": round(train_seconds / params.train.iterations, 3),
            "source_val": {"hter": val["hter"], "auc": val["auc"], "videos": int(val["videos"])},
            "target": {"auc": m["video"]["auc"], "hter_val": m["video"]["hter_val"],
                       "hter_eer": m["video"]["hter_eer"], "videos": m["counts"]["target"]["videos"]}}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def stat(path: tuple[str, str]) -> dict[str, float | None]:
        s = Stat.of(r[path[0]][path[1]] for r in runs)
        return {"mean": s.mean, "std": s.std}
    per_protocol = {}
    for p in dict.fromkeys(r["protocol"] for r in runs):
        mine = [r for r in runs if r["protocol"] == p]
        per_protocol[p] = {"target_auc": dataclasses.asdict(Stat.of(r["target"]["auc"] for r in mine)),
                           "source_val_hter": dataclasses.asdict(Stat.of(r["source_val"]["hter"] for r in mine))}
    return {"source_val_hter": stat(("source_val", "hter")), "source_val_auc": stat(("source_val", "auc")),
            "target_auc": stat(("target", "auc")), "target_hter_val": stat(("target", "hter_val")),
            "seconds_per_iteration": Stat.of(r["seconds_per_iteration"] for r in runs).mean,
            "per_protocol": per_protocol}


def rank(summary: dict[str, dict[str, Any]]) -> list[str]:
    """Source-val only (module doc): tied HTER within TIE points -> the cheapest."""
    order = sorted(summary, key=lambda c: (summary[c]["source_val_hter"]["mean"],
                                           -summary[c]["source_val_auc"]["mean"]))
    best = summary[order[0]]["source_val_hter"]["mean"]
    tied = [c for c in order if summary[c]["source_val_hter"]["mean"] - best <= TIE / 100]
    winner = min(tied, key=lambda c: summary[c]["seconds_per_iteration"])
    return [winner, *[c for c in order if c != winner]]


def render(summary: dict[str, dict[str, Any]], order: list[str], command: str) -> str:
    def pct(s: dict[str, float | None]) -> str:
        if s["mean"] is None:
            return "n/a"
        return f"{100 * s['mean']:.1f}" + ("" if s["std"] is None else f" ± {100 * s['std']:.1f}")
    protocols = list(next(iter(summary.values()))["per_protocol"])
    lines = [f"`{command}` on {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
             f"{date.today().isoformat()}. Ranked on source-val only (bench/demo_candidates.py); target "
             "numbers shown, never ranked on. Video level; mean ± std over protocols and seeds; s / iteration "
             "includes the evaluations.", "",
             "| candidate | source-val HTER % | source-val AUC % | s / iteration | target video AUC % "
             "(mean) | " + " | ".join(f"{p} target AUC %" for p in protocols) + " |",
             "|---|---|---|---|---|" + "---|" * len(protocols)]
    for c in order:
        s = summary[c]
        cells = [c + (" (chosen)" if c == order[0] else ""), pct(s["source_val_hter"]), pct(s["source_val_auc"]),
                 f"{s['seconds_per_iteration']:.2f}", pct(s["target_auc"])]
        cells += [pct(s["per_protocol"][p]["target_auc"]) for p in protocols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--candidates", default=",".join(CANDIDATES), help=f"comma-separated, of {list(CANDIDATES)}")
    ap.add_argument("--seeds", default="", help="train.seed values (default: params.yaml's)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every candidate")
    ap.add_argument("--include", type=Path, action="append", default=[], metavar="JSON",
                    help="also rank the runs of an earlier candidates.json (same machine, same faces)")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", type=Path, default=Path("bench/results") / f"demo-candidates-{date.today().isoformat()}")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    base = yaml.safe_load(Path(args.params).read_text())
    common = dict(kv.split("=", 1) for kv in args.set)
    common = {k: _value(v) for k, v in common.items()}
    names = [c for c in args.candidates.split(",") if c]
    unknown = [c for c in names if c not in CANDIDATES]
    if unknown:
        ap.error(f"--candidates: unknown {unknown}; known {list(CANDIDATES)}")
    seeds = [int(s) for s in args.seeds.split(",") if s] or [base["train"]["seed"]]
    plans = {c: [_params(base, {**CANDIDATES[c], **common, "train.seed": s}) for s in seeds] for c in names}
    args.out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict[str, Any]]] = {}
    for earlier in args.include:
        for c, old in json.loads(earlier.read_text())["runs"].items():
            if c not in names:
                runs[c] = old
    with tempfile.TemporaryDirectory(prefix="mpfas-candidates-") as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(tmp, 'mlflow.db').as_posix()}"
        for c, param_sets in plans.items():
            for params in param_sets:
                for protocol in params.data.protocols:
                    print(f"== {c} seed {params.train.seed} {protocol}", flush=True)
                    run = run_one(params, protocol, Path(tmp) / c / str(params.train.seed))
                    runs.setdefault(c, []).append(run)
                    (args.out / "candidates.json").write_text(json.dumps(
                        {"command": " ".join(sys.argv), "common": common, "candidates": {
                            k: CANDIDATES[k] for k in runs}, "runs": runs}, indent=1) + "\n")
    summary = {c: summarise(r) for c, r in runs.items()}
    order = rank(summary)
    command = "python " + " ".join(sys.argv)
    (args.out / "candidates.json").write_text(json.dumps(
        {"command": command, "common": common, "candidates": {k: CANDIDATES[k] for k in runs}, "runs": runs,
         "summary": summary, "order": order, "cpu": platform.processor(), "cpus": os.cpu_count()}, indent=1) + "\n")
    table = render(summary, order, command)
    (args.out / "candidates.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
