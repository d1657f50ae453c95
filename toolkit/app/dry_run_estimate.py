"""A sweep's wall time, estimated from a short timing probe on this machine
(:mod:`toolkit.app.dry_run_probe`).

The first job is built as its run would build it (dataset, model, optimizer, on the
threads a job of this launcher gets) and timed, untracked: building it, a second of
training steps on its data (after one warm-up chunk), its evaluation, its post-fit
analyses and its outputs (written to a temporary folder). Every other job whose training
cost may differ (another model, dataset, split, augmentation, batch size, dtype, loss or
transfer setting) is built too and its steps timed against the first job's, chunks of
the two alternating, so both see the same load on the machine; jobs that differ only in
seed, optimizer, schedule or epochs share a probe. A job then costs

    build + epochs x (train samples x step/sample + val samples x eval/sample)
    + test samples x eval/sample + post-fit and outputs + TRACKING_PER_JOB_S

and the launcher's slots run the jobs batch by batch (each job to the first free slot):
one slot for ``basic``, ``n_jobs`` (``-1``: one per core) for ``joblib``, capped by
cores / threads per job on this machine, ``array_parallelism`` for SLURM. Processes
started per worker (joblib) or per job (submitit, SLURM) pay this process's start-up.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from toolkit.app.dry_run_probe import Probe, probe_first, probe_other
from toolkit.registry import ConfigError

# Tracking costs the probe does not time (it records nothing), measured on this 2-core
# machine idle (2026-12-01, +experiment=activation_pairs trainer.epochs=2, basic launcher):
TRACKING_PER_JOB_S = 1.5  # Hydra's job set-up, MLflow run, artifacts and the pyfunc model
TRACKING_ONCE_S = 7.0  # MLflow import, store, parent run (~4 s); the study report (~3 s)
COST_KEYS = ("model", "dataset", "split", "augment", "dtype", "loss", "transfer",
             "trainer.batch_size", "trainer.threads")  # fmt: skip


def process_age() -> float:
    """Seconds since this process started (what a new process pays before its job)."""
    try:
        fields = Path("/proc/self/stat").read_text().rpartition(")")[2].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def job_threads(cfg: DictConfig, master: DictConfig) -> int:
    """The BLAS/engine threads the job would train with (toolkit.app.run)."""
    from toolkit.app.run import threads_per_job

    chosen = cfg.trainer.get("threads")
    return int(chosen) if chosen else threads_per_job(master.hydra)


def cost_signature(cfg: DictConfig) -> str:
    """What decides a training step's cost, as text (equal text: same cost)."""
    return json.dumps({k: _plain(OmegaConf.select(cfg, k)) for k in COST_KEYS}, sort_keys=True)


def _plain(value):
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def job_seconds(cfg: DictConfig, probe: Probe, first: Probe) -> float:
    """A job's estimated seconds from its own step probe and the first job's rest."""
    train, val, test = probe.sizes
    eval_sample_s = first.eval_sample_s * probe.sample_s / first.sample_s
    epochs = int(cfg.trainer.epochs)
    tracking = TRACKING_PER_JOB_S if cfg.logger.enabled else 0.0
    fitting = epochs * (train * probe.sample_s + val * eval_sample_s) + test * eval_sample_s
    return probe.build_s + fitting + first.post_fit_s + tracking


@dataclass
class Slots:
    """How the launcher runs jobs: how many at once, what a fresh process costs."""

    count: int
    spawn_s: float  # start-up paid by each worker (per_job: by each job)
    per_job: bool
    note: str


def launcher_slots(master: DictConfig, threads: int, startup_s: float) -> Slots:
    """The launcher's parallelism on this machine (see the module docstring)."""
    from toolkit.app.run import available_cores

    launcher = master.hydra.launcher
    name = str(launcher.get("_target_", ""))
    cores = available_cores()
    fit = max(1, cores // max(1, threads))
    if name.endswith("BasicLauncher"):
        return Slots(1, 0.0, False, "basic launcher: one job after another in this process")
    if "Joblib" in name:
        n = int(launcher.get("n_jobs") or 1)
        workers = n if n > 0 else max(1, cores + 1 + n)
        at_once = min(workers, fit)
        note = f"joblib: {workers} workers (n_jobs={n}), {at_once} at once on {cores} cores"
        return Slots(min(workers, fit), startup_s, False, note)
    if "SlurmLauncher" in name:
        count = int(launcher.get("array_parallelism") or 1)
        note = f"SLURM: {count} array tasks at once, each as fast as this machine (assumed)"
        return Slots(count, startup_s, True, note)
    if "submitit" in name:
        return Slots(fit, startup_s, True, f"submitit_local: {fit} at once on {cores} cores")
    return Slots(1, startup_s, True, f"{name or 'this launcher'}: assumed one job at a time")


def schedule(seconds: list[float], batches: list[list[int]], slots: Slots) -> float:
    """Wall seconds of the batches, one after another, each job to the first free slot."""
    wall, started = 0.0, False
    for batch in batches:
        free = [0.0] * max(1, min(slots.count, len(batch)))
        if not slots.per_job and not started:
            free = [slots.spawn_s for _ in free]  # workers start with the first batch
        for index in batch:
            slot = free.index(min(free))
            free[slot] += seconds[index] + (slots.spawn_s if slots.per_job else 0.0)
        wall += max(free)
        started = True
    return wall


def _line(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}".splitlines()[0]


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 10 min``."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def estimate(plan) -> list[str]:
    """Probe the plan's jobs and return the estimate's lines (for a SweepPlan)."""
    startup_s = process_age()
    first_job = plan.jobs[0]
    threads = job_threads(first_job.config, plan.master)
    try:
        first, reference = probe_first(first_job.config, threads)
    except ConfigError as err:
        raise ConfigError(f"job #0 ({first_job.name}): {err}") from None
    except Exception as err:  # the job itself fails (e.g. it diverges at once)
        return [f"estimate: none; job #0 ({first_job.name}) failed while timed: {_line(err)}"]
    probes, failed = {cost_signature(first_job.config): first}, []
    for job in plan.jobs[1:]:
        key = cost_signature(job.config)
        if key in probes:
            continue
        try:
            probes[key] = probe_other(job.config, threads, first, reference)
        except ConfigError as err:
            raise ConfigError(f"job #{job.num} ({job.name}): {err}") from None
        except Exception as err:
            probes[key] = first
            failed.append(f"#{job.num} ({job.name}): {_line(err)}")
    per_job = [
        job_seconds(job.config, probes[cost_signature(job.config)], first) for job in plan.jobs
    ]
    if plan.kind == "optuna":  # every trial costs what the probe job costs
        per_job = per_job[:1] * plan.n_trials
    slots = launcher_slots(plan.master, threads, startup_s)
    once = startup_s + (TRACKING_ONCE_S if plan.master.logger.enabled else 0.0)
    total = once + schedule(per_job, plan.batches, slots)
    train, val, test = first.sizes
    shown = ", ".join(f"#{i} {s:.1f}" for i, s in enumerate(per_job[: len(plan.jobs)]))
    return [
        f"estimate: {duration(total)} wall ({total:.0f} s) for {plan.size} "
        f"{'trials' if plan.kind == 'optuna' else 'jobs'}, {threads} thread"
        f"{'' if threads == 1 else 's'} each; {slots.note}",
        f"how: timed job #0 here, untracked: built in {first.build_s:.2f} s; "
        f"{first.batches} training batches of {first.batch_size} at "
        f"{first.sample_s * first.batch_size * 1e3:.2f} ms each "
        f"({train} train, {val} val, {test} test samples); evaluation "
        f"{first.eval_sample_s * 1e6:.1f} us/sample; post-fit analyses and outputs "
        f"{first.post_fit_s:.2f} s"
        + (f"; {len(probes) - 1} other jobs' training steps timed too" if len(probes) > 1 else ""),
        "  job = build + epochs x (train samples x step + val samples x eval) + test x eval"
        f" + post-fit + {TRACKING_PER_JOB_S:g} s tracking; per job (s): {shown}",
        f"  sweep = {startup_s:.1f} s start-up + {once - startup_s:g} s MLflow store, parent "
        "run and report + the jobs over the launcher's slots, batch by batch"
        + (f" (a new process: +{slots.spawn_s:.1f} s)" if slots.spawn_s else ""),
        *[f"  failed while timed (costed as job #0): {text}" for text in failed],
        "  an upper bound where early stopping ends jobs early; assumes the machine as loaded "
        "as now"
        + ("; every trial costs what the preset's values cost" if plan.kind == "optuna" else ""),
    ]
