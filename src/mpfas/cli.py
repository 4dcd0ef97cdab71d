"""What every stage script shares: logging, strict params, and errors a user can act on."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable

from .config import Params, load_params
from .errors import MpfasError

# Keep DVC and MLflow off the network: no analytics, no update checks, no telemetry.
QUIET_ENV = {
    "DVC_NO_ANALYTICS": "1",
    "DVC_NO_UPDATE_CHECK": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
}


def quiet_network() -> None:
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)


def stage_main(fn: Callable[..., None]) -> Callable[[], int]:
    """Wrap a stage body: params validated before any work, one-line errors, exit codes."""

    @functools.wraps(fn)
    def run() -> int:
        quiet_network()
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            params: Params = load_params(os.environ.get("MPFAS_PARAMS", "params.yaml"))
            fn(params, *sys.argv[1:])
        except (MpfasError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0

    return run
