"""Signals at random moments never leave a run RUNNING, and every resumed run ends
bit-identical to an uninterrupted one.

    uv run python bench/signal_trials.py --trials 10            # single runs, SIGINT+SIGTERM
    uv run python bench/signal_trials.py --trials 3 --sweep     # a joblib sweep
    uv run python bench/signal_trials.py --epochs 40 --log-model  # later phases more often

Each trial starts the command in a fresh folder, sends the signal after a random delay
(anywhere from start-up to the final artifact logging), checks that no MLflow run is left
RUNNING and the exit code, then runs the resume command the toolkit printed and compares
the final metrics and weights with those of an uninterrupted run of the same command.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from commands import start_toolkit  # bench/ is on sys.path

RUN = [
    "+model=mlp",
    "dataset=spirals",
    "dataset.n_per_class=1500",
    "model.activation=relu",
    "model.hidden_sizes=[16]",
    "trainer.batch_size=16",
    "trainer.progress=false",
]
SWEEP = ["-m", *RUN, "seed=0,1,2,3", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]


def results(folder: Path) -> dict[str, tuple[str, str]]:
    """Each finished run folder's (metrics.json, hash of its weights), keyed by its seed."""
    found = {}
    for metrics in [
        *folder.glob("outputs/**/metrics.json"),
        *folder.glob("multirun/**/metrics.json"),
    ]:
        config = (metrics.parent / "config_resolved.yaml").read_text()
        seed = next(line for line in config.splitlines() if line.startswith("seed:"))
        with np.load(metrics.parent / "checkpoint.npz", allow_pickle=False) as archive:
            digest = hashlib.md5(
                b"".join(
                    archive[k].tobytes() for k in sorted(archive.files) if k.startswith("param/")
                )
            )
        found[seed] = (metrics.read_text(), digest.hexdigest())
    return found


def run_statuses(folder: Path) -> list[str]:
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    ids = [e.experiment_id for e in client.search_experiments()]
    return [r.info.status for r in client.search_runs(ids)] if ids else []


def trial(args: list[str], signum: int, delay: float, reference: dict, sweep: bool) -> str:
    with tempfile.TemporaryDirectory(prefix="signal-") as name:
        folder = Path(name)
        process = start_toolkit(args, folder)
        time.sleep(delay)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=600)
        statuses = run_statuses(folder) if (folder / "mlflow.db").exists() else []
        if "RUNNING" in statuses:
            return f"FAIL: left RUNNING {statuses} (exit {process.returncode})"
        single_run_ended = not sweep and "done: " in stderr  # the signal came after the end
        if process.returncode == 0 or single_run_ended:
            outcome = f"finished before the signal (exit {process.returncode})"
        elif process.returncode != 128 + signum:
            return f"FAIL: exit {process.returncode}: {stderr.strip().splitlines()[-3:]}"
        else:
            lines = [line for line in stderr.splitlines() if "resume with: " in line]
            if not lines:  # interrupted before the first epoch ended: nothing to resume
                return f"interrupted before the first epoch ({statuses or 'no runs'})"
            command = shlex.split(lines[-1].split("resume with: ", 1)[1])[3:]
            resumed = subprocess.run(
                [sys.executable, "-m", "toolkit", *command],
                cwd=folder,
                capture_output=True,
                text=True,
            )
            if resumed.returncode != 0:
                return f"FAIL: resume exit {resumed.returncode}: {resumed.stderr.splitlines()[-1:]}"
            outcome = f"resumed ({', '.join(sorted(set(statuses)))} before)"
        if "RUNNING" in run_statuses(folder):
            return "FAIL: a run is RUNNING after the resume"
        got = results(folder)
        same = all(got.get(seed) == value for seed, value in reference.items())
        return f"{outcome}: {'bit-identical' if same else 'FAIL: differs from uninterrupted'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--sweep", action="store_true", help="a joblib sweep instead of a run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=8, help="more: more signals mid-training")
    parser.add_argument(
        "--log-model", action="store_true", help="log the pyfunc model (a longer artifact phase)"
    )
    args = parser.parse_args()
    # started in the background (`nohup ... &`), this process ignores SIGINT and so would
    # its children: give them the default disposition a terminal's Ctrl-C meets
    signal.signal(signal.SIGINT, signal.default_int_handler)
    command = [
        *(SWEEP if args.sweep else RUN),
        f"trainer.epochs={args.epochs}",
        f"logger.log_model={str(args.log_model).lower()}",
    ]
    with tempfile.TemporaryDirectory(prefix="reference-") as name:
        began = time.time()
        assert start_toolkit(command, Path(name)).wait() == 0
        duration = time.time() - began
        reference = results(Path(name))
    print(f"uninterrupted: {duration:.1f} s, {len(reference)} runs", flush=True)
    rng = random.Random(args.seed)
    failures = 0
    for signum in (signal.SIGINT, signal.SIGTERM):
        for i in range(args.trials):
            delay = rng.uniform(0.2, duration)
            outcome = trial(command, signum, delay, reference, args.sweep)
            failures += outcome.startswith("FAIL") or "FAIL" in outcome
            print(
                f"{signal.Signals(signum).name} trial {i + 1} at {delay:.1f} s: {outcome}",
                flush=True,
            )
    print(f"failures: {failures} of {2 * args.trials}")


if __name__ == "__main__":
    main()
