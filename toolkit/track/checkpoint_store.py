"""Resume checkpoints kept in a run's artifacts, so any machine that reaches the tracking
server can continue the run (no shared filesystem needed), and where a finished run's
final checkpoint is (inside its pyfunc model, or under ``checkpoint/``)."""

from __future__ import annotations

from pathlib import Path

from toolkit.registry import ConfigError
from toolkit.track.names import (
    CHECKPOINT_ARTIFACT,
    MODEL_CHECKPOINT,
    RESUME_FOLDER,
    TAG_CHECKPOINT,
    TAG_FINAL_CHECKPOINT,
    TAG_OUTPUT_DIR,
)


def fetch_checkpoint(tracking_uri: str, run_id: str, dest: Path, local_name: str) -> Path:
    """The newest resume checkpoint of run ``run_id``: downloaded from its artifacts into
    ``dest``, or (a run logged before checkpoints were artifacts) the file in the run
    folder its tag names, if that folder is on this machine."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    try:
        run = client.get_run(run_id)
    except Exception as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(
            f"trainer.resume={run_id}: no such MLflow run at {tracking_uri} ({first})"
        ) from None
    artifact = run.data.tags.get(TAG_CHECKPOINT)
    if artifact:
        dest.mkdir(parents=True, exist_ok=True)
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=artifact, dst_path=str(dest), tracking_uri=tracking_uri
        )
        return Path(local)
    folder = Path(run.data.tags.get(TAG_OUTPUT_DIR, ""))
    if (folder / local_name).is_file():
        return folder / local_name
    raise ConfigError(
        f"trainer.resume={run_id}: the run has no resume checkpoint in its artifacts "
        f"({RESUME_FOLDER}/) and its run folder {folder} is not on this machine"
    )


def drop_checkpoints(tracking_uri: str, run_id: str) -> None:
    """Delete a finished run's resume checkpoints (its model keeps the final weights);
    stores that cannot delete artifacts keep them."""
    import mlflow
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    client = mlflow.MlflowClient(tracking_uri)
    run = client.get_run(run_id)
    if TAG_CHECKPOINT not in run.data.tags:
        return
    try:
        get_artifact_repository(run.info.artifact_uri).delete_artifacts(RESUME_FOLDER)
    except Exception:  # NotImplementedError and friends: the slots stay, harmless
        return
    client.delete_tag(run_id, TAG_CHECKPOINT)


def final_checkpoint_uri(tracking_uri: str | None, run_id: str) -> str:
    """The artifact URI of run ``run_id``'s final checkpoint, where its tag
    ``toolkit.final_checkpoint`` says: inside its pyfunc model
    (``model/artifacts/checkpoint.npz``: the URI is in the model's own artifact location,
    since MLflow resolves ``runs:/<id>/model`` through the process's tracking URI, not
    ``tracking_uri``) or ``checkpoint/checkpoint.npz`` (no model logged, or a run from
    before the tag). MLflow's error for an unknown run passes through."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    run = client.get_run(run_id)
    where = run.data.tags.get(TAG_FINAL_CHECKPOINT, CHECKPOINT_ARTIFACT)
    if where == MODEL_CHECKPOINT:
        name, _, inside = where.partition("/")
        outputs = run.outputs.model_outputs if run.outputs else []
        for model in (client.get_logged_model(output.model_id) for output in outputs):
            if model.name == name:
                return f"{model.artifact_location.rstrip('/')}/{inside}"
    return f"runs:/{run_id}/{where}"
