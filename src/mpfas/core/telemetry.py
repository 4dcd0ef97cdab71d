"""The one switch that keeps DVC and MLflow off the network.

Stages, the CLI and :mod:`mpfas.tracking` (on import, before ``mlflow`` is) call
:func:`quiet_network`: no analytics, no update checks, no usage telemetry, so nothing
waits on a network that may not be there. MLflow 3 starts its telemetry client when it
is imported and reads the opt-out from the environment, so the client is dropped if
``mlflow`` was imported first.
"""

from __future__ import annotations

import os
import sys

QUIET_ENV = {
    "DVC_NO_ANALYTICS": "1",
    "DVC_NO_UPDATE_CHECK": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
}


def quiet_network() -> None:
    """Set :data:`QUIET_ENV` (values already set are kept, except MLflow's switch)."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    # MLflow only honours DO_NOT_TRACK == "true"; the switch below is the one that counts.
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    if "mlflow" in sys.modules:  # imported before us: drop the client it may have started
        from mlflow.telemetry import set_telemetry_client

        set_telemetry_client()
