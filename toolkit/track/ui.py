"""What a study looks like in the MLflow UI: pure helpers the tracking code calls.

None of these import MLflow; they turn the toolkit's config and results into the tags,
param values, run names and metrics that make MLflow 3's UI a study browser:

- :func:`experiment_tags`, :func:`study_view_tags`, :func:`experiment_url`: the experiment
  opens on its runs table (a "Machine learning" experiment), not on the GenAI "Overview"
  page of traces, with the swept params and ``test/acc`` as columns;
- :func:`param_value` / :func:`readable_params`: list params read ``relu,tanh``, not
  ``["relu", "relu"]``;
- :func:`irrelevant_params` / :func:`relevant_params`: the probe, transfer, augmentation and
  early-stopping settings a run did not use are left out of its params;
- :func:`child_run_name`: short names that say what varies (``relu,tanh``, ``lr=0.01``,
  ``relu,tanh s=1``) and fit the runs table's default column width;
- :func:`parent_headline_metrics`: the parent run carries the best child's metrics under
  the children's own keys (``test/acc``), so one column sorts and charts them all;
- :func:`runs_table_columns`: the columns a study's runs table should show first.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from toolkit.train.metrics import higher_is_better

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
"""The experiment tag MLflow 3's UI reads for the experiment's kind (its JS bundle:
``e.find(e => "mlflow.experimentKind" === e.key)``)."""

MACHINE_LEARNING_KIND = "custom_model_development"
"""The kind the UI labels "Machine learning": the experiment page opens on its runs
(the other kinds: ``genai_development``, ``*_inferred``, ``no_inferred_type``)."""

WORKFLOW_TYPE_QUERY = "workflowType=machine_learning"
"""MLflow 3.17's UI takes the kind from this URL query, else from the browser's last choice
of its "GenAI / Model training" switch (localStorage ``mlflow.workflowType``, GenAI at
first), and no longer from the tag: links printed for people must carry it."""

SHARED_VIEW_TAG_PREFIX = "mlflow.sharedViewState."
"""An experiment tag ``mlflow.sharedViewState.<key>`` holds a runs-table view (JSON) that
the UI loads for the URL query ``viewStateShareKey=<key>``: columns, sort, charts."""

VIEW_KEY = "toolkit"
"""The key of the study's view (:func:`study_view_tags`)."""

LIST_SEPARATOR = ","
SEED_KEY = "seed"
SEED_SHORT = "s"
"""A seed in a run name: ``relu,tanh s=1`` (the name column shows about 16 characters)."""

NONE_TEXTS = frozenset({"", "None", "null", "none"})
PROBE_PREFIX = "probe."
TRANSFER_PREFIX = "transfer."
AUGMENT_PREFIX = "augment."
REFERENCE_PREFIX = "logger.reference"
EARLY_STOPPING_PREFIX = "trainer.early_stopping."
EARLY_STOPPING_SWITCH = "trainer.early_stopping.enabled"
HEADLINE_PREFIXES = ("test/", "val/", "train/", "probe/")
"""Metric families a parent run repeats from its best child under the same keys."""


def experiment_tags() -> dict[str, str]:
    """Tags for ``create_experiment(name, tags=experiment_tags())`` (or ``set_experiment_tag``
    on an existing one): MLflow 3's UI then treats the study as a machine-learning experiment
    and opens it on its runs table."""
    return {EXPERIMENT_KIND_TAG: MACHINE_LEARNING_KIND}


def study_view(
    swept_keys: Sequence[str], metrics: Sequence[str] = ("test/acc", "val/acc")
) -> dict[str, Any]:
    """The runs-table view of a study (MLflow's shared-view JSON): the swept params and
    ``metrics`` as columns (:func:`runs_table_columns`), sorted by the first metric (best
    first; the table then lists the runs flat, children beside their parent), every run
    shown in the charts (MLflow's default shows the first 10), the chart view filtered to
    that metric (else it opens on dozens of grad-norm and ``best/`` charts)."""
    view: dict[str, Any] = {
        "selectedColumns": runs_table_columns(swept_keys, metrics),
        "orderByKey": f"metrics.`{metrics[0]}`" if metrics else "attributes.start_time",
        "orderByAsc": not (metrics and higher_is_better(metrics[0])),
        "runsHiddenMode": "SHOW_ALL",
    }
    if metrics:
        view["chartsSearchFilter"] = metrics[0]
    return view


def study_view_tags(
    swept_keys: Sequence[str], metrics: Sequence[str] = ("test/acc", "val/acc")
) -> dict[str, str]:
    """Experiment tags storing :func:`study_view` under :data:`VIEW_KEY`; set them when a
    sweep starts (``client.set_experiment_tag``), then link :func:`experiment_url`."""
    return {SHARED_VIEW_TAG_PREFIX + VIEW_KEY: json.dumps(study_view(swept_keys, metrics))}


def experiment_url(ui_url: str, experiment_id: str, with_view: bool = True) -> str:
    """An experiment's runs table in the MLflow UI at ``ui_url`` (``http://host:port``), as a
    machine-learning experiment and, with ``with_view``, in the view of
    :func:`study_view_tags`: ``http://127.0.0.1:5000/#/experiments/3/runs?workflowType=
    machine_learning&viewStateShareKey=toolkit``."""
    query = WORKFLOW_TYPE_QUERY + (f"&viewStateShareKey={VIEW_KEY}" if with_view else "")
    return f"{ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"


def run_url(ui_url: str, experiment_id: str, run_id: str, artifact: str | None = None) -> str:
    """A run's page in the MLflow UI, as a machine-learning run (the sidebar otherwise
    switches to GenAI); with ``artifact`` (``report/report.html``) its artifact view on
    that file: ``http://127.0.0.1:5000/#/experiments/3/runs/<id>/artifacts/report/report.html
    ?workflowType=machine_learning``."""
    tail = f"/artifacts/{artifact.lstrip('/')}" if artifact else ""
    return (
        f"{ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}{tail}"
        f"?{WORKFLOW_TYPE_QUERY}"
    )


def param_value(value: Any) -> str:
    """A config value as a readable param: ``["relu", "tanh"]`` -> ``"relu,tanh"``,
    ``[128, 64]`` -> ``"128,64"``, ``[]`` -> ``""``; nested lists and dicts stay compact JSON
    (``[[3,3],[2,2]]``); everything else is ``str(value)`` (``None`` -> ``"None"``)."""
    if isinstance(value, list | tuple):
        if all(_is_scalar(item) for item in value):
            return LIST_SEPARATOR.join(str(item) for item in value)
        return json.dumps(list(value), separators=(",", ":"), default=str)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def readable_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested config flattened to dotted keys with :func:`param_value` values:
    ``{"model": {"activation": ["relu", "tanh"]}}`` -> ``{"model.activation": "relu,tanh"}``.
    An empty dict stays one param (``"{}"``). Keys are not cleaned nor values cut: the
    tracker's own rules (MLflow's key charset, 6000 characters) apply after this."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(readable_params(value, f"{name}."))
        else:
            flat[name] = param_value(value)
    return flat


def irrelevant_params(
    params: Mapping[str, str],
    probe: bool | None = None,
    transfer: bool | None = None,
) -> set[str]:
    """The keys of ``params`` (flattened, dotted) whose settings this run did not use.

    Args:
        params: the run's params, e.g. from :func:`readable_params` plus ``choice/<group>``.
        probe: whether a latent probe ran (a model with an encoder and ``probe.kind`` not
            ``none``); None decides from the params: ``probe.kind`` not ``none`` and a model
            named ``*autoencoder*`` (``model.name`` or ``choice/model``). Pass it for any
            other model with an encoder.
        transfer: whether the model started from pretrained weights; None decides from
            ``transfer.init_from`` (set) and ``choice/transfer`` (not ``scratch``).

    Irrelevant: every ``probe.*`` (and ``choice/probe``) without a probe; every
    ``transfer.*`` without transfer; ``augment.*`` when ``choice/augment`` is ``none``; the
    early-stopping settings but ``trainer.early_stopping.enabled`` when it is false.
    """
    if probe is None:
        model = params.get("model.name", params.get("choice/model", ""))
        probe = params.get(f"{PROBE_PREFIX}kind", "none") not in NONE_TEXTS and (
            "autoencoder" in model
        )
    if transfer is None:
        transfer = (
            params.get(f"{TRANSFER_PREFIX}init_from", "None") not in NONE_TEXTS
            and params.get("choice/transfer", "") != "scratch"
        )
    prefixes = []
    if not probe:
        prefixes.append(PROBE_PREFIX)
    if not transfer:
        prefixes.append(TRANSFER_PREFIX)
    if params.get("choice/augment") == "none":
        prefixes.append(AUGMENT_PREFIX)
    prefixes.append(REFERENCE_PREFIX)  # the study's published numbers, not a setting
    early_stopping = params.get(EARLY_STOPPING_SWITCH, "True")
    drop = {key for key in params if key.startswith(tuple(prefixes))} if prefixes else set()
    if early_stopping.lower() in ("false", "0"):
        drop |= {k for k in params if k.startswith(EARLY_STOPPING_PREFIX)}
        drop.discard(EARLY_STOPPING_SWITCH)
    if not probe and "choice/probe" in params:
        drop.add("choice/probe")
    return drop


def relevant_params(
    params: Mapping[str, str], probe: bool | None = None, transfer: bool | None = None
) -> dict[str, str]:
    """``params`` without :func:`irrelevant_params` (same arguments), in their order."""
    drop = irrelevant_params(params, probe, transfer)
    return {key: value for key, value in params.items() if key not in drop}


def short_keys(keys: Sequence[str]) -> dict[str, str]:
    """Each dotted key by its shortest unique tail: ``["model.activation", "optim.lr"]`` ->
    ``{"model.activation": "activation", "optim.lr": "lr"}``; ``seed`` -> ``s``; two
    ``*.lr`` keys keep one more segment each (``optim.lr``, ``probe.lr``)."""
    short: dict[str, str] = {}
    for key in keys:
        parts = key.split(".")
        for size in range(1, len(parts) + 1):
            tail = ".".join(parts[-size:])
            clash = [k for k in keys if k != key and k.split(".")[-size:] == parts[-size:]]
            if not clash:
                short[key] = tail
                break
        else:
            short[key] = key
    if short.get(SEED_KEY) == SEED_KEY:
        short[SEED_KEY] = SEED_SHORT
    return short


def child_run_name(values: Mapping[str, Any], swept_keys: Sequence[str] | None = None) -> str:
    """A sweep job's run name from its values of the swept keys (readable values, lists
    joined by commas).

    One key: its value alone when it names itself (``relu,tanh``, ``adam``, ``max``), else
    ``short key=value`` (``lr=0.01``, ``batch_size=32``, ``s=1``). Several keys: the same
    per key, joined by spaces (``relu,tanh s=1``, ``adam lr=0.01``, ``dropout=0.2 light``).
    Keys are shortened to their shortest unique dotted tail (:func:`short_keys`).
    ``swept_keys`` orders the keys (default: the order of ``values``); no keys -> ``job``.
    """
    keys = list(swept_keys) if swept_keys is not None else list(values)
    short = short_keys(keys)
    parts = []
    for key in keys:
        text = param_value(values[key])
        parts.append(text if _names_itself(text) else f"{short[key]}={text}")
    return " ".join(parts) or "job"


def _names_itself(text: str) -> bool:
    """A value that says what it is without its key: not a number, bool or empty; lists of
    words (``relu,tanh``) yes, lists of numbers (``128,64``) no."""
    items = text.split(LIST_SEPARATOR)
    return all(item and not _is_number(item) and item not in ("True", "False") for item in items)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text in NONE_TEXTS
    return True


def parent_headline_metrics(
    best_metrics: Mapping[str, float], prefixes: Iterable[str] = HEADLINE_PREFIXES
) -> dict[str, float]:
    """The parent run's metrics from its best child's final metrics: ``best/<key>`` for
    every metric (as today) and, for keys starting with ``prefixes`` (``test/``, ``val/``,
    ``train/``, ``probe/``), the same value under the child's own key, so the runs table's
    ``test/acc`` column and the charts show the parent beside its children. NaN values are
    dropped (MLflow's charts cannot draw them)."""
    prefixes = tuple(prefixes)
    headline: dict[str, float] = {}
    for key, value in best_metrics.items():
        value = float(value)
        if math.isnan(value):
            continue
        headline[f"best/{key}"] = value
        if key.startswith(prefixes):
            headline[key] = value
    return headline


def runs_table_columns(
    swept_keys: Sequence[str], metrics: Sequence[str] = ("test/acc", "val/acc")
) -> list[str]:
    """The runs-table columns a study needs, in MLflow's column ids (``params.`<key>```,
    ``metrics.`<key>```): the swept params (seed last), then ``metrics``."""
    keys = [k for k in swept_keys if k != SEED_KEY] + [k for k in swept_keys if k == SEED_KEY]
    return [f"params.`{key}`" for key in keys] + [f"metrics.`{m}`" for m in metrics]
