"""Hydra multirun sweeps as one MLflow parent run with a child run per job.

Before any job starts, :class:`SweepCallback` creates the tracking store, the experiment
and the parent run (so parallel jobs never race to create a fresh SQLite schema) and
writes ``sweep.json`` into the sweep folder. Every job, in whatever process or machine a
launcher runs it, reads that file to find its parent (no ``MLFLOW_RUN_ID`` in the
environment), records itself as a child, and writes ``job_result.json`` into its own
folder instead of raising, so one failing job never stops the others. At the end the
callback summarises the children on the parent (best child, counts, report), prints which
jobs failed and exits non-zero if any did.
"""

from __future__ import annotations

import atexit
import functools
import json
import sys
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from toolkit.track.sweep_records import RESULT_FILE, JobResult, SweepInfo


def swept_keys(task_overrides: list[str], sweeper_params: dict[str, Any] | None) -> list[str]:
    """Keys the sweep varies: command-line sweep overrides (``optim=sgd,adam``) and the
    sweeper's ``params`` (experiment presets), in order, without duplicates."""
    keys: list[str] = []
    parser = OverridesParser.create()
    for override in parser.parse_overrides(task_overrides):
        if override.is_sweep_override():
            keys.append(override.get_key_element().lstrip("+~"))
    for key in sweeper_params or {}:
        keys.append(str(key).lstrip("+~"))
    return list(dict.fromkeys(keys))


def job_name(task_overrides: list[str], keys: list[str]) -> str:
    """A child run's name: the values this job takes for the swept keys."""
    parser = OverridesParser.create()
    parts = []
    for override in parser.parse_overrides(task_overrides):
        key = override.get_key_element().lstrip("+~")
        if key in keys:
            parts.append(f"{key}={override.get_value_element_as_str()}")
    return ",".join(parts) or "job"


def write_study_report(info: SweepInfo, folder: Path) -> None:
    """The study's table and figure (``toolkit.report``), written and logged to the parent."""
    import mlflow

    from toolkit.analysis.sweep_report import write_report

    report = write_report(mlflow.MlflowClient(info.tracking_uri), info.parent_run_id, folder)
    print(f"report: {report}", file=sys.stderr)


def loudly(hook, config: DictConfig) -> None:
    """Run a callback hook; any error stops the sweep with a message and exit code 2
    (Hydra itself would only print a warning and carry on)."""
    try:
        hook(config)
    except SystemExit:
        raise
    except Exception as err:
        print(
            f"error: sweep {hook.__name__.strip('_')}: {type(err).__name__}: {err}", file=sys.stderr
        )
        raise SystemExit(2) from None


class SweepCallback(Callback):
    """Creates the parent run before the jobs and summarises them afterwards."""

    _interrupted = None  # ends the parent run at exit if the sweep never reached its end

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        loudly(self._start, config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        loudly(self._end, config)

    def _start(self, config: DictConfig) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        params = config.hydra.sweeper.get("params")
        params = OmegaConf.to_container(params) if isinstance(params, DictConfig) else {}
        overrides = list(config.hydra.overrides.task)
        info = SweepInfo(swept_keys(overrides, params), study=str(config.logger.experiment))
        if config.logger.enabled:
            from toolkit.track.mlflow_run import (
                end_interrupted_parent_run,
                reuse_parent_run,
                start_parent_run,
            )

            info.tracking_uri = str(config.logger.tracking_uri)
            found = None
            if config.trainer.resume:
                found = reuse_parent_run(info.tracking_uri, info.study, info.swept_keys)
            info.experiment_id, info.parent_run_id = found or start_parent_run(
                info.tracking_uri, info.study, overrides, info.swept_keys
            )
            # a sweep that stops before its end (Ctrl-C, a crashed sweeper) leaves its
            # parent KILLED, not RUNNING forever
            self._interrupted = functools.partial(end_interrupted_parent_run, info)
            atexit.register(self._interrupted)
        info.save(sweep_dir)

    def _end(self, config: DictConfig) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        info = SweepInfo.load(sweep_dir)
        results = [
            (path.parent.name, JobResult(**json.loads(path.read_text())))
            for path in sorted(sweep_dir.glob(f"*/{RESULT_FILE}"))
        ]
        failed = [(job, r) for job, r in results if r.status != "FINISHED"]
        objective = str(config.trainer.objective)
        if info is not None and info.parent_run_id:
            from toolkit.track.mlflow_run import finish_parent_run

            finish_parent_run(info, [r for _, r in results], objective, sweep_dir)
            atexit.unregister(self._interrupted)
            write_study_report(info, sweep_dir / "report")
        print(
            f"sweep: {len(results) - len(failed)} of {len(results)} jobs finished; "
            f"outputs in {sweep_dir}",
            file=sys.stderr,
        )
        if failed:
            for job, result in failed:
                print(f"failed job {job} ({result.name}): {result.error}", file=sys.stderr)
            raise SystemExit(1)
