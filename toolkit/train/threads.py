"""How many cores the engine uses while a Trainer fits or predicts."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from toolkit.nn import parallel


def blas_threads(threads: int | None) -> contextlib.AbstractContextManager:
    """A context limiting BLAS to ``threads`` threads (no limit for ``None``)."""
    if threads is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads, user_api="blas")


@contextlib.contextmanager
def engine_threads(threads: int | None) -> Iterator[int]:
    """A context running the NumPy engine on ``threads`` cores (``None``: every available
    core): training steps run on that many shards of the batch
    (:mod:`toolkit.nn.data_parallel`) or layers split their passes
    (:mod:`toolkit.nn.parallel`), and BLAS runs one thread per shard, so the cores are
    never oversubscribed and OpenBLAS's spinning workers never wait on each other.
    Yields the thread count."""
    with blas_threads(1), parallel.using_threads(threads) as count:
        yield count
