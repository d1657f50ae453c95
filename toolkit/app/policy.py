"""One failure policy per run, chosen once: what an ending becomes.

Every way a job can end goes through one method here: ``finished``, ``rejected`` (bad
input found while building, before any work), ``failed`` (an exception or a divergence
during the work), ``interrupted`` (SIGINT, SIGTERM, SIGHUP) and, for sweeps,
``skipped`` (the job already finished in an earlier attempt).

* a single run prints one line and exits: 0 done, 2 rejected (its empty run folder
  removed), 1 failed, 128 + signal interrupted (with the resume command);
* a sweep job records every failure in a FAILED child run and its ``job_result.json`` and
  returns NaN, so the other jobs go on (the sweep exits non-zero at its end); an Optuna
  trial re-raises instead (Optuna marks the trial FAIL and searches on); an interrupted
  job is KILLED and stops the sweep.
"""

from __future__ import annotations

import math
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from toolkit.app import console
from toolkit.app.interrupts import Interrupted, signals_held
from toolkit.app.resume import LAST_CHECKPOINT
from toolkit.app.tracking import Recorder
from toolkit.registry import one_line
from toolkit.track.sweep_records import JobResult, SweepInfo


@dataclass
class RunContext:
    """Where and as what a job runs.

    Attributes:
        output_dir: its run folder (Hydra's).
        name: its run name.
        argv: the command's arguments (for the resume line).
        sweep: the sweep it belongs to (None for a single run).
        optuna: whether an Optuna sweeper drives the sweep.
        choices: Hydra's chosen option per config group.
        threads: BLAS threads where ``trainer.threads`` is null.
        fingerprint: of the config (see toolkit.app.resume).
        config_values: the config's values that decide the training (checkpoints keep
            them, so a refused resume names what differs).
    """

    output_dir: Path
    name: str
    argv: list[str] = field(default_factory=list)
    sweep: SweepInfo | None = None
    optuna: bool = False
    choices: dict = field(default_factory=dict)
    threads: int | None = None
    fingerprint: str = ""
    config_values: dict[str, str] = field(default_factory=dict)

    @property
    def resume_command(self) -> str:
        args = [a for a in self.argv if not a.startswith("trainer.resume=")]
        if self.sweep is not None:
            args = [a for a in args if not a.startswith("hydra.sweep.dir=")]
            target = (
                f"hydra.sweep.dir={shlex.quote(str(self.output_dir.parent))} trainer.resume=true"
            )
        else:
            target = f"trainer.resume={shlex.quote(str(self.output_dir))}"
        return f"python -m toolkit {' '.join(shlex.quote(a) for a in args)} {target}".replace(
            "  ", " "
        )


def remove_empty_run_folder(folder: Path) -> None:
    """Remove a rejected run's folder if it holds only what Hydra put there (its config
    copies and log), then the folders above it that are left empty (``outputs/<date>``),
    up to the working folder."""
    if not folder.is_dir() or not {p.name for p in folder.iterdir()} <= {".hydra", "toolkit.log"}:
        return
    shutil.rmtree(folder, ignore_errors=True)
    cwd = Path.cwd().resolve()
    for parent in folder.resolve().parents:
        if parent == cwd or cwd not in parent.parents or any(parent.iterdir()):
            return
        parent.rmdir()


def done_line(metrics: dict[str, float], ctx: RunContext, recorder: Recorder) -> str:
    summary = "  ".join(
        f"{k}={v:.4f}" for k, v in metrics.items() if k.startswith(("test/", "probe/test"))
    )
    return f"done: {summary}; outputs in {ctx.output_dir}{recorder.where}"


class SingleRunPolicy:
    """A run of its own: one line, then the exit code says how it ended."""

    def finished(
        self, metrics: dict[str, float], ctx: RunContext, recorder: Recorder, objective: str
    ):
        recorder.end("FINISHED")
        console.say(done_line(metrics, ctx, recorder))
        return metrics.get(objective)

    def rejected(self, error: Exception, ctx: RunContext, recorder: Recorder) -> NoReturn:
        recorder.end("FAILED", error, how="rejected")
        console.error(str(error))
        remove_empty_run_folder(ctx.output_dir)
        sys.exit(2)

    def failed(self, error: Exception, ctx: RunContext, recorder: Recorder) -> NoReturn:
        with signals_held():
            stored = recorder.end("FAILED", error, how="failed")
        kept = recorder.sync_hint
        marked = " (run marked FAILED)" if recorder.run_id and stored else ""
        where = f"; {kept}" if kept else ""
        message = one_line(error, typed=True, limit=None)
        console.error(f"{message}{marked}; outputs in {ctx.output_dir}{where}")
        sys.exit(1)

    def interrupted(self, signal: Interrupted, ctx: RunContext, recorder: Recorder) -> NoReturn:
        with signals_held():
            recorder.end("KILLED", signal, how="interrupted")
        killed = " (run KILLED)" if recorder.run_id else ""
        if (ctx.output_dir / LAST_CHECKPOINT).is_file():
            console.error(f"interrupted by {signal}{killed}; resume with: {ctx.resume_command}")
        else:
            console.error(
                f"interrupted by {signal} before the first epoch ended{killed}; nothing to "
                "resume: run the command again"
            )
            remove_empty_run_folder(ctx.output_dir)
        sys.exit(signal.exit_code)

    def skipped(self, result: JobResult, ctx: RunContext, objective: str):
        raise AssertionError("single runs are never skipped")


class SweepJobPolicy:
    """A job of a sweep: failures are recorded and returned, so the others go on."""

    def __init__(self, optuna: bool = False) -> None:
        self.optuna = optuna

    def _save(self, ctx: RunContext, status: str, recorder: Recorder, metrics=None, error=None):
        JobResult(ctx.name, status, metrics or {}, error, recorder.run_id, ctx.fingerprint).save(
            ctx.output_dir
        )

    def finished(
        self, metrics: dict[str, float], ctx: RunContext, recorder: Recorder, objective: str
    ):
        recorder.end("FINISHED")
        self._save(ctx, "FINISHED", recorder, metrics)
        console.say(done_line(metrics, ctx, recorder))
        return metrics.get(objective, math.nan)

    def failed(self, error: Exception, ctx: RunContext, recorder: Recorder):
        message = one_line(error, typed=True, limit=None)
        try:
            recorder.ensure_started()
            if not recorder.end("FAILED", error, how="failed"):
                message += " (MLflow could not record it)"
        except Exception as tracking_error:  # the result file below is written regardless
            message += f" (MLflow could not record it: {type(tracking_error).__name__})"
        self._save(ctx, "FAILED", recorder, error=message)
        console.error(f"job {ctx.name}: {message}")
        if self.optuna:
            raise error  # Optuna marks the trial FAIL (it rejects a NaN value) and searches on
        return math.nan

    rejected = failed  # a value only this job of the sweep takes: the same as a failure

    def interrupted(self, signal: Interrupted, ctx: RunContext, recorder: Recorder) -> NoReturn:
        with signals_held():
            recorder.end("KILLED", signal, how="interrupted")
            self._save(ctx, "KILLED", recorder, error=str(signal))
        console.error(f"job {ctx.name} interrupted by {signal} (run KILLED)")
        raise signal

    def skipped(self, result: JobResult, ctx: RunContext, objective: str):
        result.name = ctx.name
        result.save(ctx.output_dir)
        console.say(f"skipped: job {ctx.name} already finished (run {result.run_id})")
        return result.metrics.get(objective, math.nan)
