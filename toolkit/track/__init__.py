"""Experiment tracking with MLflow (imported lazily by the app)."""

import os

# MLflow's telemetry thread, when it cannot reach its config server (offline machines),
# removes a variable from os.environ while tracking requests iterate it: parallel sweep
# jobs then lose runs (bench/parallel_tracking.py). It sends nothing useful offline anyway.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
