"""The fixed cost of one sweep job: process start to its first training batch, by phase.

A job launched in its own process (a joblib worker's first job, a submitit/SLURM task)
pays for the interpreter, the imports (Hydra, NumPy, the toolkit), setting up the job
(dataset cache load, model) and its MLflow run; the basic launcher pays the imports once
and the rest per job. A sweep job starts its MLflow run on the run's own thread, so
importing MLflow (~1.5 s) and opening the store (~1 s for SQLite) overlap the training
instead of preceding it; a single run starts it before training (so that a bad store
stops it before any work). This script runs the real CLI with timers around those steps,
installed in every Python process it starts (the CLI, joblib workers, submitit tasks)
by a ``sitecustomize`` module, and prints the median of each phase over ``--repeats``:

1. ``single``: ``python -m toolkit +model=mlp dataset.subset=100 trainer.epochs=1`` with
   ``logger=none``, with MLflow on an existing SQLite store, and with an ``mlflow server``
   (started here): process start -> first batch.
2. ``own process``: 2-job sweeps through ``hydra/launcher=joblib`` (2 workers) and
   ``hydra/launcher=submitit_local``: for each job process, process start -> first batch,
   and when its MLflow run was ready (process start -> run started).
3. ``basic``: a 2-job basic-launcher sweep on a fresh SQLite store: the sweep's own start
   (parent run, store creation), then per job: job start -> first batch, and training
   end -> job end (outputs, figures, artifacts).
4. ``-X importtime``: import time by package (the sum of its modules' own times).

    uv run python bench/sweep_overhead.py [--repeats 5] [--dataset mnist|spirals] [--no-server]

Target: <= 3 s from process start to the first batch of a sweep job. Timings are noisy on
a busy machine: the median of several repeats is reported.
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
sys.path.insert(0, str(ROOT))  # tests.mlflow_server, also where the project is not installed
EVENTS_ENV = "SWEEP_OVERHEAD_EVENTS"

# sitecustomize.py for the children: when EVENTS_ENV names a folder, wrap timers around
# the CLI's steps and append events (label, start, end, job number) in seconds since the
# epoch, one JSON line each, to <folder>/<pid>.jsonl as they happen.
SITECUSTOMIZE = r"""
import json, os, sys, time
if os.environ.get("SWEEP_OVERHEAD_EVENTS"):
    T0 = time.time()
    OUT = os.path.join(os.environ["SWEEP_OVERHEAD_EVENTS"], f"{os.getpid()}.jsonl")
    JOB = [-1]

    def mark(label, start, end=None):
        event = (label, start, time.time() if end is None else end, JOB[0])
        with open(OUT, "a") as f:
            f.write(json.dumps(event) + "\n")

    def _proc_start():
        ticks = os.sysconf("SC_CLK_TCK")
        with open("/proc/self/stat") as f:
            start = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as f:
            boot = next(int(l.split()[1]) for l in f if l.startswith("btime"))
        return boot + start / ticks

    mark("interpreter", _proc_start(), T0)
    t = time.time(); import toolkit.app.cli as cli; mark("import hydra, omegaconf, toolkit cli", t)
    t = time.time(); import toolkit.app.run as run; mark("import numpy, toolkit engine", t)

    def timed(owner, name, label, before=None):
        original = getattr(owner, name)
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
    import toolkit.app.sweep as sweep
    import toolkit.app.lifecycle as lifecycle
    import toolkit.train.trainer as trainer_module
    from toolkit.track import store, tracked_run

    timed(cli, "load_plugins", "load plugins")
    timed(cli, "register_configs", "register config nodes")
    timed(cli, "check_group_overrides", "check overrides")
    timed(cli, "check_composition", "pre-compose (error messages)")
    timed(sweep.SweepCallback, "_start", "sweep start (parent run)", import_mlflow)
    timed(sweep.SweepCallback, "_end", "sweep end (summary)")
    timed(registry.datasets, "build", "dataset load (cache)")
    timed(lifecycle, "build_job", "build job (data, model)")
    timed(tracked_run, "open_experiment", "MLflow store + experiment", import_mlflow)
    timed(tracked_run.TrackedRun, "_start", "MLflow run started")
    timed(lifecycle, "run_steps", "post-fit steps (figures drawn)")
    timed(lifecycle, "write_outputs", "write outputs, checkpoint, figures")
    timed(tracked_run.TrackedRun, "end", "MLflow run end")

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
    "MLflow run started",
    "job start -> first batch",
    "process start -> first batch",
]
JOB_PROCESS_PHASES = [
    "interpreter",
    "import hydra, omegaconf, toolkit cli",
    "import numpy, toolkit engine",
    "process start -> job start",
    "dataset load (cache)",
    "build job (data, model)",
    "job start -> first batch",
    "process start -> first batch",
    "import mlflow",
    "MLflow store + experiment",
    "process start -> MLflow run started",
]

Event = tuple[str, float, float, int]


def run_child(args: list[str], cwd: Path, env: dict) -> dict[int, list[Event]]:
    """Run ``python -m toolkit *args`` in ``cwd``; returns the events of every Python
    process it started (itself, launcher workers), by pid, in the order they happened."""
    events_dir = cwd / "events"
    for old in events_dir.glob("*.jsonl"):
        old.unlink()
    events_dir.mkdir(exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-m", "toolkit", *args],
        cwd=cwd,
        env={**env, EVENTS_ENV: str(events_dir)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"toolkit {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return {
        int(path.stem): [tuple(json.loads(line)) for line in path.read_text().splitlines()]
        for path in events_dir.glob("*.jsonl")
    }


def only_process(events: dict[int, list[Event]]) -> list[Event]:
    (found,) = events.values()
    return found


def durations(events: list[Event], job: int | None = None) -> dict[str, float]:
    """Phase -> seconds for one process (``job``: only that job's events, by number within
    the process), plus the derived spans."""
    found: dict[str, float] = {}
    for label, start, end, number in events:
        if job is None or number == job:
            found[label] = found.get(label, 0.0) + (end - start)
    first_of: dict[tuple[str, int], Event] = {}
    for event in events:
        first_of.setdefault((event[0], event[3]), event)
    proc_start = events[0][1]
    number = 0 if job is None else job
    job_start, first = first_of.get(("job start", number)), first_of.get(("first batch", number))
    if job_start and first:
        found["job start -> first batch"] = first[1] - job_start[1]
        found["process start -> first batch"] = first[1] - proc_start
        found["process start -> job start"] = job_start[1] - proc_start
    started = first_of.get(("MLflow run started", number))
    if started:
        found["process start -> MLflow run started"] = started[2] - proc_start
    train, end = first_of.get(("train + test", number)), first_of.get(("job end", number))
    if train and end:
        found["train end -> job end"] = end[1] - train[2]
    main_end = [e[2] for e in events if e[0] in ("pre-compose (error messages)", "check overrides")]
    if job_start and main_end and number == 0:
        found["hydra compose -> job start"] = job_start[1] - max(main_end)
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


def job_processes(events: dict[int, list[Event]]) -> list[dict[str, float]]:
    """The first job of every process that ran a job but not the sweep (launcher workers)."""
    return [
        durations([e for e in found if e[3] <= 0])
        for found in events.values()
        if any(e[0] == "first batch" for e in found)
        and not any(e[0] == "sweep start (parent run)" for e in found)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dataset", choices=["mnist", "spirals"], default="mnist")
    parser.add_argument("--no-server", action="store_true", help="skip the mlflow server case")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sweep-overhead-") as tmp:
        cwd = Path(tmp)
        site = cwd / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
        env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{ROOT}"}
        env.setdefault("TOOLKIT_DATA_DIR", str(ROOT.parent / "shared" / "data"))
        data = ["dataset.subset=100"] if options.dataset == "mnist" else ["dataset=spirals"]
        base = ["+model=mlp", *data, "trainer.epochs=1", "trainer.progress=false"]
        sqlite = ["logger.log_model=false", "logger.tracking_uri=sqlite:///mlflow.db"]
        run_child([*base, "logger=none"], cwd, env)  # warm: dataset cache, OS file cache
        run_child([*base, *sqlite], cwd, env)  # creates ./mlflow.db (schema) once

        stores = [("SQLite", sqlite)]
        with contextlib.ExitStack() as stack:
            if not options.no_server:
                from tests.mlflow_server import running_server

                server_dir = cwd / "server"
                server_dir.mkdir()
                url = stack.enter_context(running_server(server_dir))
                served = ["logger.log_model=false", f"logger.tracking_uri={url}"]
                run_child([*base, *served], cwd, env)  # creates the experiment
                stores.append(("MLflow server", served))

            single = [("logger=none", [*base, "logger=none"])]
            single += [(f"MLflow, {name}", [*base, *store]) for name, store in stores]
            for title, args in single:
                samples = [
                    durations(only_process(run_child(args, cwd, env)))
                    for _ in range(options.repeats)
                ]
                print_table(
                    f"single run, {title} (median of {options.repeats})",
                    median_table(samples, SINGLE_PHASES),
                )

            launchers = {
                "joblib (2 workers)": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
                "submitit_local": ["hydra/launcher=submitit_local"],
            }
            for launcher, launcher_args in launchers.items():
                for name, store in stores:
                    samples = []
                    for i in range(options.repeats):
                        args = ["-m", *base, *store, *launcher_args, "optim.lr=0.01,0.001"]
                        args.append(f"hydra.sweep.dir=sweeps/{launcher.split()[0]}-{name}-{i}")
                        samples += job_processes(run_child(args, cwd, env))
                    print_table(
                        f"sweep job in its own process: {launcher}, {name} "
                        f"(median of {len(samples)} job processes)",
                        median_table(samples, JOB_PROCESS_PHASES),
                    )

        sweep_samples, job_samples, tail_samples = [], [], []
        for i in range(options.repeats):
            folder = cwd / f"sweep{i}"
            folder.mkdir()
            args = ["-m", *base, *sqlite, "optim.lr=0.01,0.001", "hydra.sweep.dir=sweep"]
            events = only_process(run_child(args, folder, env))
            sweep_samples.append(durations(events, job=-1))
            tail_samples.append(durations(events, job=0))
            job_samples.append(durations(events, job=1))
        print_table(
            f"sweep, basic launcher, fresh SQLite (median of {options.repeats})",
            median_table(sweep_samples, ["sweep start (parent run)", "sweep end (summary)"]),
        )
        per_job = [
            "dataset load (cache)",
            "build job (data, model)",
            "MLflow store + experiment",
            "MLflow run started",
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
        plain = {**env, "PYTHONPATH": str(ROOT)}
        for name, seconds in import_times([*base, *sqlite], cwd, plain)[:12]:
            print(f"  {name:<34} {seconds:7.3f} s")


if __name__ == "__main__":
    main()
