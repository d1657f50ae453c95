"""A real ``mlflow server`` for tests: start it on 127.0.0.1, wait for /health, stop it.

By default its store is a SQLite file in the given folder and clients write artifacts to
``<folder>/artifacts`` themselves (a path they must share). With ``backend_store_uri``
(e.g. ``postgresql://...``, see tests/postgres_server.py) and ``artifacts_destination``
it is a shared server: ``--serve-artifacts``, so clients upload artifacts over HTTP
(``mlflow-artifacts:/`` URIs) and need no filesystem in common with it."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"mlflow server at {url} did not answer /health in {timeout:.0f} s")


def start_server(
    folder: Path,
    port: int,
    log=subprocess.DEVNULL,
    backend_store_uri: str | None = None,
    artifacts_destination: Path | None = None,
    workers: int = 1,
) -> subprocess.Popen:
    """A server with a SQLite backend in ``folder`` (the same folder and port restart the
    same store), or the ``backend_store_uri`` database; artifacts served from
    ``artifacts_destination`` when given. Answers /health when this returns."""
    store = backend_store_uri or f"sqlite:///{folder / 'server.db'}"
    if artifacts_destination is None:
        artifacts = ["--default-artifact-root", str(folder / "artifacts")]
    else:
        artifacts = ["--serve-artifacts", "--artifacts-destination", str(artifacts_destination)]
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--backend-store-uri",
            store,
            *artifacts,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        # tracking only: no GenAI job runner (about eight more processes)
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process)
    except BaseException:
        stop_server(process)
        raise
    return process


def stop_server(process: subprocess.Popen) -> None:
    """Stop the server's whole process group (uvicorn workers included)."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        if process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=wait)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass


@contextlib.contextmanager
def running_server(
    folder: Path,
    backend_store_uri: str | None = None,
    artifacts_destination: Path | None = None,
    workers: int = 1,
) -> Iterator[str]:
    """A server (store in ``folder`` or ``backend_store_uri``, log in
    ``folder/server.log``) on a free port while the block runs; yields its URL."""
    port = free_port()
    with open(folder / "server.log", "w") as log:
        process = start_server(folder, port, log, backend_store_uri, artifacts_destination, workers)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            stop_server(process)
