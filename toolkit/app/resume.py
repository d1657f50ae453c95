"""Find what ``trainer.resume`` points at: the last epoch checkpoint of a run, or the
result of a sweep job that already finished.

Every epoch checkpoint and job result carries the *fingerprint* of the resolved config
(without ``trainer.resume`` itself), so ``trainer.resume=true`` picks the newest one of
exactly this configuration under ``outputs/`` and ``multirun/``.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from toolkit.registry import ConfigError
from toolkit.track.sweep_records import RESULT_FILE, JobResult

LAST_CHECKPOINT = "checkpoint_last.npz"
SEARCH_ROOTS = ("outputs", "multirun")
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def config_fingerprint(cfg: DictConfig) -> str:
    """A short hash of the resolved config, ignoring ``trainer.resume``."""
    values = OmegaConf.to_container(cfg, resolve=True)
    values.get("trainer", {}).pop("resume", None)
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def _meta(path: Path) -> dict[str, Any]:
    """A checkpoint's metadata, without loading its arrays ({} if unreadable)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return json.loads(str(archive["meta"]))
    except Exception:  # a truncated or foreign file is simply not a candidate
        return {}


def _newest_first(pattern: str, roots: list[Path]) -> list[Path]:
    found = [p for root in roots if root.is_dir() for p in root.glob(pattern)]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def find_checkpoint(resume: Any, fingerprint: str, cwd: Path, tracking_uri: str | None) -> Path:
    """The checkpoint ``trainer.resume`` names: ``true`` (newest of this configuration),
    a checkpoint file, a run directory, or an MLflow run id."""
    if resume is True:
        for path in _newest_first(f"**/{LAST_CHECKPOINT}", [cwd / r for r in SEARCH_ROOTS]):
            if _meta(path).get("fingerprint") == fingerprint:
                return path
        raise ConfigError(
            f"trainer.resume=true: no checkpoint of this configuration under "
            f"{cwd}/outputs or {cwd}/multirun; pass trainer.resume=<run dir or checkpoint>"
        )
    target = Path(str(resume))
    if target.is_file():
        return target
    if (target / LAST_CHECKPOINT).is_file():
        return target / LAST_CHECKPOINT
    if _RUN_ID.match(str(resume)) and tracking_uri:
        return _checkpoint_of_run(str(resume), tracking_uri)
    raise ConfigError(
        f"trainer.resume={resume}: not a checkpoint, a run directory holding {LAST_CHECKPOINT}, "
        "or an MLflow run id"
    )


def _checkpoint_of_run(run_id: str, tracking_uri: str) -> Path:
    import mlflow

    try:
        run = mlflow.MlflowClient(tracking_uri).get_run(run_id)
    except Exception as err:
        raise ConfigError(f"trainer.resume={run_id}: no such MLflow run ({err})") from None
    folder = Path(run.data.tags.get("toolkit.output_dir", ""))
    if not (folder / LAST_CHECKPOINT).is_file():
        raise ConfigError(f"trainer.resume={run_id}: its run directory {folder} has no checkpoint")
    return folder / LAST_CHECKPOINT


def find_finished_job(fingerprint: str, cwd: Path) -> JobResult | None:
    """The newest FINISHED sweep job result of exactly this configuration, if any."""
    for path in _newest_first(f"*/*/*/{RESULT_FILE}", [cwd / "multirun"]):
        result = JobResult(**json.loads(path.read_text()))
        if result.status == "FINISHED" and result.fingerprint == fingerprint:
            return result
    return None
