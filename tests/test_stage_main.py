"""stage_main: a stage reads only the params sections it declares, and a declared section
edited while the stage runs fails it."""

from __future__ import annotations

import argparse

import pytest

from helpers import param_defaults as dflt
from mpfas.core.stage import UndeclaredSectionError, stage_main, view


def test_an_undeclared_section_fails_when_read():
    params = view(dflt.params(), ("align",), "align@O")
    assert params.align.crop_size == dflt.DEFAULTS.align.crop_size
    assert params.runtime.device == dflt.DEFAULTS.runtime.device  # runtime: readable by every stage
    with pytest.raises(UndeclaredSectionError, match="align@O reads params section 'train'"):
        _ = params.train.iterations


@pytest.fixture
def params_file(tmp_path, monkeypatch):
    path = tmp_path / "params.yaml"
    path.write_text(dflt.PARAMS_FILE.read_text())
    monkeypatch.setenv("MPFAS_PARAMS", str(path))
    return path


def test_stage_reading_an_undeclared_section_fails_with_one_line(params_file, capsys):
    @stage_main(argparse.ArgumentParser(), sections=("align",))
    def main(params, args):
        _ = params.train.iterations

    assert main([]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_a_declared_section_edited_during_the_run_fails_the_stage(params_file, capsys):
    @stage_main(argparse.ArgumentParser(), sections=("align",))
    def main(params, args):
        params_file.write_text(params_file.read_text().replace("padding: 0.37", "padding: 0.3"))

    assert main([]) == 2
    assert "align changed while the stage ran" in capsys.readouterr().err


def test_edits_to_other_sections_are_fine(params_file):
    @stage_main(argparse.ArgumentParser(), sections=("align",))
    def main(params, args):
        params_file.write_text(params_file.read_text().replace("resume: auto", "resume: never"))

    assert main([]) == 0
