"""dvc.yaml is exact: each stage declares the code it runs and the params it reads, nothing else.

Code: the files a stage runs are its script plus every ``mpfas`` module it imports,
transitively, at module level or inside functions (imports under ``if TYPE_CHECKING`` do
not run), each with the package ``__init__.py`` files that importing it executes. A
stage's code deps in dvc.yaml (paths under ``src/`` and ``stages/``) must name exactly
those files; a listed folder stands for every ``.py`` file under it, so a folder may be
listed only when the stage runs all of it.

Params: each stage script declares its keys (``stage_main(reads=..., untracked=...)``) and
can use no other (``mpfas.core.params_view``); its dvc.yaml ``params:`` must equal ``reads``
(compared field by field: ``model`` equals its six fields), and no ``untracked`` key may
be a DVC param. The slow check runs the tiny pipeline and shows every declared key is
actually read; keys only real data reads are listed in ``REAL_DATA_ONLY``.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import json
import subprocess
import sys
import typing
from collections.abc import Iterable
from pathlib import Path

import pytest
import yaml

from mpfas.core.config import Params, load_params
from mpfas.core.params_view import ITEM, UndeclaredParamError, covers

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
CODE_ROOTS = ("src/", "stages/")
REAL_DATA_ONLY = {"raw": {"data.roots", "data.incomplete"}, "extract": {f"data.roots.{ITEM}"}}
"""Declared keys a demo run does not read: the real dataset roots and what to do when a copy
lacks videos of its release (tests/test_oulu_training.py's real-mode run reads both)."""


def leaf_keys(keys: Iterable[str]) -> set[str]:
    """Keys as the fields they cover (``model`` -> ``model.backbone``, ...), so that two
    spellings of the same declaration compare equal; mapping entries stay as given."""
    out: set[str] = set()
    for key in keys:
        section, _, rest = key.partition(".")
        cls = typing.get_type_hints(Params).get(section)
        if cls is None:
            raise UndeclaredParamError(f"params key {key!r}: no section {section!r} in params.yaml")
        fields = [f.name for f in dataclasses.fields(cls)]
        if not rest:
            out.update(f"{section}.{f}" for f in fields)
        elif rest.split(".")[0] not in fields:
            raise UndeclaredParamError(f"params key {key!r}: no field {rest.split('.')[0]!r} in {section}")
        else:
            out.add(key)
    return out


# ---------------------------------------------------------------- static import closure

def _module_file(module: str) -> Path | None:
    """``src/mpfas/a/b.py`` or ``src/mpfas/a/b/__init__.py`` for ``mpfas.a.b``; None if neither."""
    base = SRC.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _package_of(path: Path) -> str:
    return ".".join(path.relative_to(SRC).parts[:-1])  # a/b.py and a/__init__.py: package a


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imported(path: Path) -> set[str]:
    """``mpfas`` modules the file imports anywhere (absolute and relative), with parents."""
    package = _package_of(path) if path.is_relative_to(SRC) else ""
    names: set[str] = set()
    tree = ast.parse(path.read_text())
    skip = {id(n) for node in ast.walk(tree) if _is_type_checking(node) for n in ast.walk(node) if n is not node}
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # submodules; others drop below
    out = set()
    for name in names:
        parts = name.split(".")
        if parts[0] == "mpfas":
            out.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return {m for m in out if _module_file(m)}


def code_closure(script: Path) -> set[str]:
    """Repo-relative paths of the script and every mpfas file it runs."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo.extend(_module_file(m) for m in _imported(path))
    return {p.relative_to(REPO).as_posix() for p in seen}


def declared_code(deps: list[str]) -> set[str]:
    """dvc.yaml code deps as files: a folder stands for every .py file under it."""
    out = set()
    for dep in deps:
        path = REPO / dep
        assert path.exists(), f"dvc.yaml: dep {dep} does not exist"
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        out.update(f.relative_to(REPO).as_posix() for f in files if "__pycache__" not in f.parts)
    return out


# ---------------------------------------------------------------- dvc.yaml and the stage scripts

def dvc_stages() -> dict[str, dict]:
    """dvc.yaml stages by script name (``stages/<name>.py``), foreach stages by their ``do``."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    out = {}
    for name, stage in stages.items():
        body = stage.get("do", stage)
        script = body["cmd"].split()[1]
        assert script == f"stages/{name}.py", f"dvc.yaml: stage {name} runs {script}"
        out[name] = body
    return out


def stage_module(name: str):
    """``stages/<name>.py`` imported, not run."""
    spec = importlib.util.spec_from_file_location(f"stage_{name}", REPO / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def declaration(name: str):
    """The ``stage_main`` declaration of ``stages/<name>.py``."""
    return stage_module(name).main.declaration


STAGES = sorted(dvc_stages())


def test_every_stage_script_is_a_dvc_stage():
    assert sorted(p.stem for p in (REPO / "stages").glob("*.py")) == STAGES


@pytest.mark.parametrize("name", STAGES)
def test_code_deps_are_exactly_the_files_the_stage_imports(name):
    deps = [d for d in dvc_stages()[name]["deps"] if d.startswith(CODE_ROOTS)]
    declared, used = declared_code(deps), code_closure(REPO / "stages" / f"{name}.py")
    assert not used - declared, f"dvc.yaml stage {name}: add code deps {sorted(used - declared)}"
    assert not declared - used, (f"dvc.yaml stage {name}: {sorted(declared - used)} are not imported by "
                                 f"stages/{name}.py; list the files it imports instead")


@pytest.mark.parametrize("name", STAGES)
def test_params_are_exactly_the_keys_the_stage_declares(name):
    dvc_params = leaf_keys(dvc_stages()[name].get("params", []))
    decl = declaration(name)
    reads, untracked = leaf_keys(decl.reads), leaf_keys(decl.untracked)
    assert reads == dvc_params, (f"stage {name}: dvc.yaml params lack {sorted(reads - dvc_params)}, "
                                 f"and list {sorted(dvc_params - reads)} that stages/{name}.py does not read")
    tracked = [k for k in untracked if covers(dvc_params, k) or any(covers([k], d) for d in dvc_params)]
    assert not tracked, f"stage {name}: untracked keys {tracked} are DVC params in dvc.yaml"


# ---------------------------------------------------------------- paths live in dvc.yaml only

PATH_ROOTS = ("data/", "models/", "metrics/", "plots/", "reports/")


def _paths(entries: list) -> list[str]:
    """dvc.yaml outs/metrics/plots/deps as plain paths (an entry may be ``{path: options}``)."""
    return [next(iter(e)) if isinstance(e, dict) else e for e in entries]


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


@pytest.mark.parametrize("name", STAGES)
def test_cmd_parses_with_the_stage_parser_and_passes_every_output(name):
    """Each stage's cmd is a valid command line of its script, and every output path it
    writes is a cmd argument (itself or a folder above it): the script names no path."""
    stage = dvc_stages()[name]
    argv = stage["cmd"].split()[2:]
    parser = stage_module(name).main.parser
    args = vars(parser.parse_args(argv))  # argparse exits on an unknown or missing argument
    given = [str(v) for v in args.values()]
    outputs = [p for key in ("outs", "metrics", "plots") for p in _paths(stage.get(key, []))
               if not p.startswith("${data.")]  # the demo root is a param (data.demo_root)
    assert outputs
    for out in outputs:
        assert any(_under(out, g) for g in given), f"dvc.yaml stage {name}: output {out} is not in its cmd"
    inputs = _paths(stage.get("deps", []))
    for value in given:
        if value.startswith(PATH_ROOTS):
            assert any(_under(value, p) or _under(p, value) for p in inputs + outputs), (
                f"dvc.yaml stage {name}: cmd path {value} is neither a dep nor an output")


@pytest.mark.parametrize("name", STAGES)
def test_stage_scripts_hold_no_data_paths(name):
    """Paths only in dvc.yaml: no string in the script (docstrings aside) names a data path."""
    tree = ast.parse((REPO / "stages" / f"{name}.py").read_text())
    docs = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    literals = [node.value for node in ast.walk(tree)
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs]
    assert not [v for v in literals if any(root in v for root in PATH_ROOTS)], f"stages/{name}.py names paths"


def test_per_dataset_stages_follow_data_datasets():
    """extract and align run once per dataset in params.yaml's data.datasets."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert stages["extract"]["foreach"] == stages["align"]["foreach"] == "${data.datasets}"
    assert load_params(REPO / "params.yaml").data.datasets == ["O", "C", "I", "M", "Y"]


def test_output_neutral_knobs_do_not_retrain():
    """Resume, checkpoint cadence, loader threads and MLflow's experiment leave best.pt alone."""
    train = leaf_keys(dvc_stages()["train"]["params"])
    neutral = {"train.resume", "train.checkpoint_every", "train.workers", "tracking.experiment"}
    assert not neutral & train
    assert neutral <= leaf_keys(declaration("train").untracked)


def test_report_depends_on_what_it_reads():
    """The report reads metrics/evaluate/<P>.json of each protocol, not the score CSVs."""
    deps = dvc_stages()["report"]["deps"]
    assert "metrics/evaluate" in deps and not any(d.startswith("data/") for d in deps)
    evaluate_metrics = [next(iter(m)) for m in dvc_stages()["evaluate"]["metrics"]]
    assert evaluate_metrics == [f"metrics/evaluate/{ITEM}.json"]
    oulu_metrics = [next(iter(m)) for m in dvc_stages()["evaluate_oulu"]["metrics"]]
    assert oulu_metrics == [f"metrics/evaluate/OULU-{ITEM}"]  # the report's OULU-NPU table reads <fold>.json there


def test_oulu_stages_run_only_when_asked_for():
    """By default (manifests.oulu_protocols: []) the OULU-NPU stages have nothing to run."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert stages["train_oulu"]["foreach"] == stages["evaluate_oulu"]["foreach"] == "${manifests.oulu_protocols}"
    assert stages_to_run(REPO) == set(STAGES) - {"train_oulu", "evaluate_oulu"}


# ---------------------------------------------------------------- the keys are really read

def stages_to_run(repo: Path) -> set[str]:
    """The stages of ``repo``'s dvc.yaml that have something to run under its params.yaml: all but
    a ``foreach`` over an empty list (the OULU-NPU stages by default: ``manifests.oulu_protocols: []``)."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    out = set()
    for name, stage in yaml.safe_load((repo / "dvc.yaml").read_text())["stages"].items():
        items = stage.get("foreach", [name])
        if isinstance(items, str):
            assert items.startswith("${") and items.endswith("}"), items
            for part in items[2:-1].split("."):
                items = items[part] if isinstance(items, dict) else params[part]
        if items:
            out.add(name)
    return out


def check_traced_run(repo: Path, trace: Path, stages: tuple[str, ...] = ()) -> None:
    """Called by tests/test_pipeline.py on its tiny ``dvc repro``, run with MPFAS_PARAMS_TRACE
    (one shared run keeps CI short): every stage with something to run ran, and none declares a
    key it never reads (over-declaring re-runs stages for nothing); then the output-neutral knobs
    are edited and nothing is stale. With ``stages`` (tests/test_oulu_training.py: the OULU-NPU
    ones) only those are checked, and only they and what they depend on must be up to date."""
    from pipeline_copy import env

    traces = {p.stem: json.loads(p.read_text()) for p in trace.glob("*.json")}
    ran = {name.split("@")[0] for name in traces}
    if stages:
        assert set(stages) <= ran, sorted(ran)
        traces = {name: t for name, t in traces.items() if name.split("@")[0] in stages}
    else:
        assert ran == stages_to_run(repo)
    for name, t in traces.items():
        stage, _, item = name.partition("@")
        skip = {k.replace(ITEM, item) for k in REAL_DATA_ONLY.get(stage, ())}
        unread = sorted(k for k in leaf_keys(t["reads"] + t["untracked"]) - skip
                        if not any(covers([k], s) or covers([s], k) for s in t["seen"]))
        assert not unread, f"{name}: declared but never read: {unread}"

    original = text = (repo / "params.yaml").read_text()
    params = load_params(repo / "params.yaml")
    for old, new in ((f"workers: {params.train.workers}\n", "workers: 1\n"), ("resume: auto", "resume: never"),
                     ("experiment: mpfas", "experiment: elsewhere")):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    (repo / "params.yaml").write_text(text)
    try:
        dvc = str(Path(sys.executable).parent / "dvc")
        status = subprocess.run([dvc, "status", "--json", *(["--with-deps", *stages] if stages else [])],
                                cwd=repo, env=env(), capture_output=True, text=True, timeout=300)
        assert status.returncode == 0 and json.loads(status.stdout) == {}, status.stdout
    finally:
        (repo / "params.yaml").write_text(original)
