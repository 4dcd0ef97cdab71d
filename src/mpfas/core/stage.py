"""What every stage script shares: logging, strict params, and errors a user can act on.

A stage declares the ``params.yaml`` sections it depends on, the same ones its ``dvc.yaml``
entry lists (whole sections, or keys within them). Its body gets the params with every other
section hidden: reading one fails with a one-line error instead of depending on a knob DVC
does not track. The ``runtime`` section cannot change outputs; every stage may read it and
none lists it, so editing it re-runs nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from mpfas.core.config import RUNTIME_SECTIONS, ConfigError, Params, parse_params
from mpfas.core.errors import MpfasError
from mpfas.core.telemetry import quiet_network

StageBody = Callable[[Params, argparse.Namespace], None]


class UndeclaredSectionError(MpfasError):
    """A stage read a params section its declaration (and so ``dvc.yaml``) does not list."""


class ParamsChangedError(MpfasError):
    """params.yaml changed, in a section the stage depends on, while the stage ran."""


class Hidden:
    """Stands in for a section the stage did not declare; reading any field of it fails."""

    def __init__(self, section: str, stage: str) -> None:
        self._where = (section, stage)

    def __getattr__(self, name: str) -> Any:
        section, stage = self.__dict__["_where"]
        raise UndeclaredSectionError(
            f"{stage} reads params section {section!r} ({section}.{name}) but does not declare it: add it to the "
            "stage's sections= and to its params: in dvc.yaml")


def view(params: Params, sections: Sequence[str], stage: str = "this stage") -> Params:
    """``params`` with the sections outside ``sections`` (and the runtime ones) hidden."""
    keep = set(sections) | set(RUNTIME_SECTIONS)
    return dataclasses.replace(params, **{f.name: Hidden(f.name, stage) for f in dataclasses.fields(params)
                                          if f.name not in keep})


def _snapshot(text: str, sections: Sequence[str]) -> dict[str, Any]:
    data = yaml.safe_load(text) or {}
    return {s: data.get(s) for s in sections}


def stage_main(parser: argparse.ArgumentParser, *, sections: Sequence[str], item: str | None = None,
               checks: Sequence[Callable[[Params], None]] = ()) -> Callable[[StageBody], Callable[..., int]]:
    """Wrap a stage body: arguments and params validated before any work, one-line errors, exit codes.

    ``parser`` reads the stage's command line (its paths come from dvc.yaml's ``cmd``);
    ``item`` names the argument holding dvc.yaml's ``${item}``. ``sections`` are the params
    sections the body may read; ``checks`` validate what the params parser cannot know (the
    dataset and backbone registries) before the body runs. A run during which a declared
    section changed in the params file fails: DVC would record the new value for outputs
    built with the old one.
    """
    sections = tuple(dict.fromkeys(sections))

    def wrap(fn: StageBody) -> Callable[..., int]:
        @functools.wraps(fn)
        def run(argv: Sequence[str] | None = None) -> int:
            """Run the stage on ``argv`` (default: the command line); 0 on success, 2 on a user error."""
            quiet_network()
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
            args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))  # usage errors exit 2
            name = Path(sys.argv[0]).stem + (f"@{getattr(args, item)}" if item else "")
            try:
                path = Path(os.environ.get("MPFAS_PARAMS", "params.yaml"))
                if not path.is_file():
                    raise ConfigError(f"{path}: parameter file not found")
                text = path.read_text()  # parsed and snapshotted from the same bytes
                params = parse_params(text, str(path))
                for check in checks:
                    check(params)
                before = _snapshot(text, sections)
                fn(view(params, sections, name), args)
                try:
                    after = _snapshot(path.read_text(), sections)
                except (OSError, yaml.YAMLError) as exc:
                    raise ParamsChangedError(f"{path}: unreadable after the stage ran ({exc}); restore it and "
                                             "re-run the stage (dvc repro)") from None
                changed = sorted(s for s in sections if before[s] != after[s])
                if changed:
                    raise ParamsChangedError(
                        f"{path}: section(s) {', '.join(changed)} changed while the stage ran; its outputs were "
                        "built with the old values, so the run is refused (DVC does not record it): re-run the "
                        "stage (dvc repro)")
            except (MpfasError, FileNotFoundError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            return 0

        run.sections = sections  # type: ignore[attr-defined]  # read by tests/test_dvc_yaml.py
        run.parser = parser  # type: ignore[attr-defined]  # read by tests/test_dvc_yaml.py
        return run

    return wrap
