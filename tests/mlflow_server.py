"""A real ``mlflow server`` for tests: start it on 127.0.0.1, wait for /health, stop it."""

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


def start_server(folder: Path, port: int, log=subprocess.DEVNULL) -> subprocess.Popen:
    """A server with a SQLite backend in ``folder`` (the same folder and port restart the
    same store), answering /health when this returns."""
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--backend-store-uri",
            f"sqlite:///{folder / 'server.db'}",
            "--default-artifact-root",
            str(folder / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
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
def running_server(folder: Path) -> Iterator[str]:
    """A server (store in ``folder``, log in ``folder/server.log``) on a free port while the
    block runs; yields its URL."""
    port = free_port()
    with open(folder / "server.log", "w") as log:
        process = start_server(folder, port, log)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            stop_server(process)
