"""Reading a sweep back from MLflow: the parent run, its children, their swept values,
final metrics, per-epoch histories and failure reasons.

A sweep is a parent run (tag ``toolkit.sweep=parent``, swept keys as a JSON list in tag
``toolkit.swept_keys``) with one child run per job (see :mod:`toolkit.app.sweep`). MLflow is
imported only inside the functions that use it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from toolkit.registry import ConfigError, close_matches
from toolkit.track.names import RUN_ID, TAG_REFERENCE

if TYPE_CHECKING:
    from toolkit.track.client import MlflowClient, Run

PARENT_TAG = "toolkit.sweep"
SWEPT_KEYS_TAG = "toolkit.swept_keys"
PARENT_ID_TAG = "mlflow.parentRunId"
FAILURE_TAG = "failure_reason"
SEED_KEY = "seed"
CHOICE_PREFIX = "choice/"
CURVE_GROUPS = frozenset({"optim", "schedule"})
CURVE_STUDIES = frozenset({"optimizers", "schedules"})
HISTORY_METRICS = ("val/acc",)
"""Per-epoch metrics read for every study (epochs to a target accuracy); curve studies
read every metric's history."""
PAGE_SIZE = 1000
"""Runs per ``search_runs`` page; a sweep of more children is read page by page."""
MISSING = "–"

Value = str | tuple[str, ...]
"""A swept key's value in one run: the param's text, or a tuple for a list param."""
History = dict[str, Sequence[float]]
"""``{"epoch": [1, 2, ...], metric: [...]}``, as :mod:`toolkit.viz.curves` draws it."""


@dataclass
class ChildRun:
    """One job of a sweep as MLflow recorded it."""

    run_id: str
    name: str
    status: str  # FINISHED, FAILED, KILLED or RUNNING
    values: dict[str, Value]  # swept key -> this job's value ("seed" included)
    metrics: dict[str, float]  # last value of each metric: test/*, last epoch's val/* ...
    histories: dict[str, dict[int, float]] = field(default_factory=dict)
    """Per-epoch metrics of a finished run: metric -> {epoch (1-based): value}."""
    error: str = ""  # the failure_reason tag of a failed run

    @property
    def finished(self) -> bool:
        return self.status == "FINISHED"


@dataclass
class StudyData:
    """A sweep's parent run and its children, in the order they started."""

    name: str  # the MLflow experiment, i.e. the study
    parent_id: str
    started: datetime  # the parent run's start (UTC)
    swept_keys: list[str]
    runs: list[ChildRun]
    # published results to print beside the table: {source, metric, values: {label: x}}
    reference: dict[str, Any] | None = None

    @property
    def config_keys(self) -> list[str]:
        """The swept keys that define a configuration (all but ``seed``)."""
        return [key for key in self.swept_keys if key != SEED_KEY]

    @property
    def finished(self) -> list[ChildRun]:
        return [run for run in self.runs if run.finished]

    @property
    def unfinished(self) -> list[ChildRun]:
        """Failed, killed or still running jobs, without the failed attempts of jobs that
        finished in another run (a resumed sweep runs a failed job again)."""
        done = {tuple(run.values.values()) for run in self.finished}
        return [
            run for run in self.runs if not run.finished and tuple(run.values.values()) not in done
        ]

    @property
    def compares_curves(self) -> bool:
        """An optimizer or schedule study, whose report compares per-epoch curves."""
        return compares_curves(self.name, self.config_keys)


def compares_curves(study: str, config_keys: Sequence[str]) -> bool:
    """Whether study ``study`` sweeping ``config_keys`` compares per-epoch curves."""
    groups = {key.split(".")[0] for key in config_keys}
    return study in CURVE_STUDIES or bool(groups & CURVE_GROUPS)


def find_parent_run(client: MlflowClient, experiment_or_run: str) -> Run:
    """The sweep parent run named by a run id, or the latest one of an experiment (study).

    Raises:
        ConfigError: (one line) no such run or experiment (naming close matches among the
            experiments that exist), the run is not a sweep's parent, or the experiment
            holds no sweep.
    """
    if RUN_ID.fullmatch(experiment_or_run):
        return _parent_by_id(client, experiment_or_run)
    return _latest_parent(client, experiment_or_run)


def _parent_by_id(client: MlflowClient, run_id: str) -> Run:
    from toolkit.track.client import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise ConfigError(f"no MLflow run {run_id} in {client.tracking_uri}") from None
    if run.data.tags.get(PARENT_TAG) != "parent":
        parent = run.data.tags.get(PARENT_ID_TAG)
        hint = f"; it is a job of the sweep {parent}" if parent else ""
        raise ConfigError(f"run {run_id} is not the parent run of a sweep{hint}")
    return run


def _latest_parent(client: MlflowClient, name: str) -> Run:
    experiment = client.get_experiment_by_name(name)
    if experiment is None or experiment.lifecycle_stage != "active":
        raise ConfigError(_unknown_experiment_message(client, name))
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{PARENT_TAG}` = 'parent'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise ConfigError(
            f"experiment '{name}' holds no sweep (no run tagged {PARENT_TAG}=parent); "
            "run one with python -m toolkit -m ..."
        )
    return runs[0]


def _unknown_experiment_message(client: MlflowClient, name: str) -> str:
    names = sorted(experiment.name for experiment in client.search_experiments())
    hint = close_matches(name, names)
    suggestion = f"; did you mean: {', '.join(hint)}?" if hint else ";"
    return (
        f"no experiment '{name}' in {client.tracking_uri}{suggestion} "
        f"experiments: {', '.join(names) or 'none'}"
    )


def collect(client: MlflowClient, parent: Run) -> StudyData:
    """Read a sweep's children: swept values, final metrics, the per-epoch histories the
    report draws (every metric for curve studies, else val/acc) of the finished ones and
    the failure reason of the others."""
    keys = json.loads(parent.data.tags.get(SWEPT_KEYS_TAG, "[]"))
    name = client.get_experiment(parent.info.experiment_id).name
    curves = compares_curves(name, [key for key in keys if key != SEED_KEY])
    return StudyData(
        name=name,
        parent_id=parent.info.run_id,
        started=datetime.fromtimestamp(parent.info.start_time / 1000, UTC),
        swept_keys=keys,
        runs=[_child(client, run, keys, curves) for run in child_runs(client, parent)],
        reference=json.loads(parent.data.tags.get(TAG_REFERENCE, "null")),
    )


def child_runs(client: MlflowClient, parent: Run) -> list[Run]:
    """All children of ``parent`` (every page of the search, :data:`PAGE_SIZE` a page),
    oldest first (then by name)."""
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.`{PARENT_ID_TAG}` = '{parent.info.run_id}'",
            order_by=["attributes.start_time ASC", "attributes.run_name ASC"],
            max_results=PAGE_SIZE,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _child(client: MlflowClient, run: Run, keys: list[str], curves: bool) -> ChildRun:
    child = ChildRun(
        run_id=run.info.run_id,
        name=run.info.run_name or run.info.run_id,
        status=run.info.status,
        values={key: swept_value(run.data.params, key) for key in keys},
        metrics=dict(run.data.metrics),
        error=run.data.tags.get(FAILURE_TAG, ""),
    )
    if child.finished:
        child.histories = {
            key: _history(client, child.run_id, key)
            for key in child.metrics
            if not key.startswith("test/") and (curves or key in HISTORY_METRICS)
        }
    return child


def _history(client: MlflowClient, run_id: str, key: str) -> dict[int, float]:
    """``{epoch: value}`` of one metric logged with step=epoch (the latest value per step)."""
    points = sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
    return {point.step: point.value for point in points}


def swept_value(params: dict[str, str], key: str) -> Value:
    """A swept key's value in a run's params: param ``key``, else the option chosen for the
    config group ``key`` (param ``choice/<key>``). A list becomes a tuple, whether logged
    as JSON (``["relu", "tanh"]``) or readably (``relu,tanh``)."""
    text = params.get(key, params.get(CHOICE_PREFIX + key))
    if text is None:
        return MISSING
    try:
        parsed = json.loads(text)
    except ValueError:
        return tuple(text.split(",")) if "," in text else text
    return tuple(str(item) for item in parsed) if isinstance(parsed, list) else text
