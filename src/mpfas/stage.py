"""What every stage script shares: logging, strict params, and errors a user can act on."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .config import ConfigError, Params, parse_params
from .errors import MpfasError
from .params_view import Declaration, check_unchanged, values_at, view
from .telemetry import quiet_network

StageBody = Callable[[Params, argparse.Namespace], None]


def stage_main(parser: argparse.ArgumentParser, *, reads: Sequence[str], untracked: Sequence[str] = (),
               item: str | None = None) -> Callable[[StageBody], Callable[..., int]]:
    """Wrap a stage body: arguments and params validated before any work, one-line errors, exit codes.

    ``parser`` reads the stage's command line: its input and output paths come from
    dvc.yaml's ``cmd`` (paths are written there only), and ``item`` names the argument
    that holds dvc.yaml's ``${item}`` (the foreach dataset or protocol). The body gets a
    view of the params in which only ``reads`` (the stage's params in dvc.yaml) and
    ``untracked`` (read, but unable to change the outputs) are usable; see
    :mod:`mpfas.params_view`; ``${item}`` in a key is that argument's value. A run during
    which a ``reads`` key changed in the params file fails (DVC would record the new
    value for outputs built with the old one).
    """
    declaration = Declaration(tuple(dict.fromkeys(reads)), tuple(dict.fromkeys(untracked)))

    def wrap(fn: StageBody) -> Callable[..., int]:
        @functools.wraps(fn)
        def run(argv: Sequence[str] | None = None) -> int:
            """Run the stage on ``argv`` (default: the command line); 0 on success, 2 on a user error."""
            quiet_network()
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
            args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))  # usage errors exit 2
            value = str(getattr(args, item)) if item else ""
            keys = declaration.expand(value)
            seen: set[str] = set()
            try:
                path = Path(os.environ.get("MPFAS_PARAMS", "params.yaml"))
                if not path.is_file():
                    raise ConfigError(f"{path}: parameter file not found")
                text = path.read_text()  # parsed and snapshotted from the same bytes
                params = parse_params(text, str(path))
                before = values_at(text, keys.reads)
                fn(view(params, keys.allowed, seen), args)
                check_unchanged(path, before)  # DVC reads the file again when the stage ends
            except (MpfasError, FileNotFoundError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            finally:
                _trace(Path(sys.argv[0]).stem, value, keys, seen)
            return 0

        run.declaration = declaration  # type: ignore[attr-defined]  # read by tests/test_dvc_yaml.py
        run.parser = parser  # type: ignore[attr-defined]  # read by tests/test_dvc_yaml.py
        return run

    return wrap


def _trace(stage: str, item: str, keys: Declaration, seen: set[str]) -> None:
    """With ``MPFAS_PARAMS_TRACE=<folder>``: write which declared keys the stage accessed."""
    folder = os.environ.get("MPFAS_PARAMS_TRACE")
    if folder:
        name = f"{stage}@{item}" if item else stage
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"{name}.json").write_text(json.dumps(
            {"reads": list(keys.reads), "untracked": list(keys.untracked), "seen": sorted(seen)}, indent=1))
