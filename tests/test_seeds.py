"""Multi-seed aggregation (``mpfas seeds aggregate``) on hand-made ``dvc exp show --json`` output.

The shape is DVC 3's: a list of commits, each with ``experiments`` as ranges of ``revs``
and an ``executor`` state; params and metrics per file under ``data``.
"""

from __future__ import annotations

import json
import statistics

import pytest

from mpfas.__main__ import main
from mpfas.experiments.seeds import (
    Stat,
    experiments_from_exp_show,
    group_by_params,
    render_markdown,
    summarise,
)
from mpfas.experiments.sweeps import EVALUATE_DIR, TRAIN_METRICS, queue_args


def _data(seed, *, inner=4, protocols=("OCI-M", "ICM-O"), auc=0.8, hter_val=0.3, hter_eer=0.2, oracle=0.1,
          sv_hter=0.05):
    """One experiment's ``data``: params.yaml and the evaluate/train metrics of each protocol."""
    metrics = {"metrics/raw.json": {"data": {"source": "demo"}}}
    for d, p in zip((0.0, 0.01), protocols):
        metrics[f"metrics/evaluate/{p}.json"] = {"data": {
            "protocol": p,
            "video": {"auc": auc - d, "hter_val": hter_val + d, "hter_eer": hter_eer + d},
            "frame": {"hter_oracle": oracle + d, "auc": 0.5},
            "views": {"paper_style": {"hter": oracle / 2 + d, "auc": 0.7}}}}
        metrics[f"metrics/train_{p}.json"] = {"data": {"source_val": {"hter": sv_hter + d, "auc": 0.9}}}
    params = {"data": {"source": "demo", "protocols": list(protocols)}, "train": {"seed": seed, "inner_loops": inner}}
    return {"rev": "x", "params": {"params.yaml": {"data": params}}, "metrics": metrics}


def _exp(name, rev, data, state="success"):
    return {"revs": [{"rev": rev, "name": name, "data": data, "error": None, "experiments": None}],
            "executor": None if state == "success" else {"state": state}, "name": name}


def _shown(*experiments, baseline=None):
    base = baseline or _data(666)
    return [{"rev": "workspace", "name": None, "data": base, "error": None, "experiments": None},
            {"rev": "a" * 40, "name": "main", "data": base, "error": None, "experiments": list(experiments)}]


def _read(shown, **kw):
    return experiments_from_exp_show(shown, evaluate_dir=EVALUATE_DIR, train_metrics=TRAIN_METRICS, **kw)


SHOWN = _shown(
    _exp("exp-a", "1" * 40, _data(1, hter_val=0.30, oracle=0.10)),
    _exp("exp-b", "2" * 40, _data(2, hter_val=0.40, oracle=0.20)),
    _exp("exp-c", "3" * 40, _data(3, hter_val=0.20, oracle=0.30)),
    _exp("exp-d", "4" * 40, _data(1, inner=2, hter_val=0.5, sv_hter=0.01)),
    _exp("queued", "5" * 40, {"rev": "5", "params": {}, "metrics": {}}, state="queued"),
    _exp("failed", "6" * 40, _data(9), state="failed"),
)


def test_reads_finished_experiments_only():
    found = _read(SHOWN)
    assert [e.name for e in found] == ["exp-a", "exp-b", "exp-c", "exp-d"]  # no workspace, baseline, queued, failed
    a = found[0]
    assert a.params["train.seed"] == 1 and a.params["train.inner_loops"] == 4
    assert list(a.results) == ["OCI-M", "ICM-O", "mean"]
    assert a.results["OCI-M"] == {"video_auc": 0.8, "hter_val": 0.3, "hter_eer": 0.2, "frame_hter_oracle": 0.1,
                                  "paper_hter": 0.05, "paper_auc": 0.7, "source_val_hter": 0.05, "source_val_auc": 0.9}
    assert a.results["ICM-O"]["hter_eer"] == pytest.approx(0.21)
    assert a.results["mean"]["hter_eer"] == pytest.approx(0.205)  # each experiment's mean over its protocols
    assert a.results["mean"]["paper_hter"] == pytest.approx(0.055)
    assert [e.name for e in _read(SHOWN, include_baseline=True)] == ["main", "exp-a", "exp-b", "exp-c", "exp-d"]
    assert [e.name for e in _read(SHOWN, names=["exp-b", "4444444"])] == ["exp-b", "exp-d"]


def test_groups_by_every_param_but_the_seed():
    groups = group_by_params(_read(SHOWN))
    assert [g.label for g in groups] == ["train.inner_loops=4", "train.inner_loops=2"]
    assert [[e.seed for e in g.experiments] for g in groups] == [[1, 2, 3], [1]]
    same = group_by_params(_read(SHOWN, names=["exp-a", "exp-b"]))
    assert len(same) == 1 and same[0].label == "all"


def test_mean_and_sample_std_per_protocol():
    rows = summarise(group_by_params(_read(SHOWN)))
    by = {(r.protocol, r.group): r for r in rows}
    row = by[("OCI-M", "train.inner_loops=4")]
    assert row.seeds == (1, 2, 3) and row.n == 3 and row.experiments == ("exp-a", "exp-b", "exp-c")
    assert row.stats["hter_val"].mean == pytest.approx(0.3)
    assert row.stats["hter_val"].std == pytest.approx(statistics.stdev([0.3, 0.4, 0.2]))
    assert row.stats["frame_hter_oracle"].mean == pytest.approx(0.2)
    assert row.stats["video_auc"].std == pytest.approx(0.0)
    assert by[("ICM-O", "train.inner_loops=4")].stats["hter_val"].mean == pytest.approx(0.31)
    single = by[("OCI-M", "train.inner_loops=2")]
    assert single.n == 1 and single.stats["hter_val"] == Stat(0.5, None, 1)
    assert Stat.of([None, 0.2, float("nan")]) == Stat(0.2, None, 1) and Stat.of([]) == Stat(None, None, 0)


def test_order_is_by_source_val_never_by_target():
    # inner_loops=2 is worse on every target number but better on source-val: it comes first
    rows = summarise(group_by_params(_read(SHOWN)))
    oci = [r for r in rows if r.protocol == "OCI-M"]
    assert [r.group for r in oci] == ["train.inner_loops=2", "train.inner_loops=4"]
    assert oci[0].stats["hter_val"].mean > oci[1].stats["hter_val"].mean
    assert oci[0].stats["source_val_hter"].mean < oci[1].stats["source_val_hter"].mean
    # a setting's target numbers changing does not move it while source-val stays
    better_target = _shown(_exp("x", "7" * 40, _data(1, hter_val=0.0, hter_eer=0.0, oracle=0.0, auc=1.0,
                                                     sv_hter=0.2)),
                           _exp("y", "8" * 40, _data(1, inner=2, hter_val=0.9, hter_eer=0.9, oracle=0.9, auc=0.0,
                                                     sv_hter=0.1)))
    order = [r.group for r in summarise(group_by_params(_read(better_target))) if r.protocol == "OCI-M"]
    assert order == ["train.inner_loops=2", "train.inner_loops=4"]


def test_markdown_table():
    text = render_markdown(summarise(group_by_params(_read(SHOWN))), demo=True)
    assert "DEMO-SYNTHETIC" in text and "never by a target number" in text
    assert "| OCI-M | train.inner_loops=4 | 3 | 1, 2, 3 | 5.00 ± 0.00 | 80.00 ± 0.00 | 30.00 ± 10.00 |" in text
    assert "| OCI-M | train.inner_loops=2 | 1 | 1 | 1.00 ± — |" in text


def test_queue_args():
    assert queue_args([1, 2, 3], ["train.inner_loops=1,4"]) == [
        "exp", "run", "--queue", "-S", "train.seed=1,2,3", "-S", "train.inner_loops=1,4"]
    for bad in ([], [1, 1]):
        with pytest.raises(Exception, match="--seeds"):
            queue_args(bad)
    with pytest.raises(Exception, match="the seeds are --seeds"):
        queue_args([1], ["train.seed=5"])


def test_aggregate_command_writes_table_plot_and_json(tmp_path, monkeypatch, capsys):
    import mpfas.experiments.sweeps

    monkeypatch.setattr(mpfas.experiments.sweeps, "run_dvc", lambda args, cwd=None: json.dumps(SHOWN))
    out, plot, rows = tmp_path / "seeds.md", tmp_path / "seeds.png", tmp_path / "seeds.json"
    assert main(["seeds", "aggregate", "--out", str(out), "--plot", str(plot), "--json", str(rows)]) == 0
    assert out.read_text() == capsys.readouterr().out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 5000
    assert [(r["protocol"], r["setting"], r["n"]) for r in json.loads(rows.read_text())] == [
        ("OCI-M", "train.inner_loops=2", 1), ("OCI-M", "train.inner_loops=4", 3),
        ("ICM-O", "train.inner_loops=2", 1), ("ICM-O", "train.inner_loops=4", 3),
        ("mean", "train.inner_loops=2", 1), ("mean", "train.inner_loops=4", 3)]
    assert main(["seeds", "aggregate", "--exps", "nope", "--out", str(out), "--plot", ""]) == 2
    assert "nope" in capsys.readouterr().err
