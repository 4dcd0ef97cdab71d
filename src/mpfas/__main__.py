"""``python -m mpfas`` (or ``mpfas``): use a trained model outside the pipeline.

    mpfas predict PATH... [--model CKPT | --protocol NAME] [--format json|csv] [--threshold X]
    mpfas export --model CKPT --out model.onnx
    mpfas log-model --protocol NAME
    mpfas preset paper|ssdg-paper [--params YAML] [--pretrained FILE] [--dry-run | --dvc-args]
    mpfas seeds queue --seeds 1 2 3 [-S KEY=VALUE ...] [--start [--jobs N]]
    mpfas seeds aggregate [--exps NAME ...] [--out MD] [--plot PNG] [--json FILE]
    mpfas export-splits --out DIR [--manifests DIR] [--faces DIR] [--frames DIR]
    mpfas plots-template [--check]
    mpfas clean [--dry-run]

Exit status: 0 all good; 1 some inputs could not be scored (the rest are still
printed); 2 bad usage, params or checkpoint (nothing done).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from pathlib import Path

from mpfas.core.errors import MpfasError
from mpfas.core.telemetry import quiet_network


def _params(path: str | None):
    """params.yaml of the cwd (or --params / MPFAS_PARAMS); defaults when there is none."""
    from mpfas.core.config import Params, load_params

    explicit = path or os.environ.get("MPFAS_PARAMS")
    target = Path(explicit or "params.yaml")
    if explicit or target.is_file():
        return load_params(target)
    print(f"note: {target} not found; using the default align/extract params", file=sys.stderr)
    return Params()


def _device(name: str) -> str:
    from mpfas.core.config import ConfigError
    from mpfas.core.device import resolve_device

    try:
        return str(resolve_device(name))
    except ConfigError as exc:
        raise MpfasError(f"--device: {exc}") from None


def cmd_predict(args: argparse.Namespace) -> int:
    import cv2
    from tqdm import tqdm

    from mpfas.serve.predict import InputResult, Predictor, discover, load_model, to_csv, to_json

    params = _params(args.params)
    checkpoint = Path(args.model) if args.model else _default_ckpt(params, args.protocol)
    device = _device(args.device)
    loaded = load_model(checkpoint, device)
    # errors only: a non-video file tried as a video is reported by us, once
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    items = discover(args.paths)
    show = not args.no_progress and (len(items) > 1 or any(Path(p).is_dir() for p in args.paths))
    results = []
    with Predictor(loaded, params, threshold=args.threshold, batch_size=args.batch_size,
                   faces_dir=args.save_faces) as predictor:
        for item in tqdm(items, desc="predict", unit="file", file=sys.stderr, disable=not show):
            if isinstance(item, InputResult):  # a path that does not exist, an empty folder
                item.threshold = predictor.threshold
            result = item if isinstance(item, InputResult) else predictor.predict_file(item)
            if result.error:
                tqdm.write(f"error: {result.error}", file=sys.stderr)
            results.append(result)
        text = to_csv(results) if args.format == "csv" else to_json(
            results, loaded, predictor.threshold, predictor.threshold_source) + "\n"
    sys.stdout.write(text)
    return 0 if all(r.ok for r in results) else 1


def cmd_export(args: argparse.Namespace) -> int:
    from mpfas.serve.export import export_onnx

    params = _params(args.params)  # also what the checkpoint's preprocessing is compared with
    checkpoint = Path(args.model) if args.model else _default_ckpt(params, args.protocol)
    out = Path(args.out) if args.out else checkpoint.with_name("model.onnx")
    report = export_onnx(checkpoint, out, dynamo=not args.legacy, opset=args.opset, tolerance=args.tolerance,
                         params=params)
    print(json.dumps(report.as_dict(), indent=2))
    return 0


def cmd_log_model(args: argparse.Namespace) -> int:
    from mpfas.serve.mlflow_model import log_model

    protocol = args.protocol
    params = _params(args.params)  # what the checkpoint's preprocessing is compared with
    if not args.model:
        protocol = _default_protocol(params, protocol)
    checkpoint = Path(args.model) if args.model else _default_ckpt(params, protocol)
    run_id = args.run_id
    if not run_id:
        run_json = MODELS_DIR / protocol / "run.json" if protocol else checkpoint.with_name("run.json")
        if not run_json.is_file():
            raise MpfasError(f"--run-id not given and {run_json} not found")
        run_id = json.loads(run_json.read_text())["run_id"]
    info = log_model(run_id, checkpoint, tracking_uri=args.tracking_uri, params=params)
    print(json.dumps({"run_id": run_id, "model_uri": info.model_uri, "onnx_model_uri": info.onnx.model_uri,
                      "onnx_seconds": round(info.onnx_seconds, 2), "checkpoint": checkpoint.as_posix()}))
    return 0


def cmd_preset(args: argparse.Namespace) -> int:
    from mpfas.core.presets import apply_preset, differences, dvc_set_args, get_preset

    preset = get_preset(args.name)
    overrides = {"model.pretrained": args.pretrained} if args.pretrained else {}
    if args.dvc_args:
        print(shlex.join(dvc_set_args(preset, overrides)))
        return 0
    path = Path(args.params or os.environ.get("MPFAS_PARAMS") or "params.yaml")
    if not path.is_file():
        raise MpfasError(f"{path}: parameter file not found")
    if args.dry_run:
        from mpfas.core.config import load_params

        diff = differences(load_params(path), preset)
        for key, d in diff.items():
            print(f"{key}: {d['ours']!r} -> {d['preset']!r}")
        print(f"{len(diff)} knob(s) of {path} differ from preset {preset.name!r}")
        return 0
    changed = apply_preset(path, preset, overrides)
    for key, d in changed.items():
        print(f"{key}: {d['old']!r} -> {d['new']!r}")
    print(f"{path}: preset {preset.name!r} applied ({len(changed)} knob(s) changed); "
          "data.source and data.roots are yours to set")
    return 0


def cmd_seeds_queue(args: argparse.Namespace) -> int:
    from mpfas.experiments.sweeps import queue_seeds

    for line in queue_seeds(args.seeds, args.set, start=args.start, jobs=args.jobs):
        print(line)
    if not args.start:
        print("queued; run them with `dvc queue start -j N` (or pass --start), then `mpfas seeds aggregate`")
    return 0


def cmd_seeds_aggregate(args: argparse.Namespace) -> int:
    from mpfas.core import atomic
    from mpfas.experiments.seeds import (
        as_json,
        experiments_from_exp_show,
        group_by_params,
        plot_rows,
        render_markdown,
        summarise,
    )
    from mpfas.experiments.sweeps import EVALUATE_DIR, TRAIN_METRICS, exp_show

    shown = exp_show(all_commits=args.all_commits)
    experiments = experiments_from_exp_show(shown, evaluate_dir=EVALUATE_DIR, train_metrics=TRAIN_METRICS,
                                            names=args.exps, include_baseline=args.include_baseline)
    if args.exps:
        missing = set(args.exps) - {n for e in experiments for n in (e.name, e.rev, e.rev[:7])}
        if missing:
            raise MpfasError(f"--exps: no finished experiment with evaluate metrics named {sorted(missing)} "
                             "(`dvc exp show`; experiments of other commits need --all-commits)")
    if not experiments:
        raise MpfasError("no finished experiment with evaluate metrics (queue some: `mpfas seeds queue`)")
    rows = summarise(group_by_params(experiments))
    demo = any(e.params.get("data.source") == "demo" for e in experiments)
    text = render_markdown(rows, demo=demo)
    atomic.write_text(args.out, text)
    if args.plot:
        plot_rows(rows, args.plot)
    if args.json:
        atomic.write_json(args.json, as_json(rows))
    sys.stdout.write(text)
    return 0


# where dvc.yaml's train stage writes each protocol's model: the CLI's default, not the library's
MODELS_DIR = Path("models")


def _default_protocol(params, protocol: str | None) -> str:
    """``protocol``, else the first of ``data.protocols``."""
    from mpfas.serve.predict import PredictError

    if protocol:
        return protocol
    if not params.data.protocols:
        raise PredictError("no --model or --protocol given and data.protocols is empty")
    return params.data.protocols[0]


def _default_ckpt(params, protocol: str | None) -> Path:
    return MODELS_DIR / _default_protocol(params, protocol) / "best.pt"


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be > 0")
    return value


def cmd_export_splits(args: argparse.Namespace) -> int:
    from mpfas.manifests.export import export_splits, frame_counts, read_manifests

    manifests = read_manifests(Path(args.manifests), Path(args.faces))
    frames_of = frame_counts(Path(args.frames)) if args.frames else None
    written = export_splits(manifests, Path(args.out), frames_of)
    print(f"{len(manifests)} protocol(s), {len(written)} files under {args.out} (conventions: {args.out}/README.md)")
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    from mpfas.core.config import load_params
    from mpfas.core.paths import main_root
    from mpfas.experiments.cleanup import clean, kept_models, render

    root = main_root()
    path = Path(args.params or os.environ.get("MPFAS_PARAMS") or root / "params.yaml")
    if not path.is_file():  # its protocols say which models/<P>/ are kept: no defaults here
        raise MpfasError(f"{path}: parameter file not found")
    categories = clean(root, kept_models(load_params(path)), dry=args.dry_run)
    sys.stdout.write(render(categories, args.dry_run))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mpfas", description="Use a trained HFN+MP face anti-spoofing model.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def model_args(p: argparse.ArgumentParser) -> None:
        g = p.add_mutually_exclusive_group()
        g.add_argument("--model", metavar="CKPT", help="checkpoint (default: models/<first data.protocols>/best.pt)")
        g.add_argument("--protocol", metavar="NAME", help="use models/NAME/best.pt")
        p.add_argument("--params", metavar="YAML", help="params file (default: $MPFAS_PARAMS or ./params.yaml)")

    p = sub.add_parser("predict", help="score faces in images, videos or folders",
                       description="Detect and align faces as the pipeline does (with the align and extract "
                                   "settings the checkpoint was trained on), score them, and print per-face and "
                                   "per-input scores with a live/spoof decision (live iff score >= threshold).")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image, video, or folder (searched recursively)")
    model_args(p)
    p.add_argument("--format", choices=("json", "csv"), default="json", help="output on stdout (default json)")
    p.add_argument("--threshold", type=float, help="decision threshold (default: the checkpoint's source-val EER "
                                                   "threshold)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CUDA when available")
    p.add_argument("--batch-size", type=_positive_int, help="faces per forward pass (default score.batch_size)")
    p.add_argument("--save-faces", metavar="DIR", help="keep the aligned face crops in DIR")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="export a checkpoint to ONNX (checked against PyTorch with onnxruntime)")
    model_args(p)
    p.add_argument("--out", metavar="ONNX", help="output file (default: model.onnx beside the checkpoint)")
    p.add_argument("--opset", type=int, default=18)
    p.add_argument("--legacy", action="store_true", help="TorchScript exporter (dynamo=False) instead of dynamo")
    p.add_argument("--tolerance", type=float, default=1e-4, help="max abs difference allowed vs PyTorch")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("log-model", help="log a checkpoint as MLflow pyfunc and ONNX models into its training run")
    model_args(p)
    p.add_argument("--run-id", help="MLflow run (default: models/<protocol>/run.json)")
    p.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI or sqlite:///<repo root>/mlflow.db")
    p.set_defaults(func=cmd_log_model)

    from mpfas.core.presets import PRESETS

    p = sub.add_parser("preset", help="switch params.yaml to a named setting (paper: the official HFN+MP; "
                                      "ssdg-paper: the official SSDG-R)",
                       description="Write every knob of the preset into params.yaml in place (comments kept, "
                                   "validated before writing). data.source and data.roots are not touched.")
    p.add_argument("name", choices=sorted(PRESETS))
    p.add_argument("--params", metavar="YAML", help="params file (default: $MPFAS_PARAMS or ./params.yaml)")
    p.add_argument("--pretrained", metavar="FILE",
                   help="ImageNet weights file (default: the preset's, e.g. weights/resnet50-19c8e357.pth for "
                        "paper, from the repo root)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--dry-run", action="store_true", help="list the knobs that would change; write nothing")
    g.add_argument("--dvc-args", action="store_true",
                   help="print the preset as `-S key=value` arguments for `dvc exp run` instead")
    p.set_defaults(func=cmd_preset)

    p = sub.add_parser("seeds", help="multi-seed results: queue one DVC experiment per seed, aggregate them",
                       description="queue: `dvc exp run --queue -S train.seed=1,2,3 [-S ...]`. aggregate: read "
                                   "`dvc exp show --json`, group experiments by every param but train.seed, "
                                   "and write mean +- std per protocol. Rows are ordered by source-val HTER, "
                                   "never by a target number.")
    seeds = p.add_subparsers(dest="seeds_command", required=True, metavar="ACTION")
    q = seeds.add_parser("queue", help="queue one experiment per seed (dvc exp run --queue)")
    q.add_argument("--seeds", type=int, nargs="+", required=True, metavar="N", help="values of train.seed")
    q.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE",
                   help="more params for every experiment, as `dvc exp run -S` (sweep syntax allowed)")
    q.add_argument("--start", action="store_true", help="then start the queue (`dvc queue start -j JOBS`)")
    q.add_argument("--jobs", type=_positive_int, default=1, help="queue workers with --start (default 1)")
    q.set_defaults(func=cmd_seeds_queue)
    a = seeds.add_parser("aggregate", help="mean +- std over seeds per protocol: a Markdown table and a plot")
    a.add_argument("--exps", nargs="+", metavar="NAME", help="only these experiments (default: every finished "
                                                             "experiment of HEAD, or of all commits with -A)")
    a.add_argument("-A", "--all-commits", action="store_true", help="experiments of every commit, not only HEAD")
    a.add_argument("--include-baseline", action="store_true", help="also count the baseline commit(s) as runs")
    a.add_argument("--out", default="reports/seeds.md", metavar="MD", help="default reports/seeds.md")
    a.add_argument("--plot", default="plots/seeds.png", metavar="PNG", help="default plots/seeds.png; '' = none")
    a.add_argument("--json", metavar="FILE", help="also the rows as JSON")
    a.set_defaults(func=cmd_seeds_aggregate)

    p = sub.add_parser("export-splits", help="write every manifest as MetaPattern CSV, SSDG JSON, plain list and "
                                             "the repository's CSV",
                       description="Split lists for other codebases; label conventions in DIR/README.md.")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--manifests", default="data/manifests", metavar="DIR", help="default: data/manifests")
    p.add_argument("--faces", default="data/faces", metavar="DIR", help="aligned faces root (default: data/faces)")
    p.add_argument("--frames", metavar="DIR", help="extracted frames root (e.g. data/frames): fills the "
                                                    "MetaPattern `frames` column (default: the face count)")
    p.set_defaults(func=cmd_export_splits)

    p = sub.add_parser("plots-template", help="write the offline page template of `dvc plots show/diff`",
                       description="Inline the Vega libraries of the pinned vl-convert-python into "
                                   ".dvc/plots/offline.html (run from the repository root after changing its "
                                   "pin), so DVC's plot pages render with no network.")
    p.add_argument("--check", action="store_true", help="only check the file is up to date (exit 1 if not)")
    p.set_defaults(func=cmd_plots_template)

    p = sub.add_parser("clean", help="remove what finished or abandoned experiments left; print the bytes freed",
                       description="Remove DVC's leftover experiment copies (tmp/exps inside .dvc), models/<P>/ of "
                                   "protocols not in data.protocols and temp files of killed writes, MLflow runs "
                                   "deleted in the UI with their artifacts (mlflow gc), and DVC cache objects no "
                                   "commit, experiment or the workspace uses (dvc gc -w -A --all-experiments); "
                                   "relink second copies of cached outputs (dvc checkout --relink, only while "
                                   "dvc status is clean). Temp copies and the cache are left alone while "
                                   "experiments are queued or running. last.pt (the resume point) is kept.")
    p.add_argument("--dry-run", action="store_true", help="list what would go and the bytes; delete nothing")
    p.add_argument("--params", metavar="YAML", help="whose data.protocols are kept (default: $MPFAS_PARAMS or "
                                                    "the repository root's params.yaml)")
    p.set_defaults(func=cmd_clean)
    return parser


def cmd_plots_template(args: argparse.Namespace) -> int:
    from mpfas.experiments.plots_page import TEMPLATE, template_html, write_template

    if args.check:
        current = TEMPLATE.read_text(encoding="utf-8") if TEMPLATE.is_file() else None
        if current != template_html():
            print(f"{TEMPLATE}: out of date with the installed vl-convert-python; run "
                  "`python -m mpfas plots-template`", file=sys.stderr)
            return 1
        print(f"{TEMPLATE}: up to date")
        return 0
    print(write_template())
    return 0


def main(argv: list[str] | None = None) -> int:
    quiet_network()
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return args.func(args)
    except (MpfasError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
