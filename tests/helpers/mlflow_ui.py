"""`mlflow server` on a tracking DB and headless Chromium on its pages (the browser test and
the README's screenshot, ``cd tests && python -m helpers.mlflow_ui --help``)."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from helpers import browser


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def mlflow_server(db_uri: str, cwd: Path, timeout: float = 180.0) -> Iterator[str]:
    """``mlflow server`` on ``db_uri`` at a free localhost port; yields its base URL once
    ``/health`` answers, and stops it (its whole process group) afterwards."""
    port = free_port()
    exe = Path(sys.executable).parent / "mlflow"
    log = (cwd / "mlflow-server.log").open("w")
    proc = subprocess.Popen([str(exe), "server", "--backend-store-uri", db_uri, "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1"], cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                tail = (cwd / "mlflow-server.log").read_text()[-2000:]
                raise RuntimeError(f"mlflow server exited ({proc.returncode}): {tail}")
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{base}/health", timeout=5) as answer:
                if answer.status == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"mlflow server on {base} did not answer /health in {timeout:.0f} s")
            time.sleep(1)
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def load_page(url: str, *, screenshot: Path | None = None, budget_ms: int = 20000) -> str:
    """The DOM of ``url`` after ``budget_ms`` of virtual time in headless Chromium (no network but
    localhost; ``tests/helpers/browser.py``); with ``screenshot``, a second load saves a PNG of it."""
    if browser.find_chromium() is None:
        raise FileNotFoundError("no chromium binary on PATH")
    dom = browser.dump_dom(url, budget_ms=budget_ms, timeout=180)
    if screenshot is not None:
        browser.screenshot(url, screenshot, size=(1600, 1000), budget_ms=budget_ms, timeout=180)
    return dom


def main(argv: list[str] | None = None) -> int:
    """Screenshot the runs page of a COPY of a tracking DB (the experiment is marked on the
    copy: kind, headline view, and headline metrics from each run's ``eval/video/...``)."""
    from mlflow.tracking import MlflowClient

    from mpfas.tracking import lineage, sqlite_uri

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("db", type=Path, help="an mlflow.db (copied; never written)")
    parser.add_argument("--experiment", default="mpfas")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mpfas-ui-") as tmp:
        copy = Path(tmp) / "mlflow.db"
        shutil.copy(args.db, copy)
        client = MlflowClient(sqlite_uri(copy))
        exp = client.get_experiment_by_name(args.experiment)
        lineage.mark_experiment(client, exp.experiment_id)
        for run in client.search_runs([exp.experiment_id]):
            video = {k.removeprefix("eval/video/"): v for k, v in run.data.metrics.items()
                     if k.startswith("eval/video/")}
            for name, value in lineage.headline_metrics({"video": video}).items():
                if name not in run.data.metrics:
                    client.log_metric(run.info.run_id, name, value)
        with mlflow_server(sqlite_uri(copy), Path(tmp)) as base:
            url = lineage.runs_url(base, exp.experiment_id)
            load_page(url, screenshot=args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
