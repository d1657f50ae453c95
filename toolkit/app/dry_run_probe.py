"""The timing probe of a sweep's dry run: jobs built as their runs build them, their
training steps, evaluation, post-fit analyses and outputs timed, untracked, leaving
nothing behind (the outputs go to a temporary folder, removed at once). How the estimate
uses them: :mod:`toolkit.app.dry_run_estimate`."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

PROBE_SECONDS = 1.0  # training steps timed for the first job
CHUNK_SECONDS = 0.05  # one timed chunk of batches
PAIRED_CHUNKS = 5  # another job's chunks, each followed by one of the first job's


@dataclass
class Probe:
    """What one probed job's timing says (seconds)."""

    build_s: float
    sample_s: float  # one training sample (forward, backward, update)
    batches: int
    batch_size: int
    sizes: tuple[int, int, int]  # train, val, test samples
    eval_sample_s: float = 0.0
    post_fit_s: float = 0.0


def task_config(cfg: DictConfig) -> DictConfig:
    """The config a job's task function gets: without ``hydra`` (set as HydraConfig)."""
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().set_config(cfg)
    task = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    with open_dict(task):
        del task["hydra"]
    return task


class StepTimer:
    """Times a built job's training steps, a chunk of batches at a time, after one
    warm-up chunk. The chunk is about ``CHUNK_SECONDS`` long, or ``samples`` long (the
    first job's chunk: two jobs compared per sample pay the same per-call overhead)."""

    def __init__(self, job, samples: int | None = None) -> None:
        self.trainer, self.train = job.trainer, job.fit_splits.train
        self.trainer.epoch = 1
        size = self.trainer.batch_size
        self.offset, self.chunk = 0, min(len(self.train), 5 * size)
        self.logs: dict[str, float] = {}
        self.rate()  # warm-up: the first steps allocate
        if samples is None:
            samples = int(CHUNK_SECONDS / max(self.rate(), 1e-12))
        self.chunk = min(len(self.train), max(5, round(samples / size)) * size)

    def rate(self) -> float:
        """Seconds per training sample of the next chunk."""
        from toolkit.data import ArrayData
        from toolkit.train.threads import engine_threads

        end = self.offset + self.chunk
        part = ArrayData(self.train.x[self.offset : end], self.train.y[self.offset : end])
        self.offset = end if end + self.chunk <= len(self.train) else 0
        with engine_threads(self.trainer.threads):
            tic = time.perf_counter()
            self.logs = self.trainer.train_epoch(part)
            return (time.perf_counter() - tic) / len(part)


def build_timed(cfg: DictConfig, threads: int):
    """(the job ``cfg`` built as its run builds it, seconds it took)."""
    from toolkit.app.job import build_job

    started = time.perf_counter()
    job = build_job(task_config(cfg), progress=False, threads=threads)
    return job, time.perf_counter() - started


def probe_first(cfg: DictConfig, threads: int) -> tuple[Probe, StepTimer]:
    """The first job: ``PROBE_SECONDS`` of training steps (their median chunk: a moment
    of other load on the machine does not make the estimate), its evaluation and its
    post-fit analyses (on the probe's one short epoch)."""
    job, build_s = build_timed(cfg, threads)
    timer, rates = StepTimer(job), []
    while sum(rates) * timer.chunk < PROBE_SECONDS and len(rates) * timer.chunk < len(timer.train):
        rates.append(timer.rate())
    probe = Probe(build_s, statistics.median(rates), 0, job.trainer.batch_size, split_sizes(job))
    probe.batches = len(rates) * timer.chunk // probe.batch_size
    probe.eval_sample_s, probe.post_fit_s = _after_training(job, timer.logs)
    return probe, timer


def probe_other(cfg: DictConfig, threads: int, first: Probe, reference: StepTimer) -> Probe:
    """Another job's step cost relative to the first's: chunks of the two alternate, so
    that both see the same load on the machine, and the fastest of each are compared."""
    job, build_s = build_timed(cfg, threads)
    timer, own, base = StepTimer(job, reference.chunk), [], []
    for _ in range(PAIRED_CHUNKS):
        own.append(timer.rate())
        base.append(reference.rate())
    ratio = min(own) / min(base)  # other load only ever adds time: the fastest chunks
    batches = PAIRED_CHUNKS * timer.chunk // job.trainer.batch_size
    return Probe(build_s, first.sample_s * ratio, batches, job.trainer.batch_size, split_sizes(job))


def split_sizes(job) -> tuple[int, int, int]:
    splits = job.fit_splits
    return tuple(len(s) if s is not None else 0 for s in (splits.train, splits.val, splits.test))


def _after_training(job, logs: dict[str, float]) -> tuple[float, float]:
    """(evaluation seconds per sample, seconds of the post-fit analyses and outputs): the
    job's validation and test evaluations, its analyses after one recorded probe epoch,
    and its outputs (checkpoint, figures as PNG) written into a temporary folder that is
    removed at once."""
    import tempfile

    from toolkit.app.lifecycle import evaluate_job, post_fit_settings
    from toolkit.app.outputs import write_outputs
    from toolkit.app.post_fit import FitResult, run_steps

    splits, history = job.fit_splits, job.trainer.history
    job.trainer.predict(splits.test.x[:1000])  # warm-up (the first evaluation allocates)
    tic = time.perf_counter()
    if splits.val is not None:
        logs = {**logs, **job.trainer.evaluate(splits.val, prefix="val")}
    metrics = evaluate_job(job)
    evaluated = len(splits.test) + (len(splits.val) if splits.val is not None else 0)
    eval_sample_s = (time.perf_counter() - tic) / max(1, evaluated)
    history["epoch"].append(1)  # what the analyses draw: one epoch, as the trainer records
    for key, value in logs.items():
        history.setdefault(key, []).append(float(value))
    tic = time.perf_counter()
    steps = run_steps(FitResult(job, metrics), **post_fit_settings(job.config))
    with tempfile.TemporaryDirectory(prefix="toolkit-dry-run-") as folder:
        write_outputs(job, Path(folder), metrics, steps, job.checkpoint_meta())
    return eval_sample_s, time.perf_counter() - tic
