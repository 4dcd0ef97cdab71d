"""The raw stage in `real` mode: roots validated, never written, indexed like the demo."""

from dataclasses import replace

import pytest

from mpfas.config import DataConfig, Params
from mpfas.datasets import DatasetError
from mpfas.raw import build_raw, index_datasets
from name_trees import TREES


def real_params(tmp_path, **roots):
    base = {code: str(tmp_path / code) for code in "OCIM"}
    base.update(roots)
    return Params(data=DataConfig(source="real", roots=base, demo_root=str(tmp_path / "raw")))


@pytest.fixture
def trees(tmp_path):
    for code, make in TREES.items():
        make(tmp_path / code)
    return tmp_path


def test_real_roots_are_indexed_and_untouched(trees, tmp_path):
    before = sorted(p.relative_to(trees) for p in trees.rglob("*"))
    counts = build_raw(real_params(trees), tmp_path / "index")
    assert {c: v["videos"] for c, v in counts["datasets"].items()} == {"O": 4950, "C": 600, "I": 1200, "M": 280}
    assert sorted((tmp_path / "index").glob("*.csv")) == [tmp_path / "index" / f"{c}.csv" for c in "CIMO"]
    after = sorted(p.relative_to(trees) for p in trees.rglob("*") if "index" not in p.parts and "raw" not in p.parts)
    assert after == before


@pytest.mark.parametrize("problem", ["missing", "empty", "no_rule"])
def test_bad_root_names_dataset_and_param(trees, tmp_path, problem):
    bad = tmp_path / "bad"
    if problem != "missing":
        bad.mkdir()
    if problem == "no_rule":
        (bad / "holiday.avi").touch()
    with pytest.raises(DatasetError) as info:
        index_datasets(real_params(trees, C=str(bad)))
    msg = str(info.value)
    assert "CASIA-FASD" in msg and "data.roots.C" in msg
    if problem == "no_rule":
        assert "match no naming rule" in msg


def test_demo_mode_needs_no_roots():
    assert replace(Params().data, source="demo").root("O").as_posix() == "data/raw/OULU-NPU"


def test_only_data_datasets_are_indexed(trees, tmp_path):
    """A dataset left out of data.datasets is not indexed even when its root is set."""
    params = real_params(trees)
    params = replace(params, data=replace(params.data, datasets=["M", "I", "C"]))
    counts = build_raw(params, tmp_path / "index")
    assert list(counts["datasets"]) == ["C", "I", "M"]  # registry order, whatever the params' order
    assert not (tmp_path / "index" / "O.csv").exists()
