"""How many cores the engine uses while a Trainer fits or predicts."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import numpy as np

from toolkit.nn import parallel


def blas_threads(threads: int | None) -> contextlib.AbstractContextManager:
    """A context limiting BLAS to ``threads`` threads (no limit for ``None``)."""
    if threads is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads, user_api="blas")


@functools.cache
def warm_blas() -> None:
    """Run one 512x512x512 float32 GEMM (a few milliseconds), once per process.

    NumPy's OpenBLAS (0.3.31, Haswell kernels) runs the engine's small single-thread
    GEMMs at half speed until the process has made one GEMM at least 384 wide on this
    side: (64, 784) @ (784, 128) measured 17 GFLOP/s cold and 37 GFLOP/s after it, in
    every thread, from then on (``bench/README.md``, "BLAS warm-up")."""
    square = np.ones((512, 512), dtype=np.float32)
    np.matmul(square, square)


@contextlib.contextmanager
def engine_threads(threads: int | None) -> Iterator[int]:
    """A context running the NumPy engine on ``threads`` cores (``None``: every available
    core): training steps run on that many shards of the batch
    (:mod:`toolkit.nn.data_parallel`) or layers split their passes
    (:mod:`toolkit.nn.parallel`), and BLAS runs one thread per shard, so the cores are
    never oversubscribed and OpenBLAS's spinning workers never wait on each other.
    Yields the thread count."""
    with blas_threads(1), parallel.using_threads(threads) as count:
        warm_blas()
        yield count
