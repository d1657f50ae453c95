"""Find what ``trainer.resume`` points at, and refuse what would mix two runs.

Every epoch checkpoint and job result carries the *fingerprint* of the config that
trained it (what changes the training: not ``logger``, the progress bar, the thread
count, the data folder or ``trainer.resume`` itself) and the config's flattened values,
so a resume of a checkpoint trained otherwise is refused with the keys that differ.
``trainer.resume`` may be ``true`` (the newest checkpoint of exactly this config), a
checkpoint file, a run folder, or an MLflow run id (its newest checkpoint artifact, so a
fresh folder on another machine can continue it).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from toolkit.registry import ConfigError
from toolkit.track.names import LAST_CHECKPOINT, RUN_ID, flatten_params
from toolkit.track.sweep_records import RESULT_FILE, JobResult
from toolkit.train.checkpoint import read_checkpoint

SEARCH_ROOTS = ("outputs", "multirun")
NOT_TRAINING = ("logger", "trainer.resume", "trainer.progress", "trainer.threads",
                "dataset.root", "dataset.download", "post_fit")  # fmt: skip


def training_values(cfg: DictConfig) -> dict[str, str]:
    """The config's flattened values that decide the training (see NOT_TRAINING)."""
    values = flatten_params(OmegaConf.to_container(cfg, resolve=True))
    return {
        k: v
        for k, v in values.items()
        if not any(k == n or k.startswith(f"{n}.") for n in NOT_TRAINING)
    }


def config_fingerprint(cfg: DictConfig) -> str:
    """A short hash of :func:`training_values`."""
    text = json.dumps(training_values(cfg), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def differing_keys(recorded: dict[str, str], current: dict[str, str]) -> list[str]:
    """``key: old -> new`` for every key whose value differs (or exists on one side);
    a component whose ``name`` changed is named once, not by each of its settings."""
    keys = sorted(set(recorded) | set(current))
    changed = [k for k in keys if recorded.get(k) != current.get(k)]
    swapped = {k.removesuffix(".name") for k in changed if k.endswith(".name")}
    shown = [k for k in changed if k.endswith(".name") or k.rpartition(".")[0] not in swapped]
    return [f"{k}: {recorded.get(k, '(none)')} -> {current.get(k, '(none)')}" for k in shown]


def checkpoint_meta(path: Path) -> dict[str, Any]:
    """A checkpoint's metadata, without loading its arrays ({} if unreadable)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return json.loads(str(archive["meta"]))
    except Exception:  # a truncated or foreign file is simply not a candidate
        return {}


def _newest_first(pattern: str, roots: list[Path]) -> list[Path]:
    found = {p for root in roots if root.is_dir() for p in root.glob(pattern)}
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def check_same_config(source: Path | str, meta: dict[str, Any], cfg: DictConfig) -> None:
    """ConfigError naming the differing keys unless ``meta`` was trained with ``cfg``."""
    if meta.get("fingerprint") == config_fingerprint(cfg):
        return
    recorded = meta.get("config")
    changes = differing_keys(recorded, training_values(cfg)) if recorded else []
    detail = "; ".join(changes[:8]) if changes else "its fingerprint differs"
    raise ConfigError(
        f"trainer.resume={source}: that checkpoint was trained with another config "
        f"({detail}); resume with the same settings, or start from its weights with "
        f"transfer.init_from={source}"
    )


def find_checkpoint(resume: Any, cfg: DictConfig, search: list[Path], fetch_artifact=None) -> Path:
    """The checkpoint ``trainer.resume`` names, checked to be of this config.

    Args:
        resume: ``true``, a checkpoint file, a run folder, or an MLflow run id.
        cfg: the command's config.
        search: folders searched (recursively) for ``trainer.resume=true``.
        fetch_artifact: ``run_id -> local checkpoint path`` for run ids (None: no store).
    """
    if resume is True:
        fingerprint = config_fingerprint(cfg)
        for path in _newest_first(f"**/{LAST_CHECKPOINT}", search):
            if checkpoint_meta(path).get("fingerprint") == fingerprint:
                return path
        folders = " or ".join(str(f) for f in search)
        raise ConfigError(
            f"trainer.resume=true: no checkpoint of this configuration under {folders}; "
            "pass trainer.resume=<run folder, checkpoint or MLflow run id>"
        )
    target = Path(str(resume))
    if (target / LAST_CHECKPOINT).is_file():
        target = target / LAST_CHECKPOINT
    elif not target.is_file():
        if not (RUN_ID.match(str(resume)) and fetch_artifact is not None):
            raise ConfigError(
                f"trainer.resume={resume}: not a checkpoint, a run folder holding "
                f"{LAST_CHECKPOINT}, or an MLflow run id"
            )
        target = fetch_artifact(str(resume))
    _, meta = read_checkpoint(target)  # one line for a corrupt, truncated or pickled file
    check_same_config(resume, meta, cfg)
    return target


def find_finished_job(fingerprint: str, folders: list[Path]) -> JobResult | None:
    """The newest FINISHED sweep job result of exactly this configuration in ``folders``
    (searched recursively), if any."""
    for path in _newest_first(f"**/{RESULT_FILE}", folders):
        try:
            result = JobResult(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):  # a foreign or half-written file
            continue
        if result.status == "FINISHED" and result.fingerprint == fingerprint:
            return result
    return None
