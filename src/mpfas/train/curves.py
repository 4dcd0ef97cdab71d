"""Training curves as CSV files that ``dvc plots`` draws and ``dvc plots diff`` compares.

MLflow holds the same numbers; these files exist so the curves travel with DVC's outputs
(cached, so every experiment keeps its own). One file per curve, one row per logged step;
a resumed run keeps the rows up to its resume point and appends the rest, so a killed and
resumed training gives the same file as an uninterrupted one. A resumed run whose file is
missing (written before this existed, or deleted) gets its rows back from the MLflow run.
"""

from __future__ import annotations

import csv
import io
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mpfas.core.atomic import write_text

STEP = "step"


@dataclass(frozen=True)
class Curve:
    """One CSV: a ``step`` column, then one column per metric (sorted by name)."""

    path: Path

    def restart(self, start: int) -> None:
        """Keep the rows up to ``start`` (the resume point; 0 = a fresh run: no rows)."""
        rows = [r for r in self._rows() if int(r[STEP]) <= start] if start > 0 else []
        if rows:
            self._write(list(rows[0]), rows)
        else:
            self.path.unlink(missing_ok=True)

    def backfill(self, history: Mapping[str, list[tuple[int, float]]], start: int) -> None:
        """Rows up to ``start`` from ``history`` (metric -> (step, value)), when there are none."""
        if self._rows() or start <= 0:
            return
        by_step: dict[int, dict[str, str]] = {}
        for key, points in history.items():
            for step, value in points:
                if step <= start:
                    by_step.setdefault(step, {STEP: str(step)})[key] = _cell(value)
        if by_step:
            rows = [by_step[step] for step in sorted(by_step)]
            self._write([STEP, *sorted(history)], rows)

    def append(self, step: int, values: Mapping[str, float]) -> None:
        """One row at the end; only the header is read (once per iteration: no re-reading the file)."""
        row = {STEP: str(step), **{k: _cell(v) for k, v in sorted(values.items())}}
        header = self._header()
        if header == list(row):
            with self.path.open("a", newline="") as f:
                csv.DictWriter(f, fieldnames=header).writerow(row)
            return
        rows = self._rows()  # a new file, or a column appeared: rewrite with the union
        self._write(list(dict.fromkeys([*rows[0], *row])) if rows else list(row), [*rows, row])

    def ensure(self) -> None:
        """The file exists (a ``step`` header at least): DVC fails a stage whose output is missing."""
        if not self.path.is_file():
            self._write([STEP], [])

    def _header(self) -> list[str] | None:
        if not self.path.is_file():
            return None
        with self.path.open(newline="") as f:
            return next(csv.reader(f), None)

    def _rows(self) -> list[dict[str, str]]:
        if not self.path.is_file():
            return []
        with self.path.open(newline="") as f:
            # a row cut short by a kill has fewer fields than the header: drop it
            return [r for r in csv.DictReader(f) if None not in r.values() and r.get(STEP, "").isdigit()]

    def _write(self, fields: list[str], rows: list[dict[str, str]]) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_text(self.path, buf.getvalue())


@dataclass(frozen=True)
class Curves:
    """The training loss (every iteration) and the source-val metrics (every validation)."""

    loss: Curve
    source_val: Curve

    @classmethod
    def at(cls, loss: str | Path, source_val: str | Path) -> Curves:
        return cls(Curve(Path(loss)), Curve(Path(source_val)))

    def restart(self, start: int) -> None:
        self.loss.restart(start)
        self.source_val.restart(start)

    def ensure(self) -> None:
        self.loss.ensure()
        self.source_val.ensure()

    def append(self, step: int, metrics: Mapping[str, float]) -> None:
        """A row on each curve that ``metrics`` has numbers for (``curve_of`` sorts them)."""
        for name in ("loss", "source_val"):
            values = {k: v for k, v in metrics.items() if curve_of(k) == name}
            if values:
                getattr(self, name).append(step, values)

    def backfill(self, history: Mapping[str, list[tuple[int, float]]], start: int) -> None:
        """Rebuild missing curves from the run's logged metrics (``curve_of`` sorts them)."""
        for name in ("loss", "source_val"):
            getattr(self, name).backfill({k: v for k, v in history.items() if curve_of(k) == name}, start)


def _cell(value: float) -> str:
    """The number as Python prints it; empty when not finite (MLflow stores an infinite
    threshold as the largest float, so both sources agree only this way)."""
    value = float(value)
    return repr(value) if math.isfinite(value) and abs(value) < sys.float_info.max else ""


NOT_CURVES = ("seconds_per_iteration", "best_iteration")


def curve_of(metric: str) -> str | None:
    """Which curve a training metric belongs to: validation numbers, or what the method's step
    reports each iteration (losses, learning rates; any method's names), or none (timings, the
    best iteration, evaluation's ``eval/`` and MLflow's ``system/`` metrics)."""
    if metric.startswith(("val_", "target_")):
        return "source_val"
    if metric in NOT_CURVES or "/" in metric:
        return None
    return "loss"
