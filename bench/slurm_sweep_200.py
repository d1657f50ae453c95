"""A 200-job sweep of tiny jobs through ``hydra/launcher=slurm`` on the local cluster.

Starts (or reuses) the one-node cluster of tests/slurm_cluster.py and a tracking store
(``--store postgres``: an ``mlflow server`` on PostgreSQL with served artifacts, as on a
cluster; ``--store sqlite``: ``sqlite:///mlflow.db`` in the sweep's folder), runs one
sweep of ``--lrs`` learning rates x ``--seeds`` seeds (default 20 x 10 = 200 jobs: MLP on
spirals, one epoch, no pyfunc model) as one SLURM job array, then checks and measures:

- the parent's children, read page by page (MLflow pages hold at most 1000 runs and the
  client's default page is 1000): all recorded, all FINISHED, the parent's
  ``children/finished``, ``summary.md`` rows and the study report's table rows;
- the sweep's wall time, split into submission (launch to sbatch), the array's run (first
  task start to last task end, from SLURM's job records) and the end (last task end to
  exit: collecting results, the parent's summary, the report);
- the scheduling overhead per job: the array's run time x CPUs / jobs minus the mean
  task duration (what each job costs beyond its own run), and the mean gap between a
  task's end and the next task's start on the freed CPU;
- the study report's time, run again on its own (``python -m toolkit.report``).

    uv run python bench/slurm_sweep_200.py [--lrs 20] [--seeds 10] [--store postgres|sqlite]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' cluster and server helpers
from tests.mlflow_server import running_server  # noqa: E402
from tests.postgres_server import running_postgres  # noqa: E402
from tests.slurm_cluster import missing_packages, running_cluster, slurm_env  # noqa: E402


def all_children(client, experiment_id: str, parent_id: str, page_size: int) -> list:
    """Every child run of ``parent_id``, page by page."""
    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id],
            f"tags.mlflow.parentRunId = '{parent_id}'",
            max_results=page_size,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def task_times(jobcomp: Path, array_id: str) -> list[tuple[datetime, datetime]]:
    """(start, end) of every task of SLURM array ``array_id`` (1-second resolution)."""
    times = []
    for line in jobcomp.read_text().splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if fields.get("ArrayJobId") == array_id:
            times.append(
                (
                    datetime.fromisoformat(fields["StartTime"]),
                    datetime.fromisoformat(fields["EndTime"]),
                )
            )
    return sorted(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lrs", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--store", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--page-size", type=int, default=50, help="children per search page")
    parser.add_argument("--keep", action="store_true", help="keep the sweep folder")
    options = parser.parse_args()
    reason = missing_packages()
    if reason:
        sys.exit(f"error: {reason}")
    jobs = options.lrs * options.seeds
    lrs = ",".join(f"{0.001 * (i + 1):g}" for i in range(options.lrs))
    seeds = ",".join(str(i) for i in range(options.seeds))
    import mlflow

    with contextlib.ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="slurm-200-"))
        if not options.keep:
            stack.callback(lambda: subprocess.run(["rm", "-rf", str(tmp)]))
        env = {**os.environ, **stack.enter_context(running_cluster()), "PYTHONPATH": str(ROOT)}
        cpus = int(
            subprocess.run(
                ["sinfo", "-h", "-o", "%C"], capture_output=True, text=True, env=env
            ).stdout.split("/")[-1]
        )
        if options.store == "postgres":
            (tmp / "server").mkdir()
            database = stack.enter_context(running_postgres())
            uri = stack.enter_context(
                running_server(tmp / "server", database, tmp / "server" / "artifacts", workers=2)
            )
        else:
            uri = "sqlite:///mlflow.db"
        print(f"{jobs} jobs ({options.lrs} lr x {options.seeds} seeds), {cpus} CPUs, {uri}")
        sweep_dir = tmp / "jobs" / "sweep"
        (tmp / "jobs").mkdir()
        command = [
            sys.executable, "-m", "toolkit", "-m", "hydra/launcher=slurm",
            "hydra.launcher.mem_gb=1", f"hydra.launcher.array_parallelism={jobs}",
            f"hydra.sweep.dir={sweep_dir}", "+model=mlp", "dataset=spirals",
            "trainer.epochs=1", "trainer.progress=false", "logger.log_model=false",
            f"logger.tracking_uri={uri}", "logger.experiment=slurm200",
            f"optim.lr={lrs}", f"seed={seeds}",
        ]  # fmt: skip
        launched = time.time()
        result = subprocess.run(command, cwd=tmp / "jobs", env=env, capture_output=True, text=True)
        ended = time.time()
        (tmp / "sweep_output.txt").write_text(result.stdout + result.stderr)
        print(f"sweep exit {result.returncode}, wall {ended - launched:.1f} s")
        if result.returncode != 0:
            print(result.stderr[-3000:])

        submission = next((sweep_dir / ".submitit").glob("*/*_submission.sh"))
        array_id = submission.parent.name
        times = task_times(Path(slurm_env()["TOOLKIT_SLURM_JOBCOMP"]), array_id)
        first_start = min(s for s, _ in times).timestamp()
        last_end = max(e for _, e in times).timestamp()
        durations = [(e - s).total_seconds() for s, e in times]
        mean_task = sum(durations) / len(durations)
        array_s = last_end - first_start
        overhead = array_s * cpus / len(times) - mean_task
        ends, starts = sorted(e for _, e in times), sorted(s for s, _ in times)
        gaps = [
            (start - end).total_seconds()
            for end, start in zip(ends[:-cpus], starts[cpus:], strict=True)
        ]
        submitted_s = submission.stat().st_mtime - launched
        print(
            f"tasks recorded by SLURM: {len(times)}; submission {submitted_s:.1f} s after launch; "
            f"array ran {array_s:.0f} s (first start to last end); "
            f"end of sweep {ended - last_end:.1f} s after the last task"
        )
        print(
            f"mean task {mean_task:.2f} s; scheduling overhead per job {overhead:.2f} s "
            f"(array time x {cpus} CPUs / {len(times)} jobs - mean task); mean gap from a task's "
            f"end to the next start {sum(gaps) / max(len(gaps), 1):.2f} s"
        )

        store = uri if uri.startswith("http") else f"sqlite:///{tmp / 'jobs' / 'mlflow.db'}"
        client = mlflow.MlflowClient(store)
        info = json.loads((sweep_dir / "sweep.json").read_text())
        started = time.perf_counter()
        children = all_children(
            client, info["experiment_id"], info["parent_run_id"], options.page_size
        )
        listed = time.perf_counter() - started
        parent = client.get_run(info["parent_run_id"])
        summary_rows = (sweep_dir / "summary.md").read_text().count("\n") - 2
        print(
            f"children under the parent: {len(children)} (read in pages of {options.page_size}, "
            f"{listed:.2f} s), FINISHED {sum(c.info.status == 'FINISHED' for c in children)}, "
            f"distinct names {len({c.info.run_name for c in children})}; parent "
            f"{parent.info.status}, children/finished "
            f"{parent.data.metrics.get('children/finished')}; summary.md rows {summary_rows}"
        )
        started = time.perf_counter()
        report = subprocess.run(
            [sys.executable, "-m", "toolkit.report", info["parent_run_id"], "--tracking-uri",
             store],
            cwd=tmp / "jobs", env=env, capture_output=True, text=True,
        )  # fmt: skip
        report_s = time.perf_counter() - started
        report_md = next((tmp / "jobs" / "reports").glob("*/report.md"), None)
        text = report_md.read_text() if report_md else report.stderr[-2000:]
        table_rows = sum(line.startswith("| ") for line in text.splitlines()) - 1
        print(
            f"report: exit {report.returncode}, {report_s:.1f} s (a process of its own), "
            f"table rows {table_rows}, in {report_md}"
        )


if __name__ == "__main__":
    main()
