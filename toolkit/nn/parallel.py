"""Batch shards on worker threads: how layers use more than one core.

NumPy's ufuncs and BLAS release the GIL while they work on large arrays, so a layer can
split its batch into ``threads()`` contiguous shards and run each shard's work on its own
thread. Every shard's result is computed exactly as it would be on its own, and sums over
shards (weight gradients, batch statistics) are reduced by the caller in shard order, so
for a given thread count the results never depend on thread scheduling: reruns are
bit-identical. Different thread counts may differ in the last bits (float sums taken in
another order).

BLAS itself should run one thread per shard while a pool of more than one thread is in
use (the Trainer sets both); OpenBLAS's own threads spin while they wait, which made
2-thread runs many times slower on a busy machine.

    set_threads(2)
    run(lambda start, stop: work(x[start:stop]), shard_ranges(len(x)))

A whole training step can run the same way (:mod:`toolkit.nn.data_parallel`): each
thread runs the model on its own shard of the batch through :func:`run_shards`. Inside
such a shard :func:`threads` is 1 (layers work inline), and what depends on the whole
batch (batch-norm statistics) is summed over the shards with :func:`all_sum`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

import numpy as np

from toolkit.nn import memory

T = TypeVar("T")

_threads = 1
_executor: ThreadPoolExecutor | None = None
_local = threading.local()  # .shard: (the step's _ShardGroup, this thread's shard index)


def available_cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


def threads() -> int:
    """The number of shards layers split their work into (1: everything inline, as
    inside a shard of :func:`run_shards`)."""
    return 1 if getattr(_local, "shard", None) else _threads


def set_threads(count: int | None) -> None:
    """Use ``count`` threads for batch shards (``None``: every available core)."""
    global _threads, _executor
    count = available_cores() if count is None else int(count)
    if count < 1:
        raise ValueError(f"threads must be >= 1; got {count}")
    if count != _threads and _executor is not None:
        _executor.shutdown(wait=True)
        _executor = None
    _threads = count


@contextlib.contextmanager
def using_threads(count: int | None) -> Iterator[int]:
    """Context: :func:`set_threads` ``count`` inside, the previous count restored after.
    Also keeps freed memory in the process for the next step
    (:func:`toolkit.nn.memory.keep_freed_memory`, once per process)."""
    memory.keep_freed_memory()
    previous = _threads
    set_threads(count)
    try:
        yield _threads
    finally:
        set_threads(previous)


#: multiply-adds below which a GEMM layer stays on one thread: waking a second thread
#: and sharing the memory bus cost more than half of such a GEMM saves (at batch 64 the
#: MLP's 784 x 128 dense layer, 6.4M, and the CNN's 1 -> 16 conv, 8.0M, ran slower on two)
MIN_SHARD_MACS = 1 << 23


def shard_ranges(size: int, min_size: int = 1, macs: int | None = None) -> list[tuple[int, int]]:
    """``threads()`` contiguous (start, stop) ranges covering ``range(size)``, fewer when
    a shard would hold less than ``min_size`` items, one when the work's ``macs``
    (multiply-adds, if given) are below :data:`MIN_SHARD_MACS`; sizes differ by at most
    one."""
    if macs is not None and macs < MIN_SHARD_MACS:
        return [(0, size)]
    count = max(1, min(threads(), size // max(min_size, 1)))
    if count == 1:  # the common case on one thread: a layer asks on every pass
        return [(0, size)]
    bounds = [size * i // count for i in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


#: elements below which element-wise work (an optimizer step) stays on one thread: a
#: dozen ufunc passes over fewer elements save less on a second thread than waking it costs
MIN_SHARD_ELEMENTS = 1 << 18


def run_elementwise(task: Callable[[int, int], object], size: int) -> None:
    """``task(start, stop)`` on :func:`shard_ranges` of ``range(size)`` (at least
    :data:`MIN_SHARD_ELEMENTS` each), the shards on worker threads as in :func:`run`."""
    run(task, shard_ranges(size, min_size=MIN_SHARD_ELEMENTS))


def sum_in_order(parts: list[np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
    """The sum of the shards' partial results, added in shard order (the same bits for
    the same thread count), into ``out`` when given, else into ``parts[0]``."""
    total = parts[0]
    if out is not None:
        np.copyto(out, total)
        total = out
    for part in parts[1:]:
        total += part
    return total


def run(task: Callable[[int, int], T], ranges: list[tuple[int, int]]) -> list[T]:
    """``[task(start, stop) for start, stop in ranges]``, the shards after the first on
    worker threads (the first on the calling thread); results in shard order."""
    if len(ranges) == 1:
        return [task(*ranges[0])]
    futures = [_workers().submit(task, start, stop) for start, stop in ranges[1:]]
    try:
        first = task(*ranges[0])
    finally:  # no shard may still be writing when the caller goes on (or handles an error)
        wait(futures)
    return [first, *(future.result() for future in futures)]


def _workers() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=_threads - 1, thread_name_prefix="shard")
    return _executor


class _ShardGroup:
    """What the shards of one :func:`run_shards` call share: a barrier, the samples in
    each shard, and two alternating sets of slots for :func:`all_sum` (a shard writes
    slot set ``k % 2`` for its k-th sum only after every shard has passed the barrier of
    sum k - 1, so after they all finished reading sum k - 2 from it)."""

    def __init__(self, sizes: list[int]) -> None:
        self.sizes = sizes
        self.barrier = threading.Barrier(len(sizes))
        self.slots: tuple[list, list] = ([None] * len(sizes), [None] * len(sizes))
        self.sums_taken = [0] * len(sizes)


def run_shards(task: Callable[[int, int], T], sizes: list[int]) -> list[T]:
    """``[task(start, stop) ...]`` over consecutive ranges of ``sizes`` items, the first
    on the calling thread and each other on its own worker thread, as the shards of one
    step: inside them :func:`threads` is 1, :func:`all_sum` sums over all of them and
    :func:`step_size` is ``sum(sizes)``. Results in shard order. An error in one shard
    breaks the others' :func:`all_sum` and is raised once every shard has stopped."""
    group = _ShardGroup(sizes)
    bounds = np.cumsum([0, *sizes]).tolist()

    def shard(index: int) -> T:
        _local.shard = (group, index)
        try:
            return task(bounds[index], bounds[index + 1])
        except BaseException:
            group.barrier.abort()  # the other shards stop at their next all_sum
            raise
        finally:
            _local.shard = None

    futures = [_workers().submit(shard, i) for i in range(1, len(sizes))]
    results, errors = [], []
    try:
        results.append(shard(0))
    except BaseException as error:  # Ctrl-C included: the workers stop before it goes on
        group.barrier.abort()
        errors.append(error)
    wait(futures)
    errors += [e for future in futures if (e := future.exception()) is not None]
    if errors:  # the shard that failed first, not one its abort broke
        broken = threading.BrokenBarrierError
        raise next((e for e in errors if not isinstance(e, broken)), errors[0])
    return results + [future.result() for future in futures]


def shard_index() -> int:
    """This thread's shard in :func:`run_shards` (0 outside one)."""
    shard = getattr(_local, "shard", None)
    return shard[1] if shard else 0


def step_size(local: int) -> int:
    """The items of all shards of this step, given this shard's ``local`` count
    (``local`` itself outside :func:`run_shards`)."""
    shard = getattr(_local, "shard", None)
    return sum(shard[0].sizes) if shard else local


def all_sum(local: np.ndarray) -> np.ndarray:
    """The sum over every shard of this step of its ``local`` array (the same shape in
    each), added in shard order so that every shard gets the same bits; ``local`` itself
    outside :func:`run_shards`. Every shard must call it the same number of times."""
    shard = getattr(_local, "shard", None)
    if not shard:
        return local
    group, index = shard
    slots = group.slots[group.sums_taken[index] % 2]
    group.sums_taken[index] += 1
    slots[index] = np.array(local, copy=True)
    group.barrier.wait()
    total = slots[0].copy()
    for part in slots[1:]:
        total += part
    return total
