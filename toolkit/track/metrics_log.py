"""The one place a run's metrics are logged from (epochs, test, analyses), and what keeps
them when the store stops answering.

If the tracking store fails (a server gone, a full disk under SQLite), training goes on:
the records are appended to ``<run dir>/unsynced_metrics.jsonl``, retried with every later
call, and what is still unsent at the end (with how the run ended) is sent by
``python -m toolkit.track.sync <run dir>``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from toolkit.track.names import clean_key
from toolkit.track.tracked_run import TrackedRun
from toolkit.train.callbacks import Callback

UNSYNCED = "unsynced_metrics.jsonl"


class RunMetrics(Callback):
    """Logs metrics to ``run`` with the epoch as the step; a trainer callback too.

    Args:
        run: the tracked run.
        run_dir: where unsent records are kept.
    """

    def __init__(self, run: TrackedRun, run_dir: Path) -> None:
        self.run, self.pending_file = run, Path(run_dir) / UNSYNCED
        self.pending: list[dict[str, Any]] = []
        self.failed = False  # the store refused a record (not: a signal interrupted a send)

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        self.log(logs, epoch)

    def log(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Send ``metrics`` (and anything pending); keep them on disk if that fails."""
        if metrics:
            self.pending.append({"run_id": self.run.run_id, "step": step, "metrics": metrics})
        self._flush()

    def keep_end(self, status: str) -> None:
        """Record how the run ended for the sync command (the store did not take it)."""
        self.failed = True
        self.pending.append({"run_id": self.run.run_id, "end": status})
        self._write_pending()

    def _flush(self) -> None:
        try:
            while self.pending:
                record = self.pending[0]
                self.run.log_metrics(record["metrics"], step=record["step"])
                self.pending.pop(0)
        except Exception as err:
            self.failed = True
            if not self.pending_file.exists():
                print(
                    f"warning: MLflow at {self.run.tracking_uri} failed ({type(err).__name__}); "
                    f"training goes on, metrics are kept in {self.pending_file}",
                    file=sys.stderr,
                )
        self._write_pending()

    def _write_pending(self) -> None:
        if self.pending:
            self.pending_file.write_text("".join(json.dumps(r) + "\n" for r in self.pending))
        elif self.pending_file.exists():
            self.pending_file.unlink()

    @property
    def sync_hint(self) -> str | None:
        """How to send what could not be sent, or None when everything arrived. A send cut
        short by a signal is not a failure: it is queued on the run's thread, before the
        run's end."""
        if not (self.failed and self.pending):
            return None
        return (
            f"{len(self.pending)} records could not be sent to {self.run.tracking_uri}; "
            f"send them with: python -m toolkit.track.sync {self.pending_file.parent}"
        )


def sync_pending(run_dir: Path, tracking_uri: str | None = None) -> int:
    """Send ``unsynced_metrics.jsonl`` of ``run_dir`` to its runs (metrics, then how each
    run ended); returns the records sent."""
    import mlflow

    path = Path(run_dir) / UNSYNCED
    if not path.is_file():
        return 0
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    client = mlflow.MlflowClient(tracking_uri)
    for record in records:
        if "end" in record:
            client.set_terminated(record["run_id"], status=record["end"])
            continue
        for key, value in record["metrics"].items():
            client.log_metric(record["run_id"], clean_key(key), float(value), step=record["step"])
    path.unlink()
    return len(records)
