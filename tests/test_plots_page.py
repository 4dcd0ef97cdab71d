"""`dvc plots show` / `dvc plots diff` pages that render offline: the committed template and
the curves the train stage writes for them."""

import configparser
import csv
import re
from pathlib import Path

from mpfas.experiments.plots_page import TEMPLATE, template_html
from mpfas.train.curves import Curve

REPO = Path(__file__).resolve().parents[1]


def test_committed_template_is_what_the_pinned_vl_convert_gives():
    committed = (REPO / TEMPLATE).read_text(encoding="utf-8")
    assert committed == template_html(), "run `python -m mpfas plots-template` and commit the file"


def test_dvc_config_points_at_the_template_and_it_needs_no_network():
    config = configparser.ConfigParser()
    config.read(REPO / ".dvc/config")
    assert (REPO / ".dvc" / config["plots"]["html_template"]).resolve() == (REPO / TEMPLATE).resolve()
    page = (REPO / TEMPLATE).read_text(encoding="utf-8")
    assert page.count("{plot_divs}") == 1  # DVC fills every occurrence
    assert "{scripts}" not in page  # DVC's CDN <script src> tags go there
    assert not re.search(r"<script[^>]*\bsrc=", page), "the template must not load scripts from anywhere"
    assert "window.vegaEmbed" in page


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_curve_appends_rows_and_a_resume_keeps_only_rows_up_to_its_start(tmp_path):
    curve = Curve(tmp_path / "loss" / "P.csv")
    curve.restart(0)
    for it in range(1, 6):
        curve.append(it, {"meta_train_loss": 1.0 / it, "lr_hfn": 0.01})
    assert [r["step"] for r in _rows(curve.path)] == ["1", "2", "3", "4", "5"]
    assert float(_rows(curve.path)[1]["meta_train_loss"]) == 0.5
    curve.restart(3)  # resumed from last.pt at iteration 3: rows 4 and 5 are redone
    assert [r["step"] for r in _rows(curve.path)] == ["1", "2", "3"]
    curve.restart(0)  # a fresh run starts a fresh file
    assert not curve.path.exists()


def test_curve_drops_a_row_cut_short_by_a_kill_and_widens_for_a_new_column(tmp_path):
    curve = Curve(tmp_path / "c.csv")
    curve.append(1, {"a": 1.0, "b": 2.0})
    curve.append(2, {"a": 3.0, "b": 4.0})
    with curve.path.open("a") as f:
        f.write("3,5.0")  # killed mid-row
    curve.restart(3)
    assert [r["step"] for r in _rows(curve.path)] == ["1", "2"]
    curve.append(3, {"a": 5.0, "b": 6.0, "c": 7.0})
    rows = _rows(curve.path)
    assert list(rows[0]) == ["step", "a", "b", "c"] and rows[0]["c"] == "" and rows[2]["c"] == "7.0"
