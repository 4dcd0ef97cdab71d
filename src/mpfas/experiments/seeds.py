"""Multi-seed results: DVC experiments grouped by everything but ``train.seed``, as mean ± std.

A single training run of a cross-domain protocol moves by several HTER points with the
seed, so a number worth comparing is a mean over seeds with its spread. The input is
``dvc exp show --json`` (the caller runs DVC); each experiment's metrics are the files
the evaluate and train stages wrote. Where groups are ordered, the order is by the
source-val HTER that training measured, never by a number of the target: choosing a
setting on the target is the leak the leakage-free columns exist to avoid.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from mpfas.core import atomic
from mpfas.core.stats import Stat

SEED_KEY = "train.seed"

TARGET_METRICS: tuple[tuple[str, str, str], ...] = (
    ("video_auc", "video AUC %", "video.auc"),
    ("hter_val", "HTER@source-val %", "video.hter_val"),
    ("hter_eer", "HTER@EER %", "video.hter_eer"),
    ("frame_hter_oracle", "frame oracle HTER %", "frame.hter_oracle"),
    ("paper_hter", "paper-style HTER % (target-selected)", "views.paper_style.hter"),
    ("paper_auc", "paper-style AUC % (target-selected)", "views.paper_style.auc"),
)
"""(key, column, path in metrics/evaluate/<P>.json): the target's numbers, reported, never ranked on.
The paper-style pair is each method's own official selection on the target (mpfas.evaluate.views):
it leaks the test set and is labelled so."""

MEAN = "mean"
"""The pseudo-protocol holding each experiment's mean over its protocols (when every one has the number)."""

SOURCE_METRICS: tuple[tuple[str, str, str], ...] = (
    ("source_val_hter", "source-val HTER %", "source_val.hter"),
    ("source_val_auc", "source-val AUC %", "source_val.auc"),
)
"""(key, column, path in metrics/train_<P>.json): what training measured on the sources' held-out videos."""

RANK_KEY = "source_val_hter"
"""Groups are ordered by this (lower first): a source-val number, so the order never sees the target."""


@dataclass(frozen=True)
class Experiment:
    """One finished experiment: its flattened params and, per protocol, its numbers (fractions)."""

    name: str
    rev: str
    params: Mapping[str, Any]
    results: Mapping[str, Mapping[str, float | None]]

    @property
    def seed(self) -> Any:
        return self.params.get(SEED_KEY)


@dataclass(frozen=True)
class Group:
    """Experiments whose params are equal but for ``train.seed``."""

    key: tuple[tuple[str, str], ...]
    experiments: tuple[Experiment, ...]
    label: str = ""


@dataclass(frozen=True)
class Row:
    """One protocol of one group: its seeds and a Stat per metric key."""

    protocol: str
    group: str
    seeds: tuple[Any, ...]
    experiments: tuple[str, ...]
    stats: Mapping[str, Stat] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.seeds)


# ------------------------------------------------------------------ reading `dvc exp show --json`

def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"seed": 1}}`` -> ``{"train.seed": 1}``; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _lookup(tree: Mapping[str, Any] | None, dotted: str) -> float | None:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return float(node) if isinstance(node, (int, float)) and not isinstance(node, bool) else None


def _file_data(files: Mapping[str, Any], path: str) -> Mapping[str, Any] | None:
    entry = files.get(path)
    return entry.get("data") if isinstance(entry, Mapping) and not entry.get("error") else None


def experiment_from_data(name: str, rev: str, data: Mapping[str, Any], *, evaluate_dir: str,
                         train_metrics: str, params_file: str = "params.yaml") -> Experiment:
    """One experiment's numbers from its ``data`` in ``dvc exp show --json``.

    ``evaluate_dir``: the folder of ``<P>.json`` evaluate metrics; ``train_metrics``: the train
    metrics path with ``{protocol}`` in it (both as dvc.yaml writes them)."""
    params = flatten(_file_data(data.get("params") or {}, params_file) or {})
    metrics = data.get("metrics") or {}
    results: dict[str, dict[str, float | None]] = {}
    for path in sorted(metrics):
        where = PurePosixPath(path)
        if where.parent != PurePosixPath(evaluate_dir) or where.suffix != ".json":
            continue
        evaluated = _file_data(metrics, path)
        if evaluated is None:
            continue
        protocol = str(evaluated.get("protocol") or where.stem)
        trained = _file_data(metrics, train_metrics.format(protocol=protocol))
        numbers = {key: _lookup(evaluated, at) for key, _, at in TARGET_METRICS}
        numbers.update({key: _lookup(trained, at) for key, _, at in SOURCE_METRICS})
        results[protocol] = numbers
    listed = [p for p in params.get("data.protocols") or () if p in results]  # the params' order first
    ordered = {p: results[p] for p in listed + sorted(set(results) - set(listed))}
    if len(ordered) > 1:
        ordered[MEAN] = {key: (None if any(r.get(key) is None for r in ordered.values())
                               else float(np.mean([r[key] for r in ordered.values()])))
                         for key in next(iter(ordered.values()))}
    return Experiment(name=name, rev=rev, params=params, results=ordered)


def experiments_from_exp_show(shown: Sequence[Mapping[str, Any]], *, evaluate_dir: str, train_metrics: str,
                              names: Iterable[str] | None = None, include_baseline: bool = False
                              ) -> list[Experiment]:
    """The finished experiments in ``dvc exp show --json`` output (queued, running and failed
    ones are skipped). ``names``: only these experiments (exp names or revs, baselines
    included when named); ``include_baseline``: also the baseline commits themselves."""
    wanted = None if names is None else set(names)
    found: list[Experiment] = []
    seen: set[str] = set()

    def take(state: Mapping[str, Any], *, is_baseline: bool) -> None:
        rev, name = str(state.get("rev")), state.get("name") or str(state.get("rev"))[:7]
        data = state.get("data")
        if state.get("error") or not isinstance(data, Mapping) or rev in seen:
            return
        if wanted is not None:
            if not {name, rev, rev[:7]} & wanted:
                return
        elif is_baseline and not include_baseline:
            return
        exp = experiment_from_data(name, rev, data, evaluate_dir=evaluate_dir, train_metrics=train_metrics)
        if exp.results:
            seen.add(rev)
            found.append(exp)

    for commit in shown:
        if commit.get("rev") == "workspace":
            continue  # the workspace is the HEAD commit's row again, or unfinished work
        take(commit, is_baseline=True)
        for run in commit.get("experiments") or ():
            state = (run.get("executor") or {}).get("state", "success")
            if state != "success" or not run.get("revs"):
                continue
            take(run["revs"][0], is_baseline=False)
    return found


# ------------------------------------------------------------------ grouping and statistics

def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _seed_order(exp: Experiment) -> tuple[bool, float, str]:
    seed = exp.seed
    numeric = isinstance(seed, (int, float)) and not isinstance(seed, bool)
    return (not numeric, float(seed) if numeric else 0.0, str(seed))


def group_by_params(experiments: Sequence[Experiment], ignore: Iterable[str] = (SEED_KEY,)) -> list[Group]:
    """Groups of experiments equal in every param but ``ignore`` (first-seen order), labelled
    by the params that differ between groups (``all`` when there is one group)."""
    skip = set(ignore)
    buckets: dict[tuple[tuple[str, str], ...], list[Experiment]] = {}
    for exp in experiments:
        key = tuple(sorted((k, _canonical(v)) for k, v in exp.params.items() if k not in skip))
        buckets.setdefault(key, []).append(exp)
    values = [dict(key) for key in buckets]
    names = sorted({k for v in values for k in v})
    varying = [k for k in names if len({v.get(k) for v in values}) > 1]
    groups = []
    for key, members in buckets.items():
        first = members[0].params
        label = ", ".join(f"{k}={first[k]}" if k in first else f"{k} unset" for k in varying) or "all"
        groups.append(Group(key=key, experiments=tuple(sorted(members, key=_seed_order)), label=label))
    return groups


def summarise(groups: Sequence[Group]) -> list[Row]:
    """One Row per (protocol, group), protocols in first-seen order; within a protocol, groups
    ordered by mean source-val HTER (lower first; groups without one last, then by label)."""
    protocols: list[str] = []
    for group in groups:
        for exp in group.experiments:
            protocols += [p for p in exp.results if p not in protocols]
    keys = [k for k, _, _ in TARGET_METRICS + SOURCE_METRICS]
    rows = []
    for protocol in protocols:
        block = []
        for group in groups:
            members = [e for e in group.experiments if protocol in e.results]
            if not members:
                continue
            stats = {k: Stat.of(e.results[protocol].get(k) for e in members) for k in keys}
            block.append(Row(protocol=protocol, group=group.label, seeds=tuple(e.seed for e in members),
                             experiments=tuple(e.name for e in members), stats=stats))
        rows += sorted(block, key=rank_key)
    return rows


def rank_key(row: Row) -> tuple[bool, float, str]:
    """Source-val HTER only (the target's numbers never choose)."""
    mean = row.stats[RANK_KEY].mean
    return (mean is None, math.inf if mean is None else mean, row.group)


# ------------------------------------------------------------------ output

def _pm(stat: Stat) -> str:
    if stat.mean is None:
        return "n/a"
    spread = "—" if stat.std is None else f"{100 * stat.std:.2f}"
    return f"{100 * stat.mean:.2f} ± {spread}"


def render_markdown(rows: Sequence[Row], *, demo: bool | None = None) -> str:
    """The table: per protocol, each group's mean ± std over its seeds; groups ordered by source-val HTER."""
    lines = ["# Multi-seed results (mean ± std over seeds)", ""]
    if demo:
        lines += ["**Data: DEMO-SYNTHETIC**: a pipeline check, not comparable to published numbers.", ""]
    lines += ["Each row is one setting (params equal but for `train.seed`), over its experiments' seeds. "
              "Std is the sample standard deviation (n - 1); — for one seed. Within a protocol rows are "
              "ordered by mean source-val HTER (what training measured on held-out source videos), never by "
              "a target number: the target columns are reported, not chosen on. HTER@source-val is the "
              "leakage-free target number (threshold fixed on source-val).", ""]
    columns = [c for _, c, _ in SOURCE_METRICS[:1] + TARGET_METRICS]
    header = ["Protocol", "Setting", "n", "seeds", *columns]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row.protocol, row.group, str(row.n), ", ".join(str(s) for s in row.seeds)]
        cells += [_pm(row.stats[k]) for k, _, _ in SOURCE_METRICS[:1] + TARGET_METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Experiments: " + "; ".join(
        f"{row.protocol} {row.group}: {', '.join(row.experiments)}" for row in rows) + ".", ""]
    return "\n".join(lines)


def as_json(rows: Sequence[Row]) -> list[dict[str, Any]]:
    return [{"protocol": r.protocol, "setting": r.group, "n": r.n, "seeds": list(r.seeds),
             "experiments": list(r.experiments),
             "stats": {k: {"mean": s.mean, "std": s.std, "n": s.n} for k, s in r.stats.items()}} for r in rows]


def plot_rows(rows: Sequence[Row], path: str) -> None:
    """Per protocol and setting: each target metric's mean with a ± std error bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    protocols = list(dict.fromkeys(r.protocol for r in rows))
    settings = list(dict.fromkeys(r.group for r in rows))
    fig, axes = plt.subplots(1, len(TARGET_METRICS), figsize=(3.2 * len(TARGET_METRICS) + 1, 3.6), squeeze=False)
    x = np.arange(len(protocols))
    width = 0.8 / max(1, len(settings))
    for ax, (key, column, _) in zip(axes[0], TARGET_METRICS):
        for i, setting in enumerate(settings):
            by_protocol = {r.protocol: r.stats[key] for r in rows if r.group == setting}
            means = [100 * s.mean if (s := by_protocol.get(p)) and s.mean is not None else np.nan
                     for p in protocols]
            stds = [100 * s.std if (s := by_protocol.get(p)) and s.std is not None else 0.0 for p in protocols]
            ax.bar(x + (i - (len(settings) - 1) / 2) * width, means, width, yerr=stds, capsize=3,
                   label=setting if len(settings) > 1 else None)
        ax.set_xticks(x, protocols, fontsize=8)
        ax.set_title(column, fontsize=9)
    n = sorted({r.n for r in rows})
    fig.suptitle(f"mean ± std over seeds (n = {', '.join(map(str, n))})", fontsize=10)
    if len(settings) > 1:
        axes[0][0].legend(fontsize=7)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic.write_bytes(path, buf.getvalue())
