"""``conv2d`` on batch-last memory, im2col one cache-sized chunk of output rows at a time.

Shapes: input x (N, C, H, W) in any memory order, copied once into ``padded``
(C, H+2p, W+2p, N), batch-last with a zero border (``toolkit/nn/batch_last.py``);
weights ``W_aug`` (F, C*kh*kw [+1]) (the bias as the last column, multiplying a row of
ones); output (F, H', W', N), columns ordered (h, w, n). The taps of the whole image are a
strided view of ``padded``, (C, kh, kw, H', W', N), so a chunk's im2col is one copy.

Why chunks: the patches of a whole batch (C*k*k rows of H'*W'*N, 29 MB for 16 channels at
28x28 and batch 64) fall out of the cache between the im2col that writes them and the
GEMM that reads them, and the small-F GEMMs of a CNN then stream them from memory at half
the speed they reach on cached data (16 x 145 by 145 x 50176: 37 against 60-65 GFLOP/s on
this project's machine). A chunk of :data:`CHUNK_BYTES` is written and read while cached,
and its im2col is one NumPy call rather than k*k shifted copies and their zeroed edges:
small calls hold the GIL, and with dozens of them per chunk two threads wait on each other.

Backward keeps no patches either (forward keeps only its padded input):

* the weight gradient re-runs im2col chunk by chunk, ``grad += patches @ dy^T``;
* dL/dx of a stride-1 convolution is one "valid" convolution of the zero-bordered dy
  with the kernels turned by 180 degrees (channel axes swapped), run as the forward is;
* dL/dx of a strided one is ``W^T dy`` scattered (col2im): per chunk of output rows one
  GEMM gives every tap's share, added at the input pixel the tap read (a convolution of
  dy per stride phase instead, with K = F times 1 to 4 taps, ran 20-33% slower).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from toolkit.nn import batch_last, parallel

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


def taps_view(padded: np.ndarray, kernel: tuple[int, int], stride: int) -> np.ndarray:
    """padded (C, Hp, Wp, N) -> its taps (C, kh, kw, H', W', N), a strided view: tap
    ``(i, j)`` of output pixel ``(h, w)`` reads padded pixel ``(h*s + i, w*s + j)``
    (H' = (Hp - kh) // s + 1: rows that do not fit a whole stride are left out)."""
    windows = sliding_window_view(padded, kernel, axis=(1, 2))[:, ::stride, ::stride]
    return windows.transpose(0, 4, 5, 1, 2, 3)


def chunk_rows(rows: int, line: int, itemsize: int) -> int:
    """Output rows per chunk: as many as fit :data:`CHUNK_BYTES` with ``rows`` patch rows
    of ``line`` (W'*N) values each, at least one."""
    return max(1, CHUNK_BYTES // (rows * line * itemsize))


def for_each_chunk(
    taps: np.ndarray,
    bias: bool,
    buffers: dict[str, np.ndarray],
    work: Callable[[np.ndarray, slice, np.ndarray | None], np.ndarray | None],
    filters: int,
) -> list[np.ndarray | None]:
    """Run ``work(patches, part, acc)`` on every chunk of output rows of ``taps``
    (C, kh, kw, H', W', N) (:func:`taps_view`): ``patches`` (C*kh*kw [+1], rows*W'*N)
    (the last row ones when ``bias``), ``part`` the chunk's slice of the H'*W'*N output
    columns, ``acc`` what the shard's previous ``work`` returned (None at first). Chunks
    are grouped into ``parallel`` shards of rows (by the GEMMs' multiply-adds with
    ``filters`` outputs), each with its own buffer kept in ``buffers``; returns each
    shard's last ``acc``, in shard order."""
    c, kh, kw, h, w, n = taps.shape
    line, rows = w * n, c * kh * kw + bias
    per_chunk = chunk_rows(rows, line, taps.dtype.itemsize)
    ranges = parallel.shard_ranges(h, min_size=2, macs=rows * filters * h * line)

    def shard(h0: int, h1: int) -> np.ndarray | None:
        name = f"patches {rows}{' with ones' if bias else ''} from row {h0}"
        shape = (rows, per_chunk * line)
        previous = buffers.get(name)
        buffer = batch_last.scratch(buffers, name, shape, taps.dtype)
        if bias and buffer is not previous:  # a fresh buffer: its row of ones
            buffer[-1] = 1
        acc = None
        for r0 in range(h0, h1, per_chunk):
            r1 = min(r0 + per_chunk, h1)
            width = (r1 - r0) * line
            chunk = buffer[: rows - bias, :width].reshape(c, kh, kw, r1 - r0, w, n)
            np.copyto(chunk, taps[:, :, :, r0:r1])
            acc = work(buffer[:, :width], slice(r0 * line, r1 * line), acc)
        return acc

    return parallel.run(shard, ranges)


def conv_forward(
    taps: np.ndarray, weights: np.ndarray, buffers: dict[str, np.ndarray]
) -> np.ndarray:
    """taps (C, kh, kw, H', W', N) (:func:`taps_view`), weights (F, C*kh*kw [+1]) ->
    y (F, H', W', N): per chunk one im2col and one GEMM into the chunk's columns."""
    c, kh, kw, h, w, n = taps.shape
    bias = weights.shape[1] > c * kh * kw
    y = np.empty((weights.shape[0], h * w * n), dtype=taps.dtype)

    def gemm(patches: np.ndarray, part: slice, acc: None) -> None:
        np.matmul(weights, patches, out=y[:, part])

    for_each_chunk(taps, bias, buffers, gemm, weights.shape[0])
    return y.reshape(-1, h, w, n)


def conv_backward(
    dy: np.ndarray,
    taps: np.ndarray,
    kernels: np.ndarray,
    bias: bool,
    buffers: dict[str, np.ndarray],
    geometry: tuple[int, int, int, int] | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Backward of :func:`conv_forward`: dy = dL/dy (N, F, H', W') in any memory order,
    ``taps`` the forward's, kernels W (F, C, k, k) -> (grad (C*k*k [+1], F) =
    patches @ dy^T, summed over chunks and then shards in order; dx (C, H, W, N) by
    :func:`input_grad` for ``geometry`` = (stride, padding, H, W), or None without it)."""
    f = kernels.shape[0]
    g = batch_last.to_batch_last(dy, dtype=taps.dtype).reshape(f, -1)  # (F, H'*W'*N)

    def weight_grad(patches: np.ndarray, part: slice, acc: np.ndarray | None) -> np.ndarray:
        grad = patches @ g[:, part].T  # (rows, F): the faster order
        if acc is None:
            return grad
        acc += grad
        return acc

    grad = parallel.sum_in_order(for_each_chunk(taps, bias, buffers, weight_grad, f))
    return grad, None if geometry is None else input_grad(dy, kernels, geometry, buffers)


def input_grad(
    dy: np.ndarray, kernels: np.ndarray, geometry: tuple[int, int, int, int], buffers: dict
) -> np.ndarray:
    """dL/dx (C, H, W, N) of a convolution with kernels (F, C, k, k) and ``geometry``
    (stride, padding, H, W), from dy (N, F, H', W'). Stride 1: the "valid" convolution
    of dy, zero-bordered by ``k - 1 - p``, with the kernels turned by 180 degrees and
    their channel axes swapped (``dx[y] = sum_i dy[y + p - i] W[i]``); strided
    convolutions take :func:`scattered_input_grad`."""
    stride, pad, h, w = geometry
    if stride > 1:
        return scattered_input_grad(dy, kernels, geometry, buffers)
    c, k = kernels.shape[1:3]
    border = max(0, k - 1 - pad)
    padded = padded_batch_last(dy, border, buffers, "padded dy", kernels.dtype)
    top = border + pad - (k - 1)  # > 0 where the padding exceeds k - 1
    window = padded[:, top : top + h + k - 1, top : top + w + k - 1]
    turned = kernels[:, :, ::-1, ::-1].transpose(1, 0, 2, 3).reshape(c, -1)
    return conv_forward(taps_view(window, (k, k), 1), np.ascontiguousarray(turned), buffers)


def scattered_input_grad(
    dy: np.ndarray, kernels: np.ndarray, geometry: tuple[int, int, int, int], buffers: dict
) -> np.ndarray:
    """:func:`input_grad` as ``W^T dy`` and a scatter (col2im), for strided convolutions:
    per chunk of output rows one GEMM (C*k*k, F) @ (F, rows*W'*N) gives every tap's
    share, and tap (i, j) of output pixel (o, q) is added to input pixel
    (o*s + i - p, q*s + j - p) (taps on the zero border dropped). With stride 2 its
    phases' small GEMMs (K = F * 1, 2 or 4 taps) ran 20-33% slower than this at
    ResNet's shapes. Shards of channels (each its rows of W^T and of dx)."""
    stride, pad, h, w = geometry
    f, c, k = kernels.shape[:3]
    n, _, out_h, out_w = dy.shape
    g = batch_last.to_batch_last(dy, dtype=kernels.dtype).reshape(f, -1)  # (F, H'*W'*N)
    transposed = np.ascontiguousarray(kernels.reshape(f, -1).T)  # (C*k*k, F), rows (c, i, j)
    dx = np.zeros((c, h, w, n), dtype=kernels.dtype)
    line = out_w * n
    per_chunk = chunk_rows(c * k * k, line, g.dtype.itemsize)

    def spans(tap: int, size: int, lo: int, hi: int) -> tuple[slice, slice] | None:
        """For outputs ``lo``..``hi - 1`` along one axis: (those whose tap ``tap`` lands
        on an input position 0..size-1, counted from ``lo``; those input positions)."""
        first = max(lo, -(-(pad - tap) // stride))
        last = min(hi, (size - 1 + pad - tap) // stride + 1)
        if first >= last:
            return None
        start = first * stride + tap - pad
        return slice(first - lo, last - lo), slice(start, start + stride * (last - first), stride)

    columns = [spans(j, w, 0, out_w) for j in range(k)]

    def shard(c0: int, c1: int) -> None:
        name = f"scattered taps {c1 - c0} from channel {c0}"
        buffer = batch_last.scratch(buffers, name, ((c1 - c0) * k * k, per_chunk * line), g.dtype)
        for r0 in range(0, out_h, per_chunk):
            r1 = min(r0 + per_chunk, out_h)
            width = (r1 - r0) * line
            np.matmul(transposed[c0 * k * k : c1 * k * k], g[:, r0 * line : r1 * line],
                      out=buffer[:, :width])  # fmt: skip
            shares = buffer[:, :width].reshape(c1 - c0, k, k, r1 - r0, out_w, n)
            for i in range(k):
                rows = spans(i, h, r0, r1)
                for j, cols in enumerate(columns):
                    if rows is not None and cols is not None:
                        dx[c0:c1, rows[1], cols[1]] += shares[:, i, j, rows[0], cols[0]]

    parallel.run(shard, parallel.shard_ranges(c, min_size=4, macs=c * k * k * f * out_h * line))
    return dx
