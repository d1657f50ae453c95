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
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

from toolkit.nn import memory

T = TypeVar("T")

_threads = 1
_executor: ThreadPoolExecutor | None = None


def available_cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


def threads() -> int:
    """The number of shards layers split their work into (1: everything inline)."""
    return _threads


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
    count = max(1, min(_threads, size // max(min_size, 1)))
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
    global _executor
    if len(ranges) == 1:
        return [task(*ranges[0])]
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=_threads - 1, thread_name_prefix="shard")
    futures = [_executor.submit(task, start, stop) for start, stop in ranges[1:]]
    first = task(*ranges[0])
    return [first, *(future.result() for future in futures)]
