"""A real PostgreSQL server for tests: a fresh cluster (``initdb``) in a temporary folder,
started on 127.0.0.1 on a free port with password authentication, one database for
MLflow, stopped and removed at the end.

``initdb`` refuses to run as root, so as root the cluster belongs to the ``postgres``
user (Debian's ``postgresql`` package creates it) and its folder is made outside pytest's
root-only temporary folders.

    with running_postgres() as uri:  # postgresql://mlflow:...@127.0.0.1:PORT/mlflow
        ...
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.mlflow_server import free_port

USER, PASSWORD, DATABASE = "mlflow", "mlflow-test", "mlflow"
TOOLS = ("initdb", "pg_ctl", "psql")


def _postgres_bin() -> Path | None:
    """The folder of initdb/pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<v>/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


def missing_postgres() -> str | None:
    """Why no PostgreSQL server can start here (a sentence), or None."""
    folder = _postgres_bin()
    if folder is None or not all((folder / tool).exists() for tool in TOOLS[:2]):
        return "PostgreSQL is not installed; apt-get install -y postgresql"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to own the database"
    try:
        import psycopg  # noqa: F401  (SQLAlchemy 2.1's driver for postgresql:// URIs)
    except ImportError:
        return "the PostgreSQL driver is missing; uv sync, or pip install 'toolkit[postgres]'"
    return None


def _as_owner(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run ``command`` as the postgres user when we are root, else as ourselves."""
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs)


@contextlib.contextmanager
def running_postgres() -> Iterator[str]:
    """A PostgreSQL server with database ``mlflow`` (owner ``mlflow``, password
    authentication) while the block runs; yields its SQLAlchemy URI."""
    binaries = _postgres_bin()
    folder = Path(tempfile.mkdtemp(prefix="toolkit-postgres-"))
    data = folder / "data"
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    port = free_port()
    password_file = folder / "password"
    password_file.write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(password_file, "postgres", "postgres")
    try:
        _as_owner(
            [
                str(binaries / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                f"--pwfile={password_file}",
                "--encoding=UTF8",
                "--no-sync",  # a test database: no fsync at creation
            ]
        )
        _as_owner(
            [
                str(binaries / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(folder / "server.log"),
                "-o",
                f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off -c max_connections=200",
                "-w",
                "start",
            ]
        )
        env = {**os.environ, "PGPASSWORD": PASSWORD}
        psql = [str(binaries / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
        for sql in (
            f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'",
            f"CREATE DATABASE {DATABASE} OWNER {USER}",
        ):
            subprocess.run([*psql, "-v", "ON_ERROR_STOP=1", "-c", sql], check=True, env=env,
                           capture_output=True)  # fmt: skip
        yield f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{port}/{DATABASE}"
    finally:
        if (data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                _as_owner([str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
        shutil.rmtree(folder, ignore_errors=True)
