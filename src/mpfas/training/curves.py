"""Training curves as CSV files that ``dvc plots`` draws and ``dvc plots diff`` compares.

MLflow holds the same numbers; these files exist so the curves travel with DVC's outputs
(cached, so every experiment keeps its own). One file per curve, one row per logged step;
a resumed run keeps the rows up to its resume point and appends the rest, so a killed and
resumed training gives the same file as an uninterrupted one.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..atomic import write_text

STEP = "step"


@dataclass(frozen=True)
class Curve:
    """One CSV: a ``step`` column, then one column per metric (in first-logged order)."""

    path: Path

    def restart(self, start: int) -> None:
        """Keep the rows up to ``start`` (the resume point; 0 = a fresh run: no rows)."""
        rows = [r for r in self._rows() if int(r[STEP]) <= start] if start > 0 else []
        if rows:
            self._write(list(rows[0]), rows)
        else:
            self.path.unlink(missing_ok=True)

    def append(self, step: int, values: Mapping[str, float]) -> None:
        row = {STEP: str(step), **{k: repr(float(v)) for k, v in values.items()}}
        rows = self._rows()
        if rows and list(rows[0]) != list(row):  # a column appeared: rewrite with the union
            fields = list(dict.fromkeys([*rows[0], *row]))
            self._write(fields, [*rows, row])
            return
        if not rows:
            self._write(list(row), [row])
            return
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=list(row)).writerow(row)

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
