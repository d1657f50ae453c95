"""A sweep's parent run: created before any job, reused by a resumed sweep, summarised
and ended after the last job, or ended KILLED (with its running children) when the sweep
is interrupted.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from toolkit.track.names import (
    MAX_PARAM_LENGTH,
    TAG_END,
    TAG_PARENT,
    TAG_PROCESS,
    TAG_REFERENCE,
    TAG_SWEEP,
    TAG_SWEEP_END,
    TAG_SWEPT_KEYS,
    clean_key,
)
from toolkit.track.orphans import end_orphaned_runs, process_tag
from toolkit.track.store import open_experiment, search_all_runs
from toolkit.track.sweep_records import JobResult, SweepInfo, best_result
from toolkit.track.ui import parent_headline_metrics


def _client(tracking_uri: str):
    import mlflow

    return mlflow.MlflowClient(tracking_uri)


def start_parent_run(
    tracking_uri: str,
    experiment: str,
    overrides: list[str],
    swept_keys: list[str],
    experiment_tags: dict[str, str] | None = None,
    reference: dict | None = None,
) -> tuple[str, str]:
    """Create the experiment (and the store's schema) and a RUNNING parent run, without
    making it the active run of this process; ``reference`` (published results for the
    study report) goes into a tag. Returns (experiment id, run id)."""
    experiment_id = open_experiment(tracking_uri, experiment, experiment_tags)
    client = _client(tracking_uri)
    end_orphaned_runs(client, experiment_id)
    run = client.create_run(
        experiment_id,
        run_name=f"sweep {','.join(swept_keys) or 'jobs'}",
        tags={
            TAG_SWEEP: "parent",
            TAG_PROCESS: process_tag(),
            TAG_SWEPT_KEYS: json.dumps(swept_keys),
            **({TAG_REFERENCE: json.dumps(reference)} if reference else {}),
        },
    )
    params = {clean_key(f"sweep/{i}"): o[:MAX_PARAM_LENGTH] for i, o in enumerate(overrides)}
    if params:
        from mlflow.entities import Param

        client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()])
    return experiment_id, run.info.run_id


def reuse_parent_run(
    tracking_uri: str, experiment: str, swept_keys: list[str]
) -> tuple[str, str] | None:
    """The newest parent run of ``experiment`` that swept the same keys, set RUNNING again
    (a resumed sweep); None if there is none. Returns (experiment id, run id)."""
    experiment_id = open_experiment(tracking_uri, experiment)
    client = _client(tracking_uri)
    parents = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{TAG_SWEEP}` = 'parent'",
        order_by=["attributes.start_time DESC"],
        max_results=100,
    )
    for parent in parents:
        if json.loads(parent.data.tags.get(TAG_SWEPT_KEYS, "[]")) == swept_keys:
            end_orphaned_runs(client, experiment_id, keep=parent.info.run_id)
            client.set_tag(parent.info.run_id, TAG_PROCESS, process_tag())
            client.update_run(parent.info.run_id, status="RUNNING")
            return experiment_id, parent.info.run_id
    return None


def summary_table(results: list[JobResult], objective: str) -> str:
    """A Markdown table of the sweep's jobs: name, status, objective, test metrics."""
    columns = list(dict.fromkeys([objective, "test/acc", "test/loss"]))
    lines = [
        "| job | status | " + " | ".join(columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for result in results:
        values = [f"{result.metrics[c]:.4f}" if c in result.metrics else "" for c in columns]
        lines.append(f"| {result.name} | {result.status} | " + " | ".join(values) + " |")
    return "\n".join(lines)


def finish_parent_run(
    info: SweepInfo, results: list[JobResult], objective: str, sweep_dir: Path
) -> None:
    """Record the sweep's outcome on its parent run and end it (FAILED if any job failed).
    The best child's metrics go under the children's own keys (so the runs table sorts
    parent and children together) and under ``best/``."""
    from mlflow.entities import Metric, RunTag

    client = _client(info.tracking_uri)
    run_id = info.parent_run_id
    now = int(time.time() * 1000)
    failed = sum(r.status != "FINISHED" for r in results)
    metrics = {"children/finished": len(results) - failed, "children/failed": failed}
    tags = {TAG_SWEEP_END: "completed"}  # (a resumed sweep said "interrupted")
    best = best_result(results, objective)
    if best is not None:
        metrics.update(parent_headline_metrics(best.metrics))
        tags |= {"best_child_run_id": best.run_id or "", "best_child": best.name}
    items = [Metric(clean_key(k), float(v), now, 0) for k, v in metrics.items()]
    for i in range(0, len(items), 900):  # MLflow's batch limit is 1000 metrics
        client.log_batch(
            run_id,
            metrics=items[i : i + 900],
            tags=[] if i else [RunTag(k, v) for k, v in tags.items()],
        )
    summary = sweep_dir / "summary.md"
    summary.write_text(summary_table(results, objective) + "\n")
    client.log_artifact(run_id, str(summary))
    client.set_terminated(run_id, status="FAILED" if failed else "FINISHED")


def end_interrupted_sweep(info: SweepInfo) -> list[str]:
    """Mark an interrupted sweep's parent run and its still-RUNNING children KILLED (a
    worker process killed with the sweep cannot end its own run). Returns the names of
    the children it ended."""
    client = _client(info.tracking_uri)
    children = search_all_runs(
        client,
        [info.experiment_id],
        f"tags.`{TAG_PARENT}` = '{info.parent_run_id}' and attributes.status = 'RUNNING'",
    )
    for child in children:
        client.set_tag(child.info.run_id, TAG_END, "interrupted")
        client.set_terminated(child.info.run_id, status="KILLED")
    client.set_tag(info.parent_run_id, TAG_SWEEP_END, "interrupted")
    client.set_terminated(info.parent_run_id, status="KILLED")
    return [child.info.run_name for child in children]
