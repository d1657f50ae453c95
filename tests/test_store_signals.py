"""A signal while a fresh SQLite store's schema is being made waits for the schema."""

from __future__ import annotations

import os
import signal
import sqlite3

import pytest

from toolkit.track.store import schema_ready, signals_deferred, store_lock


class Stop(BaseException):
    pass


def _stop(signum, frame):
    raise Stop(signum)


@pytest.fixture
def term_raises():
    previous = signal.signal(signal.SIGTERM, _stop)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_a_signal_inside_the_block_is_delivered_after_it(term_raises):
    done = []
    with pytest.raises(Stop), signals_deferred():
        os.kill(os.getpid(), signal.SIGTERM)
        done.append("the block ran to its end")
    assert done == ["the block ran to its end"]
    assert signal.getsignal(signal.SIGTERM) is _stop


def test_no_signal_no_delivery(term_raises):
    with signals_deferred():
        pass
    assert signal.getsignal(signal.SIGTERM) is _stop


def test_an_interrupted_store_creation_still_completes_the_schema(tmp_path, term_raises):
    import mlflow

    database = tmp_path / "mlflow.db"
    uri = f"sqlite:///{database}"
    with pytest.raises(Stop), store_lock(uri, only_to_create=True):
        os.kill(os.getpid(), signal.SIGTERM)  # Ctrl-C / SIGTERM as MLflow starts migrating
        mlflow.MlflowClient(uri).search_experiments()
    assert schema_ready(database)
    with sqlite3.connect(database) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert not [t for t in tables if t.startswith("_alembic_tmp_")]
