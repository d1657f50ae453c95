"""The stride-1 "same" convolution on batch-last memory, im2col one cache-sized chunk of
output rows at a time.

Shapes: input x (N, C, H, W) in any memory order, copied once into ``padded``
(C, H+2p, W+2p, N), batch-last with a zero border (``toolkit/nn/batch_last.py``);
weights ``W_aug`` (F, C*k*k [+1]) (the bias as the last column, multiplying a row of
ones); output (F, H, W, N), columns ordered (h, w, n). The taps of the whole image are a
strided view of ``padded`` (C, k, k, H, W, N), so a chunk's im2col is one copy.

Why chunks: the patches of a whole batch (C*k*k rows of H*W*N, 29 MB for 16 channels at
28x28 and batch 64) fall out of the cache between the im2col that writes them and the
GEMM that reads them, and the small-F GEMMs of a CNN then stream them from memory at half
the speed they reach on cached data (16 x 145 by 145 x 50176: 37 against 60-65 GFLOP/s on
this project's machine). A chunk of :data:`CHUNK_BYTES` is written and read while cached,
and its im2col is one NumPy call rather than k*k shifted copies and their zeroed edges:
small calls hold the GIL, and with dozens of them per chunk two threads wait on each other.

Backward keeps no patches either (forward keeps only its padded input):

* the weight gradient re-runs im2col chunk by chunk, ``grad += patches @ dy^T``;
* dL/dx is the "same" convolution of dy with the kernels turned by 180 degrees and their
  channel axes swapped (``W'[c, f, i, j] = W[f, c, k-1-i, k-1-j]``), the forward itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from toolkit.nn import batch_last, parallel

T = TypeVar("T")

#: bytes of one chunk of patches: its im2col writes and its GEMM reads stay in the cache
#: (a few rows of the image: one 28x28 row at batch 64 and 16 channels is 1 MB)
CHUNK_BYTES = 1 << 20


def padded_batch_last(
    x: np.ndarray, pad: int, buffers: dict[str, np.ndarray], name: str, dtype: np.dtype
) -> np.ndarray:
    """x (N, C, H, W) in any memory order -> (C, H+2p, W+2p, N) C-contiguous with a zero
    border of ``pad``: the interior of the buffer ``buffers[name]`` (its border is zero
    from its allocation and never written), or a view of x when it is batch-last and
    ``pad`` is 0. One copy otherwise."""
    n, c, h, w = x.shape
    if not pad:
        return batch_last.to_batch_last(x, dtype=dtype)
    shape = (c, h + 2 * pad, w + 2 * pad, n)
    padded = buffers.get(name)
    if padded is None or padded.shape != shape or padded.dtype != dtype:
        buffers[name] = padded = np.zeros(shape, dtype=dtype)
    np.copyto(padded[:, pad:-pad, pad:-pad], x.transpose(batch_last.LAST), casting="same_kind")
    return padded


def taps_view(padded: np.ndarray, k: int) -> np.ndarray:
    """padded (C, H+k-1, W+k-1, N) -> its taps (C, k, k, H, W, N), a strided view: tap
    ``(i, j)`` of output pixel ``(h, w)`` reads input pixel ``(h+i-p, w+j-p)``."""
    return sliding_window_view(padded, (k, k), axis=(1, 2)).transpose(0, 4, 5, 1, 2, 3)


def chunk_rows(rows: int, line: int, itemsize: int) -> int:
    """Output rows per chunk: as many as fit :data:`CHUNK_BYTES` with ``rows`` patch rows
    of ``line`` (W*N) values each, at least one."""
    return max(1, CHUNK_BYTES // (rows * line * itemsize))


def for_each_chunk(
    padded: np.ndarray,
    k: int,
    bias: bool,
    buffers: dict[str, np.ndarray],
    work: Callable[[np.ndarray, slice, T | None], T],
    filters: int,
) -> list[T | None]:
    """Run ``work(patches, part, acc)`` on every chunk of output rows of the "same"
    convolution of padded (C, H+k-1, W+k-1, N) (:func:`padded_batch_last`): ``patches``
    (C*k*k [+1], rows*W*N) (the last row ones when ``bias``), ``part`` the chunk's slice
    of the H*W*N output columns, ``acc`` what the shard's previous ``work`` returned (None
    at first). Chunks are grouped into ``parallel`` shards of rows (by the GEMMs'
    multiply-adds with ``filters`` outputs), each with its own buffer kept in ``buffers``;
    returns each shard's last ``acc``, in shard order."""
    c, n = padded.shape[0], padded.shape[3]
    h, w = padded.shape[1] - k + 1, padded.shape[2] - k + 1
    line, rows = w * n, c * k * k + bias
    per_chunk = chunk_rows(rows, line, padded.dtype.itemsize)
    ranges = parallel.shard_ranges(h, min_size=2, macs=rows * filters * h * line)
    taps = taps_view(padded, k)

    def shard(h0: int, h1: int) -> T | None:
        name = f"patches {rows}{' with ones' if bias else ''} from row {h0}"
        shape = (rows, per_chunk * line)
        buffer = buffers.get(name)
        if buffer is None or buffer.shape != shape or buffer.dtype != padded.dtype:
            buffer = batch_last.scratch(buffers, name, shape, padded.dtype)
            if bias:
                buffer[-1] = 1
        acc = None
        for r0 in range(h0, h1, per_chunk):
            r1 = min(r0 + per_chunk, h1)
            width = (r1 - r0) * line
            chunk = buffer[: rows - bias, :width].reshape(c, k, k, r1 - r0, w, n)
            np.copyto(chunk, taps[:, :, :, r0:r1])
            acc = work(buffer[:, :width], slice(r0 * line, r1 * line), acc)
        return acc

    return parallel.run(shard, ranges)


def conv_forward(
    padded: np.ndarray, weights: np.ndarray, k: int, buffers: dict[str, np.ndarray]
) -> np.ndarray:
    """padded (C, H+k-1, W+k-1, N) (:func:`padded_batch_last`), weights (F, C*k*k [+1])
    -> y (F, H, W, N): per chunk one im2col and one GEMM into the chunk's columns."""
    c, n = padded.shape[0], padded.shape[3]
    h, w = padded.shape[1] - k + 1, padded.shape[2] - k + 1
    bias = weights.shape[1] > c * k * k
    y = np.empty((weights.shape[0], h * w * n), dtype=padded.dtype)

    def gemm(patches: np.ndarray, part: slice, acc: None) -> None:
        np.matmul(weights, patches, out=y[:, part])

    for_each_chunk(padded, k, bias, buffers, gemm, weights.shape[0])
    return y.reshape(-1, h, w, n)


def conv_backward(
    dy: np.ndarray,
    padded: np.ndarray,
    kernels: np.ndarray,
    bias: bool,
    needs_dx: bool,
    buffers: dict[str, np.ndarray],
) -> tuple[np.ndarray, np.ndarray | None]:
    """Backward of :func:`conv_forward`: dy = dL/dy (N, F, H, W) in any memory order,
    ``padded`` the forward's input, kernels W (F, C, k, k) -> (grad (C*k*k [+1], F) =
    patches @ dy^T, summed over chunks and then shards in order; dx (C, H, W, N), or
    None unless ``needs_dx``)."""
    f, c, k = kernels.shape[:3]
    pad = k // 2
    g = batch_last.to_batch_last(dy, dtype=padded.dtype).reshape(f, -1)  # (F, H*W*N)

    def weight_grad(patches: np.ndarray, part: slice, acc: np.ndarray | None) -> np.ndarray:
        grad = patches @ g[:, part].T  # (rows, F): the faster order
        if acc is None:
            return grad
        acc += grad
        return acc

    grad = parallel.sum_in_order(for_each_chunk(padded, k, bias, buffers, weight_grad, f))
    if not needs_dx:
        return grad, None
    turned = kernels[:, :, ::-1, ::-1].transpose(1, 0, 2, 3).reshape(c, -1)
    padded_dy = padded_batch_last(dy, pad, buffers, "padded dy", padded.dtype)
    return grad, conv_forward(padded_dy, np.ascontiguousarray(turned), k, buffers)
