"""Imports in ``src/mpfas`` run one way: down the layers below, never up, and never in a cycle.

The layers follow the data: base helpers, the params parser (a leaf), the stage wrapper,
the dataset and backbone registries, the demo, preprocessing, manifests,
models, checkpoints, inference, metrics, tracking, then training and evaluation side by
side, serving, and the stage harness, the dvc calls (``mpfas.experiments.sweeps``) and the CLI on
top. A module may import its own layer entry and any lower rank; two different entries
of the same rank are peers and may not import each other (training and evaluation share
only ``evaluation.metrics``, a rank below). Every import counts, at module level or
inside a function; imports under ``if TYPE_CHECKING`` do not run and are left out. The
stage scripts in ``stages/`` sit above everything and are not checked.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

LAYERS: dict[str, int] = {
    "mpfas": 0,  # the package root (its __version__)
    "mpfas.core": 0,  # the folder's empty __init__
    "mpfas.core.errors": 0,
    "mpfas.core.atomic": 1,
    "mpfas.core.paths": 1,
    "mpfas.core.rows": 1,
    "mpfas.core.telemetry": 1,
    "mpfas.core.sampling": 1,
    "mpfas.core.metrics": 1,
    "mpfas.core.selection": 1,
    "mpfas.core.config": 2,  # a leaf: errors only (no registry)
    "mpfas.experiments.plots_page": 2,  # the offline page template of `dvc plots` (atomic writes only)
    "mpfas.core.device": 3,
    "mpfas.core.presets": 3,
    "mpfas.core.stage": 3,
    "mpfas.data": 4,
    "mpfas.models.backbones": 4,
    "mpfas.demo": 5,
    "mpfas.preprocess": 6,
    "mpfas.data.raw": 6,
    "mpfas.manifests": 7,
    "mpfas.manifests.build": 7,
    "mpfas.manifests.export": 8,  # reads and writes manifests: just above them
    "mpfas.models": 8,
    "mpfas.models.checkpoint": 13,  # builds any registered method's network (mpfas.methods)
    "mpfas.models.inference": 10,
    "mpfas.train.data": 11,  # the per-domain sampler every method's trainer draws from
    "mpfas.train.execution": 11,  # the step's memory format
    "mpfas.methods": 12,  # the method registry: each method's network and step
    "mpfas.tracking": 12,
    "mpfas.train": 14,
    "mpfas.evaluate": 14,
    "mpfas.serve": 15,
    "mpfas.experiments": 16,  # multi-seed aggregation over `dvc exp show` output
    "mpfas.experiments.sweeps": 17,  # the dvc subprocess calls of `mpfas seeds`
    "mpfas.experiments.cleanup": 18,  # `mpfas clean`: dvc gc and mlflow gc (through mpfas.experiments.sweeps.run_dvc)
    "mpfas.__main__": 19,
}
"""Rank of each module or package (the longest matching prefix wins); lower never imports higher."""

FORBIDDEN: tuple[tuple[str, str, str], ...] = (
    ("mpfas.evaluate", "mpfas.core.presets", "evaluation gets the preset differences from its caller"),
    ("mpfas.serve", "mpfas.evaluate.scoring", "the frame sampler is mpfas.core.sampling.pick_evenly"),
)
"""Downward imports that are still not allowed: (importer prefix, imported prefix, why)."""

MLFLOW_IMPORTERS = {
    "mpfas.tracking": "training's run and evaluation's metrics",
    "mpfas.tracking.store": "opening the tracking store",
    "mpfas.tracking.lineage": "the experiment's view, dataset inputs and parent runs",
    "mpfas.tracking.models": "logging the models",
    "mpfas.tracking.registry": "the model registry",
    "mpfas.core.telemetry": "drops MLflow's telemetry client when mlflow was imported first",
    "mpfas.serve.mlflow_model": "the pyfunc model's base class; its logging goes through mpfas.tracking",
}
"""The only modules that import ``mlflow``, and why."""


# ------------------------------------------------------------------ the checker

def module_files(src: Path = SRC) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (packages by ``__init__``)."""
    out = {}
    for path in sorted((src / "mpfas").rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST) -> Iterable[ast.Import | ast.ImportFrom]:
    """Every import that can run: anywhere in the module but under ``if TYPE_CHECKING``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        children = list(ast.iter_child_nodes(node))
        if _type_checking(node):  # its ``else`` branch still runs
            children = list(node.orelse)
        stack.extend(children)


def imports_of(name: str, path: Path, modules: Iterable[str]) -> set[str]:
    """The ``mpfas`` modules ``name`` imports (``from pkg import mod`` is ``pkg.mod``)."""
    known, is_pkg = set(modules), path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    out: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [(a.name, []) for a in node.names]
        else:
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            targets = [(target, [a.name for a in node.names])]
        for target, names in targets:
            if target != "mpfas" and not target.startswith("mpfas."):
                continue
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in known]
            out.update(subs or [target])
            if len(subs) < len(names):  # names defined in the package itself
                out.add(target)
    out.discard(name)
    return out


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    files = module_files(src)
    return {name: imports_of(name, path, files) for name, path in files.items()}


def layer_of(module: str, layers: Mapping[str, int] = LAYERS) -> str | None:
    """The longest entry of ``layers`` that is ``module`` or a package above it."""
    best = None
    for prefix in layers:
        below = prefix != "mpfas" and module.startswith(prefix + ".")  # the root's entry is its __init__ only
        if (module == prefix or below) and (best is None or len(prefix) > len(best)):
            best = prefix
    return best


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(graph: Mapping[str, Iterable[str]], layers: Mapping[str, int] = LAYERS,
               forbidden: Iterable[tuple[str, str, str]] = FORBIDDEN) -> list[str]:
    """One line per import that runs up the layers, between peers, or is forbidden,
    and per module without a layer."""
    out = []
    for module in sorted(graph):
        here = layer_of(module, layers)
        if here is None:
            out.append(f"{module}: no layer (add it to LAYERS)")
            continue
        for target in sorted(graph[module]):
            there = layer_of(target, layers)
            if there is None:
                out.append(f"{target}: no layer (add it to LAYERS)")
            elif layers[there] > layers[here]:
                out.append(f"{module} (layer {here}, rank {layers[here]}) imports {target} "
                           f"(layer {there}, rank {layers[there]}): runs up")
            elif layers[there] == layers[here] and there != here:
                out.append(f"{module} imports {target}: {here} and {there} are peers")
            for importer, imported, why in forbidden:
                if _under(module, importer) and _under(target, imported):
                    out.append(f"{module} imports {target}: forbidden ({why})")
    return out


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


# ------------------------------------------------------------------ the package

@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_imports_run_down_the_layers(graph):
    assert violations(graph) == []


def test_no_import_cycles(graph):
    assert cycles(graph) == []


def test_the_params_parser_is_a_leaf(graph):
    """Editing a dataset, a backbone or the demo never touches the code every stage depends on."""
    assert graph["mpfas.core.config"] <= {"mpfas.core.errors"}


def test_only_tracking_talks_to_mlflow():
    importers = {}
    for name, path in module_files().items():
        for node in _import_nodes(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if not getattr(node, "level", 0) and any(n == "mlflow" or n.startswith("mlflow.") for n in names):
                importers[name] = importers.get(name, set()) | set(names)
    assert set(importers) == set(MLFLOW_IMPORTERS), importers
    assert importers["mpfas.serve.mlflow_model"] == {"mlflow.pyfunc"}
    assert importers["mpfas.core.telemetry"] == {"mlflow.telemetry"}


def test_one_place_turns_telemetry_off():
    setters = [name for name, path in module_files().items()
               if "MLFLOW_DISABLE_TELEMETRY" in path.read_text() or "DO_NOT_TRACK" in path.read_text()]
    assert setters == ["mpfas.core.telemetry"]


# ------------------------------------------------------------------ the checker, on fake graphs

def test_checker_finds_upward_peer_forbidden_and_unranked_imports():
    fake = {
        "mpfas.core.config": {"mpfas.core.errors", "mpfas.core.stage"},  # up: config is below the stage wrapper
        "mpfas.train.loop": {"mpfas.core.metrics", "mpfas.evaluate.scoring"},  # peers
        "mpfas.evaluate.report": {"mpfas.core.presets"},  # down, but forbidden
        "mpfas.models.inference": {"mpfas.serve.predict"},  # up
        "mpfas.newthing": set(),  # no layer
        "mpfas.core.errors": set(),
    }
    found = violations(fake)
    assert len(found) == 5, found
    assert any(v.startswith("mpfas.core.config (layer mpfas.core.config, rank 2) imports mpfas.core.stage")
               for v in found)
    assert "mpfas.train.loop imports mpfas.evaluate.scoring: mpfas.train and mpfas.evaluate are peers" \
        in found
    assert any(v.startswith("mpfas.evaluate.report imports mpfas.core.presets: forbidden") for v in found)
    assert any(v.startswith("mpfas.models.inference (layer mpfas.models.inference, rank 10) imports "
                            "mpfas.serve.predict") for v in found)
    assert "mpfas.newthing: no layer (add it to LAYERS)" in found
    assert violations({"mpfas.train.loop": {"mpfas.core.metrics", "mpfas.models.inference"}}) == []


def test_checker_finds_cycles():
    fake = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}, "f": {"g"}, "g": {"f"}}
    assert cycles(fake) == [["a", "b", "c"], ["f", "g"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_checker_reads_relative_function_local_and_type_checking_imports(tmp_path):
    pkg = tmp_path / "mpfas"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "low.py").write_text("")
    (pkg / "high.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "mod.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from .. import low\n"
        "if TYPE_CHECKING:\n    from ..high import X\n"
        "def f():\n    from mpfas.high import Y\n    import mpfas.sub\n")
    graph = import_graph(tmp_path)
    assert graph["mpfas.sub.mod"] == {"mpfas.low", "mpfas.high", "mpfas.sub"}
    (pkg / "sub" / "mod.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import mpfas.high\n")
    assert import_graph(tmp_path)["mpfas.sub.mod"] == set()
