"""The tracking store: check it answers, create it once under an inter-process lock, name
what is wrong with a broken one, and open an experiment in it.

MLflow creates a fresh SQLite store's schema (and runs its migrations) the first time a
process opens it. Two processes doing that at the same instant corrupt it for good
("table _alembic_tmp_metrics already exists"), so every process opens a SQLite store
while holding ``<db>.lock`` (a :mod:`filelock` lock): the first one creates the schema,
the others wait a moment and find it made. A signal (Ctrl-C, SIGTERM) that arrives while
the schema is being made waits until it is complete, so an interrupted start never leaves
a half-migrated store behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from toolkit.registry import ConfigError

LOCK_TIMEOUT_S = 600.0
DEFERRED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, else None."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(tracking_uri.removeprefix("sqlite:///")).absolute()


def check_reachable(tracking_uri: str, timeout_s: float = 5.0) -> None:
    """Fail at once, naming the URI, when the store cannot work: a SQLite file in a folder
    that is missing or not writable, or a server (http/https) that does not answer
    ``/health`` (instead of after MLflow's minutes of retries)."""
    database = sqlite_path(tracking_uri)
    if database is not None:
        folder = database.parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise ConfigError(
                f"MLflow store {tracking_uri}: folder {folder} is missing or not writable; "
                "set logger.tracking_uri=sqlite:///<writable folder>/mlflow.db"
            )
        return
    if not tracking_uri.startswith(("http://", "https://")):
        return
    url = f"{tracking_uri.rstrip('/')}/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s):
            pass
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise ConfigError(
            f"MLflow tracking server {tracking_uri} is unreachable ({reason}); start it "
            "(mlflow server ...) or set logger.tracking_uri"
        ) from None


def schema_ready(database: Path) -> bool:
    """Whether a SQLite store's schema is complete (it records its version)."""
    if not database.is_file():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
            return bool(db.execute("SELECT version_num FROM alembic_version").fetchall())
    except sqlite3.DatabaseError:
        return False


@contextlib.contextmanager
def store_lock(tracking_uri: str, only_to_create: bool = False) -> Iterator[None]:
    """Hold ``<db>.lock`` for a SQLite store (nothing for other stores); with
    ``only_to_create``, only while its schema is not complete (opening a ready store
    changes nothing, so many processes may do it at once)."""
    database = sqlite_path(tracking_uri)
    if database is None or (only_to_create and schema_ready(database)):
        yield
        return
    from filelock import FileLock, Timeout

    try:
        with FileLock(f"{database}.lock", timeout=LOCK_TIMEOUT_S), signals_deferred():
            yield
    except Timeout:
        raise ConfigError(
            f"MLflow store {tracking_uri}: another process held {database}.lock for "
            f"{LOCK_TIMEOUT_S:.0f} s; if none is running, delete that file"
        ) from None


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Within the block, SIGINT/SIGTERM/SIGHUP are remembered, not acted on; the first one
    is delivered again to the previous handler when the block ends. (Only the main thread
    receives signals; elsewhere this does nothing.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {
        s: signal.signal(s, lambda signum, _: pending.append(signum)) for s in DEFERRED_SIGNALS
    }
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
        if pending:
            signal.raise_signal(pending[0])


def broken_store_message(tracking_uri: str) -> str | None:
    """What is wrong with a SQLite store MLflow cannot open, and how to repair it; None
    when nothing known is wrong (or it is not SQLite)."""
    database = sqlite_path(tracking_uri)
    if database is None or not database.is_file():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
            rows = db.execute("SELECT name FROM sqlite_master WHERE type='table'")
            tables = {r[0] for r in rows}
            versioned = "alembic_version" in tables
            version = db.execute("SELECT * FROM alembic_version").fetchall() if versioned else []
    except sqlite3.DatabaseError as err:
        return (
            f"MLflow store {database} is not a readable SQLite database ({err}); move it "
            "away (mv mlflow.db mlflow.db.broken) and run again"
        )
    leftovers = sorted(t for t in tables if t.startswith("_alembic_tmp_"))
    if leftovers or (tables and not version):
        what = f"table {leftovers[0]} left over" if leftovers else "no schema version recorded"
        return (
            f"MLflow store {database} was left half-migrated by an interrupted start ({what}); "
            f"repair it with: python -m toolkit.track.repair {tracking_uri}"
        )
    return None


def use_tracking_uri(tracking_uri: str) -> None:
    """Point MLflow's fluent API (``mlflow.start_run`` ...) of this process at
    ``tracking_uri`` without exporting it: ``mlflow.set_tracking_uri`` also sets
    ``MLFLOW_TRACKING_URI`` in the environment, which every later subprocess (another
    run, a launcher's worker) would silently inherit."""
    import mlflow

    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(tracking_uri)
    if previous is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = previous


def open_experiment(tracking_uri: str, name: str, tags: dict[str, str] | None = None) -> str:
    """Point MLflow at ``tracking_uri`` and return the id of experiment ``name`` (created
    with ``tags`` if missing). Raises ConfigError, naming the URI and the fix, when the
    store is unusable."""
    check_reachable(tracking_uri)
    import mlflow

    try:
        with store_lock(tracking_uri, only_to_create=True):
            client = mlflow.MlflowClient(tracking_uri)
            experiment = client.get_experiment_by_name(name)
            if experiment is not None:
                return experiment.experiment_id
            try:
                return client.create_experiment(name, tags=tags)
            except Exception:  # created at the same moment through a server
                return client.get_experiment_by_name(name).experiment_id
    except ConfigError:
        raise
    except Exception as err:  # any backend failure: name the URI, stop before training
        raise store_error(tracking_uri, err) from None


def store_error(tracking_uri: str, err: Exception) -> ConfigError:
    """A one-line ConfigError for a store that failed: a full disk, a broken SQLite file
    (with its repair), or MLflow's own first line."""
    text = str(err)
    if "disk is full" in text or "No space left" in text:
        return ConfigError(
            f"MLflow store {tracking_uri}: its disk is full; free space there or set "
            "logger.tracking_uri to a store elsewhere"
        )
    broken = broken_store_message(tracking_uri)
    if broken:
        return ConfigError(broken)
    first = next((line for line in text.splitlines() if line.strip()), "")
    return ConfigError(
        f"cannot use MLflow tracking at {tracking_uri} ({type(err).__name__}: {first}); "
        "check the store or set logger.tracking_uri"
    )


def search_all_runs(client, experiment_ids: list[str], filter_string: str) -> list:
    """Every run matching ``filter_string``, page by page (MLflow caps a page)."""
    runs, token = [], None
    while True:
        page = client.search_runs(experiment_ids, filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs
