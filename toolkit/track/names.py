"""Names the tracking layer defines once: run tags, artifact folders and files, and how
config keys become MLflow keys.

Everything that reads or writes a run (the lifecycle, resume, sweeps, reports) uses these
constants instead of spelling the strings again.
"""

from __future__ import annotations

import re
from typing import Any

# Tags on runs
TAG_OUTPUT_DIR = "toolkit.output_dir"  # the run folder on the machine that trained it
TAG_FINGERPRINT = "toolkit.fingerprint"  # of the config that trained it
TAG_END = "toolkit.end"  # completed | interrupted | failed
TAG_FAILURE = "failure_reason"  # one line: what ended the run
TAG_CHECKPOINT = "toolkit.checkpoint"  # artifact path of the newest complete resume checkpoint
TAG_FINAL_CHECKPOINT = "toolkit.final_checkpoint"  # artifact path of the final weights
TAG_SWEEP = "toolkit.sweep"  # "parent" on a sweep's parent run
TAG_SWEPT_KEYS = "toolkit.swept_keys"  # JSON list of the keys a sweep varies
TAG_SWEEP_END = "toolkit.sweep_end"  # completed | interrupted
TAG_REFERENCE = "toolkit.reference"  # JSON: published results the study report prints
TAG_PARENT = "mlflow.parentRunId"
TAG_PROCESS = "toolkit.process"  # JSON: the process that owns a RUNNING run (track/orphans)
STALE_ON_RESUME = (TAG_FAILURE, TAG_END)  # tags a resumed run must not keep

# Artifacts
RESUME_FOLDER = "resume"  # resume checkpoints (two slots, see tracked_run)
# The final checkpoint is stored once: inside the pyfunc model (the pyfunc's own artifact,
# so the model stays self-contained), or under checkpoint/ when no model is logged (and in
# runs from before the tag)
MODEL_CHECKPOINT = "model/artifacts/checkpoint.npz"
CHECKPOINT_ARTIFACT = "checkpoint/checkpoint.npz"
FIGURES_FOLDER = "figures"
ERROR_FILE = "error.txt"
LAST_CHECKPOINT = "checkpoint_last.npz"  # in a run folder: the newest epoch's resume state

MAX_PARAM_LENGTH = 6000  # MLflow's limit on a param value
_BAD_KEY_CHARS = re.compile(r"[^A-Za-z0-9_\-. /]")
RUN_ID = re.compile(r"^[0-9a-f]{32}$")  # an MLflow run id


def clean_key(key: str) -> str:
    """An MLflow-safe metric/param key: unsupported characters become ``_``."""
    return _BAD_KEY_CHARS.sub("_", key)


def flatten_params(config: dict[str, Any]) -> dict[str, str]:
    """Nested dicts -> ``{"optim.lr": "0.001", "model.activation": "relu,tanh", ...}``:
    readable values (:func:`toolkit.track.ui.param_value`), MLflow-safe keys, values cut to
    MLflow's 6000 characters."""
    from toolkit.track.ui import readable_params

    return {clean_key(k): v[:MAX_PARAM_LENGTH] for k, v in readable_params(config).items()}
