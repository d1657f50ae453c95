"""The MLflow handles the layers above tracking use: the app, the analyses and
``python -m toolkit.report`` reach MLflow only through :mod:`toolkit.track` (so its settings,
made in ``toolkit/track/__init__.py``, are in place before MLflow loads; the layering test
checks that no other package imports MLflow).

Importing this module imports MLflow: callers import it inside the functions that use it.
"""

from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

__all__ = ["MlflowClient", "MlflowException", "Run", "download_artifact", "tracking_client"]


def tracking_client(tracking_uri: str | None) -> MlflowClient:
    """A client of the store at ``tracking_uri`` (None: MLflow's current one)."""
    return MlflowClient(tracking_uri)


def download_artifact(artifact_uri: str, tracking_uri: str | None) -> Path:
    """Download ``artifact_uri`` (``runs:/<id>/<path>``) from ``tracking_uri``; return the
    local path. MLflow's errors (unknown run, missing artifact, unreachable store) pass
    through."""
    import mlflow.artifacts

    return Path(
        mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri, tracking_uri=tracking_uri)
    )
