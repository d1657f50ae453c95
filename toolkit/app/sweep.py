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
import contextlib
import functools
import json
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from toolkit.app.interrupts import TRAPPED, raise_interrupted
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


def swept_values(cfg: DictConfig, choices: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """The values this job takes for the swept ``keys``: a config group's chosen option,
    else the composed value (lists as lists)."""
    values: dict[str, Any] = {}
    for key in keys:
        if key in choices:
            values[key] = choices[key]
            continue
        value = OmegaConf.select(cfg, key)
        values[key] = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
    return values


def job_name(cfg: DictConfig, choices: dict[str, Any], keys: list[str]) -> str:
    """A child run's name: what this job's swept keys take, short (``relu,tanh``,
    ``lr=0.01``; :func:`toolkit.track.ui.child_run_name`)."""
    from toolkit.track.ui import child_run_name

    return child_run_name(swept_values(cfg, choices, keys), keys)


def write_study_report(info: SweepInfo, folder: Path):
    """The study's table and figure (``toolkit.report``), written and logged to the
    parent; returns the report's path."""
    from toolkit.analysis.sweep_report import write_report
    from toolkit.track.client import tracking_client

    return write_report(tracking_client(info.tracking_uri), info.parent_run_id, folder)


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


def show_study_view(info: SweepInfo) -> None:
    """Store the study's runs-table view (swept params and test/acc as columns) on its
    experiment, and print where to open it."""
    from toolkit.track.client import tracking_client
    from toolkit.track.ui import experiment_url, study_view_tags

    client = tracking_client(info.tracking_uri)
    for key, value in study_view_tags(info.swept_keys).items():
        client.set_experiment_tag(info.experiment_id, key, value)
    print(
        f"study: mlflow ui, then {experiment_url('http://127.0.0.1:5000', info.experiment_id)}",
        file=sys.stderr,
    )


def resume_line(sweep_dir: Path) -> str:
    """The command that continues an interrupted sweep (finished jobs are skipped)."""
    args = [a for a in sys.argv[1:] if not a.startswith(("hydra.sweep.dir=", "trainer.resume="))]
    quoted = " ".join(shlex.quote(a) for a in args)
    folder = shlex.quote(str(sweep_dir))
    return f"python -m toolkit {quoted} hydra.sweep.dir={folder} trainer.resume=true"


def end_interrupted(info: SweepInfo, sweep_dir: Path) -> None:
    """At exit of a sweep that never reached its end: its parent and still-running
    children KILLED, and one line saying how to resume (best effort: the store may be
    gone)."""
    killed: list[str] = []
    if info.parent_run_id:
        from toolkit.track.parent import end_interrupted_sweep

        with contextlib.suppress(Exception):
            killed = end_interrupted_sweep(info)
    done = sum(
        json.loads(p.read_text()).get("status") == "FINISHED"
        for p in sweep_dir.glob(f"*/{RESULT_FILE}")
    )
    runs = (
        f"parent run {info.parent_run_id} and {len(killed)} running jobs marked KILLED; "
        if info.parent_run_id
        else ""
    )
    print(
        f"sweep interrupted: {runs}{done} jobs finished; resume with: {resume_line(sweep_dir)}",
        file=sys.stderr,
    )


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
            from toolkit.track.parent import reuse_parent_run, start_parent_run
            from toolkit.track.ui import experiment_tags

            info.tracking_uri = str(config.logger.tracking_uri)
            found = None
            if config.trainer.resume:
                found = reuse_parent_run(info.tracking_uri, info.study, info.swept_keys)
            reference = config.logger.reference  # published results: only with values
            published = OmegaConf.to_container(reference) if reference.get("values") else None
            info.experiment_id, info.parent_run_id = found or start_parent_run(
                info.tracking_uri,
                info.study,
                overrides,
                info.swept_keys,
                experiment_tags(),
                published,
            )
            show_study_view(info)
        info.save(sweep_dir)
        # a sweep that stops before its end (Ctrl-C, SIGTERM, a crashed sweeper) leaves its
        # parent and running children KILLED, not RUNNING forever, and says how to resume
        for signum in TRAPPED:
            signal.signal(signum, raise_interrupted)
        self._interrupted = functools.partial(end_interrupted, info, sweep_dir)
        atexit.register(self._interrupted)

    def _end(self, config: DictConfig) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        info = SweepInfo.load(sweep_dir)
        atexit.unregister(self._interrupted)
        results = [
            (path.parent.name, JobResult(**json.loads(path.read_text())))
            for path in sorted(sweep_dir.glob(f"*/{RESULT_FILE}"))
        ]
        failed = [(job, r) for job, r in results if r.status != "FINISHED"]
        objective = str(config.trainer.objective)
        report = None
        if info is not None and info.parent_run_id:
            from toolkit.track.parent import finish_parent_run

            finish_parent_run(info, [r for _, r in results], objective, sweep_dir)
            report = write_study_report(info, sweep_dir / "report")
        where = f"; parent run {info.parent_run_id} in {info.tracking_uri}" if report else ""
        print(
            f"sweep: {len(results) - len(failed)} of {len(results)} jobs finished; "
            f"outputs in {sweep_dir}{where}",
            file=sys.stderr,
        )
        if report:
            print(f"report: {report}", file=sys.stderr)
        if failed:
            for job, result in failed:
                print(f"failed job {job} ({result.name}): {result.error}", file=sys.stderr)
            raise SystemExit(1)
