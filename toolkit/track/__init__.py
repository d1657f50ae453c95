"""Experiment tracking with MLflow (imported lazily by the app)."""

import logging
import os

# MLflow's telemetry thread, when it cannot reach its config server (offline machines),
# removes a variable from os.environ while tracking requests iterate it: parallel sweep
# jobs then lose runs (bench/parallel_tracking.py). It sends nothing useful offline anyway.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# MLflow logs its chatter (new database tables, the uv project it found) at INFO on a
# handler of its own; the run's console shows only its warnings.
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
# A failing SQL store makes MLflow log the exception with its traceback before raising it;
# the toolkit reports that failure itself, in one line.
logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
# A server that drops mid-run should cost seconds per call, not MLflow's minutes.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
# MLflow draws a progress bar of its own for every artifact transfer (the checkpoint that
# trainer.resume=<run id> downloads, a logged model): noise beside the epoch bars.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
