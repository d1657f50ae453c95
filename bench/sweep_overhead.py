"""The fixed cost of one sweep job: process start to its first training batch, by phase.

A job launched in its own process (joblib worker, submitit/SLURM task) pays for the
interpreter, the imports (Hydra, NumPy, the toolkit, MLflow), composing the config,
building the job (dataset cache load, model), and creating its MLflow run before the first
batch; the basic launcher pays the imports once and the rest per job. This script runs the
real CLI in a child process with timers around those steps (nothing else changes) and
prints the median of each phase over ``--repeats`` runs:

1. ``single``: ``python -m toolkit +model=mlp dataset.subset=100 trainer.epochs=1`` with
   ``logger=none``, with MLflow on an existing SQLite store, and with an ``mlflow server``
   (started here): process start -> first batch.
2. ``sweep``: a 2-job basic-launcher sweep on a fresh SQLite store: the sweep's own start
   (parent run, store creation), then per job: job start -> first batch, and training
   end -> job end (outputs, figures, artifacts).
3. ``-X importtime``: import time by package (the sum of its modules' own times).

    uv run python bench/sweep_overhead.py [--repeats 5] [--dataset mnist|spirals] [--no-server]

Target: <= 3 s from process start to the first batch. Timings are noisy on a busy machine:
the median of several repeats is reported.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Runs inside the child: timers around the CLI's steps, then the real main(). Events are
# (label, start, end, job number) in seconds since the epoch; written to argv[1] at exit.
HARNESS = r"""
import atexit, json, os, sys, time
T0 = time.time()
def _proc_start():
    ticks = os.sysconf("SC_CLK_TCK")
    with open("/proc/self/stat") as f:
        start = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/stat") as f:
        boot = next(int(l.split()[1]) for l in f if l.startswith("btime"))
    return boot + start / ticks
EVENTS = [("interpreter", _proc_start(), T0, -1)]
OUT = sys.argv[1]
sys.argv = ["toolkit", *sys.argv[2:]]
atexit.register(lambda: open(OUT, "w").write(json.dumps(EVENTS)))
JOB = [-1]

def mark(label, start, end=None):
    EVENTS.append((label, start, time.time() if end is None else end, JOB[0]))

t = time.time(); import toolkit.app.cli as cli; mark("import hydra, omegaconf, toolkit cli", t)
t = time.time(); import toolkit.app.run as run; mark("import numpy, toolkit engine", t)

def timed(owner, name, label, before=None):
    original = getattr(owner, name, None)
    if original is None:
        return
    def wrapper(*args, **kwargs):
        if before:
            before()
        t = time.time()
        try:
            return original(*args, **kwargs)
        finally:
            mark(label, t)
    setattr(owner, name, wrapper)

def import_mlflow():
    if "mlflow" not in sys.modules:
        t = time.time(); import mlflow; mark("import mlflow", t)

import toolkit.registry as registry
import toolkit.app.config_store as config_store
import toolkit.app.overrides as overrides
import toolkit.app.sweep as sweep
import toolkit.app.job as job_module
import toolkit.train.trainer as trainer_module
from toolkit.track import mlflow_run

timed(cli, "load_plugins", "load plugins")
timed(cli, "register_configs", "register config nodes")
timed(cli, "check_group_overrides", "check overrides")
timed(cli, "check_composition", "pre-compose (error messages)")
timed(sweep.SweepCallback, "_start", "sweep start (parent run)", import_mlflow)
timed(sweep.SweepCallback, "_end", "sweep end (summary)")
timed(registry.datasets, "build", "dataset load (cache)")
timed(job_module, "split_dataset", "split")
timed(run, "build_job", "build job (data, model)")
timed(mlflow_run.MlflowRun, "__init__", "MLflow store + experiment", import_mlflow)
timed(mlflow_run.MlflowRun, "start", "MLflow run + params")
timed(run, "write_outputs", "write outputs + checkpoint")
timed(run, "figures", "draw figures")
timed(run, "save_figures", "save figures")
timed(mlflow_run.MlflowRun, "finish", "MLflow run end")

_run_job = run.run_job
def run_job(cfg):
    JOB[0] += 1
    mark("job start", time.time())
    try:
        return _run_job(cfg)
    finally:
        mark("job end", time.time())
run.run_job = run_job

_fit = run.fit_and_test
def fit_and_test(job):
    t = time.time()
    try:
        return _fit(job)
    finally:
        mark("train + test", t)
run.fit_and_test = fit_and_test

_batches = trainer_module.iterate_batches
def iterate_batches(*args, **kwargs):
    first = True
    for batch in _batches(*args, **kwargs):
        if first:
            mark("first batch", time.time())
            first = False
        yield batch
trainer_module.iterate_batches = iterate_batches

cli.main()
"""

SINGLE_PHASES = [
    "interpreter",
    "import hydra, omegaconf, toolkit cli",
    "import numpy, toolkit engine",
    "load plugins",
    "register config nodes",
    "check overrides",
    "pre-compose (error messages)",
    "hydra compose -> job start",
    "dataset load (cache)",
    "build job (data, model)",
    "import mlflow",
    "MLflow store + experiment",
    "MLflow run + params",
    "job start -> first batch",
]


def run_child(args: list[str], cwd: Path, env: dict) -> list[tuple]:
    out = cwd / "events.json"
    out.unlink(missing_ok=True)
    result = subprocess.run(
        [sys.executable, "-c", HARNESS, str(out), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0 or not out.is_file():
        raise RuntimeError(f"toolkit {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return [tuple(e) for e in json.loads(out.read_text())]


def durations(events: list[tuple], job: int | None = None) -> dict[str, float]:
    """Phase -> seconds (summed over repeats within a job), plus derived spans."""
    found: dict[str, float] = {}
    for label, start, end, number in events:
        if job is None or number == job:
            found[label] = found.get(label, 0.0) + (end - start)
    starts = {(label, n): s for label, s, _, n in events}
    proc_start = events[0][1]
    jobs = sorted({n for _, _, _, n in events if n >= 0})
    for n in jobs if job is None else [job]:
        job_start, first = starts.get(("job start", n)), starts.get(("first batch", n))
        if job_start and first:
            found["job start -> first batch"] = first - job_start
            found["process start -> first batch"] = first - proc_start
        train = next((e for e in events if e[0] == "train + test" and e[3] == n), None)
        end = starts.get(("job end", n))
        if train and end:
            found["train end -> job end"] = end - train[2]
    main_end = max((e[2] for e in events if e[0] == "pre-compose (error messages)"), default=None)
    main_end = main_end or max(e[2] for e in events if e[0] == "check overrides")
    first_job = starts.get(("job start", jobs[0] if job is None else job))
    if first_job and job in (None, 0):
        found["hydra compose -> job start"] = first_job - main_end
    return found


def median_table(samples: list[dict[str, float]], phases: list[str]) -> list[tuple[str, float]]:
    return [
        (p, statistics.median(s.get(p, 0.0) for s in samples))
        for p in phases
        if any(p in s for s in samples)
    ]


def print_table(title: str, rows: list[tuple[str, float]]) -> None:
    print(f"\n{title}")
    for label, seconds in rows:
        print(f"  {label:<34} {seconds:7.3f} s")


def import_times(args: list[str], cwd: Path, env: dict) -> list[tuple[str, float]]:
    """Import time (s) by top-level package in a real run: the sum of the ``-X importtime``
    self times of its modules (whoever imported them). importtime itself inflates them."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "toolkit", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    totals: dict[str, float] = {}
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        own, _, name = line[len("import time:") :].split("|")
        top = name.strip().split(".")[0]
        totals[top] = totals.get(top, 0.0) + int(own) / 1e6
    return sorted(totals.items(), key=lambda kv: -kv[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dataset", choices=["mnist", "spirals"], default="mnist")
    parser.add_argument("--no-server", action="store_true", help="skip the mlflow server case")
    options = parser.parse_args()

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.setdefault("TOOLKIT_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    data = ["dataset.subset=100"] if options.dataset == "mnist" else ["dataset=spirals"]
    base = ["+model=mlp", *data, "trainer.epochs=1", "trainer.progress=false"]
    tracked = ["logger.log_model=false", "logger.tracking_uri=sqlite:///mlflow.db"]

    with tempfile.TemporaryDirectory(prefix="sweep-overhead-") as tmp:
        cwd = Path(tmp)
        run_child([*base, "logger=none"], cwd, env)  # warm: dataset cache, OS file cache
        run_child([*base, *tracked], cwd, env)  # creates ./mlflow.db (schema) once

        scenarios = [
            ("single run, logger=none", [*base, "logger=none"]),
            ("single run, MLflow on an existing SQLite store", [*base, *tracked]),
        ]
        with contextlib.ExitStack() as stack:
            if not options.no_server:
                from parallel_tracking import mlflow_server  # bench/ is on sys.path

                server_dir = cwd / "server"
                server_dir.mkdir()
                url = stack.enter_context(mlflow_server(server_dir))
                served = [*base, "logger.log_model=false", f"logger.tracking_uri={url}"]
                run_child(served, cwd, env)  # creates the experiment
                scenarios.append(("single run, MLflow server (HTTP)", served))
            for title, args in scenarios:
                samples = [durations(run_child(args, cwd, env)) for _ in range(options.repeats)]
                phases = [*SINGLE_PHASES, "process start -> first batch"]
                rows = median_table(samples, phases)
                print_table(f"{title} (median of {options.repeats})", rows)

        sweep_samples, job_samples, tail_samples = [], [], []
        for i in range(options.repeats):
            folder = cwd / f"sweep{i}"
            folder.mkdir()
            args = ["-m", *base, *tracked, "optim.lr=0.01,0.001", "hydra.sweep.dir=sweep"]
            events = run_child(args, folder, env)
            sweep_samples.append(durations(events, job=-1))
            for job in (0, 1):
                found = durations(events, job=job)
                (job_samples if job == 1 else tail_samples).append(found)
        print_table(
            f"sweep, basic launcher, fresh SQLite (median of {options.repeats})",
            median_table(sweep_samples, ["sweep start (parent run)", "sweep end (summary)"]),
        )
        per_job = [
            "dataset load (cache)",
            "build job (data, model)",
            "MLflow store + experiment",
            "MLflow run + params",
            "job start -> first batch",
            "train + test",
            "write outputs + checkpoint",
            "draw figures",
            "save figures",
            "MLflow run end",
            "train end -> job end",
        ]
        print_table(
            "  second job of the sweep (imports already paid)", median_table(job_samples, per_job)
        )
        print_table("  first job of the sweep", median_table(tail_samples, per_job))

        print("\n-X importtime, single run with MLflow: seconds by package (its modules' own time)")
        for name, seconds in import_times([*base, *tracked], cwd, env)[:12]:
            print(f"  {name:<34} {seconds:7.3f} s")


if __name__ == "__main__":
    main()
