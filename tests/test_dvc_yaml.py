"""dvc.yaml tracks what each stage runs and reads: code by folder, params by section.

Code: a stage's code deps are its script, ``src/mpfas/core`` and the folders it uses; every
``mpfas`` file the script imports, transitively (at module level or inside functions; imports
under ``if TYPE_CHECKING`` do not run), must lie under one of them. A superset is fine (an edit
there re-runs the stage for nothing); a miss is not (an edit there would leave it stale).
Preprocessing never depends on model, demo, training or evaluation code, training never on
the demo.

Params: the sections a stage script declares (``stage_main(sections=...)``), which are all it
can read, are the sections its dvc.yaml params name (whole, or keys within them); no stage
lists ``runtime``, the knobs that cannot change outputs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from helpers.pipeline_copy import stages_to_run
from helpers.stage_cmd import stage_module
from mpfas.core.config import RUNTIME_SECTIONS, load_params

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
CODE_ROOTS = ("src/", "stages/")
ITEM = "${item}"


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


def sections(name: str) -> tuple[str, ...]:
    """The params sections ``stages/<name>.py`` declares."""
    return stage_module(name).main.sections


STAGES = sorted(dvc_stages())


def test_every_stage_script_is_a_dvc_stage():
    assert sorted(p.stem for p in (REPO / "stages").glob("*.py")) == STAGES


@pytest.mark.parametrize("name", STAGES)
def test_every_file_a_stage_imports_lies_under_its_deps(name):
    deps = [d for d in dvc_stages()[name]["deps"] if d.startswith(CODE_ROOTS)]
    declared, used = declared_code(deps), code_closure(REPO / "stages" / f"{name}.py")
    used.discard("src/mpfas/__init__.py")  # the package root: __version__ only, which no output records
    assert not used - declared, f"dvc.yaml stage {name}: add code deps above {sorted(used - declared)}"
    assert f"stages/{name}.py" in deps and "src/mpfas/core" in deps


FORBIDDEN_CODE = {
    "extract": ("models", "demo", "train", "evaluate"), "align": ("models", "demo", "train", "evaluate"),
    "train": ("demo",), "train_oulu": ("demo",),
}


@pytest.mark.parametrize("name", sorted(FORBIDDEN_CODE))
def test_stages_do_not_depend_on_code_they_never_need(name):
    deps = dvc_stages()[name]["deps"]
    assert not [d for d in deps for f in FORBIDDEN_CODE[name] if _under(d, f"src/mpfas/{f}")], deps


def test_the_import_check_sees_a_miss():
    """A stage whose deps lack a folder it imports is caught (the check can fail)."""
    used = code_closure(REPO / "stages" / "train.py")
    assert "src/mpfas/models/checkpoint.py" in used
    assert "src/mpfas/models/checkpoint.py" not in declared_code(["stages/train.py", "src/mpfas/core"])


@pytest.mark.parametrize("name", STAGES)
def test_params_name_the_sections_the_stage_declares(name):
    dvc_sections = {p.split(".")[0] for p in dvc_stages()[name].get("params", [])}
    declared = set(sections(name))
    assert dvc_sections == declared, (f"stage {name}: dvc.yaml params name sections {sorted(dvc_sections)}, "
                                      f"stages/{name}.py declares {sorted(declared)}")
    assert not dvc_sections & set(RUNTIME_SECTIONS)


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
    # by default only what the default protocols read (ROSE-Youtu is added for its protocols)
    params = load_params(REPO / "params.yaml")
    assert params.data.datasets == params.used_datasets() == ["O", "C", "I", "M"]


def test_the_report_reads_the_paper_presets_sections():
    """The report lists every paper-preset knob set otherwise, so it depends on their sections."""
    from mpfas.core.presets import PAPER

    needed = {k.split(".")[0] for k in PAPER.values} - set(RUNTIME_SECTIONS)
    assert needed <= set(sections("report"))


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


# ---------------------------------------------------------------- runtime edits re-run nothing


