"""stage_main: a stage can use only the params it declares, and a params edit during the run fails it."""

from __future__ import annotations

import argparse
import dataclasses
import json
import pickle
import sys
from pathlib import Path

import pytest
from mpfas.core.params_view import UndeclaredParamError, flatten, view

import param_defaults as dflt
from mpfas.core.config import load_params
from mpfas.core.presets import differences
from mpfas.core.stage import stage_main

REPO = Path(__file__).resolve().parents[1]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("protocol")
    return parser


@pytest.fixture
def params_file(tmp_path, monkeypatch):
    """A copy of the repository's params.yaml that the stage under test reads."""
    path = tmp_path / "params.yaml"
    path.write_text((REPO / "params.yaml").read_text())
    monkeypatch.setenv("MPFAS_PARAMS", str(path))
    monkeypatch.setattr(sys, "argv", ["stages/demo_stage.py", "OCI-M"])
    return path


def test_an_undeclared_key_fails_when_used():
    params = view(load_params(REPO / "params.yaml"), ["train.seed", "model"])
    assert params.train.seed == 666 and params.model.backbone == "resnet18"
    for use in (lambda: params.train.iterations + 1, lambda: f"{params.train.iterations}",
                lambda: params.train.iterations == 100, lambda: bool(params.align.padding)):
        with pytest.raises(UndeclaredParamError, match=r"^params key 'train.iterations'|^params key 'align"):
            use()
    with pytest.raises(UndeclaredParamError, match=r"'align\.crop_size'"):
        differences(params)  # the paper-preset comparison reads align.crop_size
    # a section with undeclared keys still converts as a whole; MLflow logs only declared keys
    assert dataclasses.asdict(params.train)["seed"] == 666
    assert set(flatten(params)) == {"train.seed"} | {f"model.{f.name}" for f in dataclasses.fields(params.model)}


def test_mapping_entries_are_declared_one_by_one():
    params = view(load_params(REPO / "params.yaml"), ["manifests.protocols.OCI-M", "data.roots.O"])
    assert params.manifests.protocols["OCI-M"].target == "M"
    assert "MI-C" in params.manifests.protocols  # the names are visible, the values are not
    with pytest.raises(UndeclaredParamError, match=r"'manifests\.protocols\.MI-C'"):
        _ = params.manifests.protocols["MI-C"].target
    with pytest.raises(UndeclaredParamError, match=r"'data\.source'"):
        params.data.root("O")  # methods read through the view too


def test_a_view_section_pickles_as_the_plain_dataclass():
    """Extract hands its section to spawned worker processes."""
    section = view(load_params(REPO / "params.yaml"), ["extract"]).extract
    assert pickle.loads(pickle.dumps(section)) == dflt.extract(**dataclasses.asdict(section))


def test_stage_reading_an_undeclared_key_fails_with_one_line(params_file, capsys):
    @stage_main(_parser(), item="protocol", reads=("train.seed",))
    def main(params, args) -> None:
        print(params.train.seed + params.train.iterations)

    assert main() == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: params key 'train.iterations' is used by this stage but not declared")
    assert "\n" not in err


def test_item_is_the_stage_argument(params_file, tmp_path, monkeypatch):
    monkeypatch.setenv("MPFAS_PARAMS_TRACE", str(tmp_path / "trace"))

    @stage_main(_parser(), item="protocol", reads=("manifests.protocols.${item}",), untracked=("train.workers",))
    def main(params, args) -> None:
        assert params.manifests.protocols[args.protocol].sources == ["O", "C", "I"]

    assert main() == 0
    trace = json.loads((tmp_path / "trace/demo_stage@OCI-M.json").read_text())
    assert trace == {"reads": ["manifests.protocols.OCI-M"], "untracked": ["train.workers"],
                     "seen": ["manifests.protocols"]}


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_a_declared_param_edited_during_the_run_fails_the_stage(params_file, capsys):
    """DVC records params when the stage ends: outputs of seed 666 must not be locked as seed 7."""
    ran = []

    @stage_main(_parser(), item="protocol", reads=("train.seed", "model"), untracked=("train.workers",))
    def main(params, args) -> None:
        ran.append(params.train.seed)
        _edit(params_file, "  seed: 666\n  eval_every", "  seed: 7\n  eval_every")  # train.seed only
        _edit(params_file, "input_size: 128", "input_size: 96")

    assert main() == 2 and ran == [666]
    err = capsys.readouterr().err
    assert "model, train.seed changed while the stage ran" in err and "re-run the stage" in err
    assert str(params_file) in err


def test_edits_to_keys_the_stage_does_not_depend_on_are_fine(params_file):
    @stage_main(_parser(), item="protocol", reads=("train.seed",), untracked=("train.workers",))
    def main(params, args) -> None:
        _edit(params_file, "workers: 0 ", "workers: 3 ")  # untracked: not a DVC param
        _edit(params_file, "meta_lr: 0.01 ", "meta_lr: 0.02 ")  # another stage's key
        _edit(params_file, "# The single source", "# The one source")  # a comment

    assert main() == 0


def test_a_params_file_broken_during_the_run_fails_the_stage(params_file, capsys):
    @stage_main(_parser(), item="protocol", reads=("train.seed",))
    def main(params, args) -> None:
        params_file.write_text("train: [unclosed\n")

    assert main() == 2
    assert "unreadable after the stage ran" in capsys.readouterr().err


def test_paths_come_from_the_given_arguments(params_file, tmp_path):
    """A stage reads its paths from its argv (dvc.yaml's cmd); a missing one is a usage error."""
    parser = _parser()
    parser.add_argument("--out", type=Path, required=True)
    written = []

    @stage_main(parser, item="protocol", reads=("manifests.protocols.${item}",))
    def main(params, args) -> None:
        assert params.manifests.protocols[args.protocol].target == "M"
        written.append(args.out)

    assert main(["OCI-M", "--out", str(tmp_path / "x.json")]) == 0
    assert written == [tmp_path / "x.json"]
    with pytest.raises(SystemExit) as info:  # argparse: usage on stderr, exit status 2
        main(["OCI-M"])
    assert info.value.code == 2 and written == [tmp_path / "x.json"]
