"""bench/demo_candidates.py ranks demo settings on source-val only."""

from __future__ import annotations

import importlib.util

from helpers import REPO

spec = importlib.util.spec_from_file_location("demo_candidates", REPO / "bench" / "demo_candidates.py")
candidates = importlib.util.module_from_spec(spec)
spec.loader.exec_module(candidates)


def _run(protocol: str, val_hter: float, val_auc: float, target_auc: float, seconds: float) -> dict:
    return {"protocol": protocol, "seconds_per_iteration": seconds,
            "source_val": {"hter": val_hter, "auc": val_auc}, "target": {"auc": target_auc, "hter_val": 0.1}}


def test_ranking_sees_source_val_only_and_breaks_near_ties_by_cost():
    runs = {
        "precise-but-slow": [_run("A", 0.00, 1.0, 0.70, 2.0), _run("B", 0.00, 1.0, 0.70, 2.0)],
        "as-good-and-cheap": [_run("A", 0.02, 1.0, 0.60, 1.0), _run("B", 0.00, 0.98, 0.60, 1.0)],
        "best-on-target": [_run("A", 0.20, 0.9, 0.99, 0.5), _run("B", 0.10, 0.9, 0.99, 0.5)],
    }
    summary = {name: candidates.summarise(r) for name, r in runs.items()}
    # 1 point of source-val HTER apart is within TIE: the cheaper wins; the target never counts
    assert candidates.rank(summary) == ["as-good-and-cheap", "precise-but-slow", "best-on-target"]
    assert summary["as-good-and-cheap"]["source_val_hter"]["mean"] == 0.01
    table = candidates.render(summary, candidates.rank(summary), "python bench/demo_candidates.py")
    assert "| as-good-and-cheap (chosen) | 1.0 ± 1.4 | 99.0 ± 1.4 | 1.00 | 60.0 ± 0.0 | 60.0 | 60.0 |" in table
