"""Plain records a sweep leaves on disk: ``sweep.json`` (the sweep) and ``job_result.json``
(each job), shared by the launcher's process and every job's process."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from toolkit.train.metrics import higher_is_better

SWEEP_FILE = "sweep.json"
RESULT_FILE = "job_result.json"


@dataclass
class SweepInfo:
    """What every job of a sweep needs to know about it (``sweep.json``)."""

    swept_keys: list[str]
    study: str
    tracking_uri: str | None = None
    experiment_id: str | None = None
    parent_run_id: str | None = None

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / SWEEP_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, folder: Path) -> SweepInfo | None:
        path = folder / SWEEP_FILE
        return cls(**json.loads(path.read_text())) if path.is_file() else None


@dataclass
class JobResult:
    """How one job ended (``job_result.json`` in its output folder)."""

    name: str
    status: str  # FINISHED | FAILED
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    run_id: str | None = None
    fingerprint: str | None = None  # of the job's resolved config (toolkit.app.resume)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / RESULT_FILE).write_text(json.dumps(asdict(self), indent=2))


def best_result(results: list[JobResult], objective: str) -> JobResult | None:
    """The finished job with the best ``objective`` (max for accuracies, min otherwise)."""
    scored = [r for r in results if r.status == "FINISHED" and objective in r.metrics]
    scored = [r for r in scored if not math.isnan(r.metrics[objective])]
    if not scored:
        return None
    sign = 1.0 if higher_is_better(objective) else -1.0
    return max(scored, key=lambda r: sign * r.metrics[objective])
