"""The batch-last image layout: NCHW arrays whose memory is (C, H, W, N).

A stride-1 "same" ``conv2d`` writes its output in this order (the GEMM's columns are
ordered (h, w, n)), returns an (N, C, H, W) *view* of it (``transpose(3, 0, 1, 2)``), and
the layers behind it keep the order: element-wise layers (NumPy allocates results in the
input's memory order), batch norm (one contiguous row of H*W*N values per channel), the
2x2 max-pool and the next convolution, all without copies; a flatten copies it into NCHW.

Why: with the batch innermost, the two elements of a horizontal 2x2-pooling pair are N
floats apart, so every pooling pass runs NumPy's contiguous (vectorised) loops over runs
of N (or W*N) elements; in (C, N, H, W) memory they are neighbours and the passes are
stride-2 loops or many 7- to 14-element rows (2-3x slower). A convolution tap is still one
flat shift of each channel's H*W*N values, ``((i-p)*W + (j-p))*N``; only the taps' columns
outside the image must be zeroed (their rows outside fall off the flat ends).

Shapes: ``xl`` (C, H, W, N); patches / ``dcols`` (C, k, k, H, W, N) flattened to
(C, k, k, H*W*N); pooling output (C, H/2, W/2, N).
"""

from __future__ import annotations

import numpy as np

from toolkit.nn import parallel

LAST = (1, 2, 3, 0)  # x.transpose(LAST) is (C, H, W, N)
FROM_LAST = (3, 0, 1, 2)  # its inverse: (C, H, W, N) memory -> an (N, C, H, W) view


def is_batch_last(x: np.ndarray) -> bool:
    """Whether ``x`` (N, C, H, W) has (C, H, W, N) memory (and N > 1, so that the test
    is not also true of NCHW memory)."""
    return x.ndim == 4 and x.shape[0] > 1 and x.transpose(LAST).flags.c_contiguous


def to_batch_last(x: np.ndarray, dtype: np.dtype | None = None) -> np.ndarray:
    """x (N, C, H, W) -> (C, H, W, N) C-contiguous: a view when ``x`` is batch-last,
    else one copy."""
    return np.ascontiguousarray(x.transpose(LAST), dtype=dtype)


def zero_columns(tap: np.ndarray, dj: int) -> None:
    """Zero the image columns that tap column offset ``dj`` reads from outside:
    ``tap`` is (C, rows, W, N); the last ``dj`` columns (dj > 0) or the first ``-dj``."""
    w = tap.shape[2]
    if dj > 0:
        tap[:, :, max(w - dj, 0) :] = 0
    elif dj < 0:
        tap[:, :, : min(-dj, w)] = 0


def im2col_rows(xl: np.ndarray, patches: np.ndarray, pad: int, rows: tuple[int, int]) -> None:
    """patches (C, k, k, H*W*N) <- the taps of xl (C, H, W, N) for the output rows
    ``rows = (h0, h1)`` of a stride-1 "same" convolution (only those columns written)."""
    c, h, w, n = xl.shape
    k = patches.shape[1]
    line, size = w * n, h * w * n
    src = xl.reshape(c, size)
    lo, hi = rows[0] * line, rows[1] * line
    for i in range(k):
        for j in range(k):
            shift = (i - pad) * line + (j - pad) * n
            tap = patches[:, i, j, lo:hi]
            start, stop = max(lo + shift, 0), min(hi + shift, size)  # source range
            if start >= stop:
                tap[...] = 0
                continue
            first, last = start - shift - lo, stop - shift - lo
            tap[:, first:last] = src[:, start:stop]
            tap[:, :first] = 0
            tap[:, last:] = 0
            zero_columns(tap.reshape(c, rows[1] - rows[0], w, n), j - pad)


def col2im_rows(dcols: np.ndarray, dx: np.ndarray, pad: int, rows: tuple[int, int]) -> None:
    """dx (C, H, W, N) rows ``(h0, h1)`` <- the adjoint of :func:`im2col_rows`: every
    tap of dcols (C, k, k, H*W*N) added back where it read from (the centre tap first,
    then row-major). The taps' outside columns must be zeroed already."""
    c, h, w, n = dx.shape
    k = dcols.shape[1]
    line, size = w * n, h * w * n
    out = dx.reshape(c, size)
    lo, hi = rows[0] * line, rows[1] * line
    np.copyto(out[:, lo:hi], dcols[:, pad, pad, lo:hi])
    for i in range(k):
        for j in range(k):
            shift = (i - pad) * line + (j - pad) * n
            start, stop = max(lo, shift), min(hi, size + shift)  # dx range
            if shift and start < stop:
                out[:, start:stop] += dcols[:, i, j, start - shift : stop - shift]


def conv_forward(
    x: np.ndarray, weights: np.ndarray, cols: np.ndarray, pad: int, k: int
) -> np.ndarray:
    """A stride-1 "same" convolution of x (N, C, H, W) as one GEMM per shard of output
    rows: cols (C*k*k [+1], H*W*N) (its last row ones when the bias is folded into
    weights (F, C*k*k [+1])) is filled and kept for backward. Returns y (F, H, W, N)."""
    xl = to_batch_last(x, dtype=cols.dtype)
    c, h, w, n = xl.shape
    taps = c * k * k
    patches = cols[:taps].reshape(c, k, k, -1)
    y = np.empty((weights.shape[0], h * w * n), dtype=cols.dtype)

    def shard(h0: int, h1: int) -> None:
        im2col_rows(xl, patches, pad, (h0, h1))
        part = slice(h0 * w * n, h1 * w * n)
        np.matmul(weights, cols[:, part], out=y[:, part])

    parallel.run(shard, parallel.shard_ranges(h, min_size=2, macs=weights.size * h * w * n))
    return y.reshape(-1, h, w, n)


def conv_backward(
    dy: np.ndarray,
    cols: np.ndarray,
    w_t: np.ndarray | None,
    dcols: np.ndarray | None,
    shape: tuple[int, int, int, int],
    pad: int,
    k: int,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Backward of :func:`conv_forward`: dy (N, F, H, W) -> (grad (C*k*k [+1], F) =
    cols @ dy^T summed over shards in shard order, dx (C, H, W, N) or None).

    ``w_t`` (C*k*k, F) and the buffer ``dcols`` (C*k*k, H*W*N) are None when dL/dx is not
    needed; ``shape`` is the input's (C, H, W, N). dcols is computed per shard of output
    rows, then dx per shard of input rows (these read the neighbouring shards' dcols)."""
    c, h, w, n = shape
    line = w * n
    g = to_batch_last(dy, dtype=cols.dtype).reshape(dy.shape[1], -1)  # (F, H*W*N)
    ranges = parallel.shard_ranges(h, min_size=2, macs=cols.shape[0] * g.size)
    taps = None if dcols is None else dcols.reshape(c, k, k, h, w, n)

    def gemms(h0: int, h1: int) -> np.ndarray:
        part = slice(h0 * line, h1 * line)
        grad = cols[:, part] @ g[:, part].T  # (rows, F): the faster order
        if taps is not None:
            np.matmul(w_t, g[:, part], out=dcols[:, part])
            for i in range(k):
                for j in range(k):
                    zero_columns(taps[:, i, j, h0:h1], j - pad)
        return grad

    partial = parallel.run(gemms, ranges)
    grad = parallel.sum_in_order(partial)
    if taps is None:
        return grad, None
    dx = np.empty(shape, dtype=cols.dtype)
    flat = dcols.reshape(c, k, k, -1)
    parallel.run(lambda h0, h1: col2im_rows(flat, dx, pad, (h0, h1)), ranges)
    return grad, dx


def pool_forward(xl: np.ndarray, relu: bool, masks: dict[str, np.ndarray]) -> np.ndarray:
    """2x2/2 max-pool (then ReLU when ``relu``) of xl (C, H, W, N) -> y (C, H/2, W/2, N).

    As in (C, N, H, W) memory: horizontal pairs first (ties: left), then vertical (ties:
    top), so the recorded maximum is each window's first in row-major order. ``masks``
    gets (reused buffers) ``right`` (C*H/2, W, N) and ``bottom`` (C*H/2, W/2*N): which
    element won, and ``positive`` (y > 0) when ``relu``."""
    c, h, w, n = xl.shape
    out_rows, half = c * h // 2, w // 2
    pairs = xl.reshape(out_rows, w, 2, n)  # per output row: its 2 input rows' W/2 pairs
    wide = scratch(masks, "wide", (out_rows, 2, half * n), xl.dtype)  # pair maxima
    y = np.empty((out_rows, half * n), dtype=xl.dtype)
    right = scratch(masks, "right", (out_rows, w, n), bool)
    bottom = scratch(masks, "bottom", (out_rows, half * n), bool)
    positive = scratch(masks, "positive", y.shape, bool) if relu else None

    def shard(start: int, stop: int) -> None:
        part = slice(start, stop)
        left, other = pairs[part, :, 0], pairs[part, :, 1]
        np.greater(other, left, out=right[part])
        np.maximum(left, other, out=wide[part].reshape(stop - start, w, n))
        top, low = wide[part, 0], wide[part, 1]
        np.greater(low, top, out=bottom[part])
        np.maximum(top, low, out=y[part])
        if relu:
            np.greater(y[part], 0, out=positive[part])
            np.multiply(y[part], positive[part], out=y[part])

    parallel.run(shard, parallel.shard_ranges(out_rows, min_size=16))
    return y.reshape(c, h // 2, half, n)


def pool_backward(dy: np.ndarray, masks: dict[str, np.ndarray], relu: bool) -> np.ndarray:
    """dy (C, H/2, W/2, N) C-contiguous -> dx (C, H, W, N): each window's gradient to the
    element :func:`pool_forward` recorded (times the ReLU's mask when ``relu``)."""
    c, out_h, half, n = dy.shape
    out_rows, w = c * out_h, 2 * half
    right, bottom = masks["right"], masks["bottom"]
    positive = masks["positive"] if relu else None
    grad = dy.reshape(out_rows, half * n)
    split = scratch(masks, "split", (out_rows, 2, half * n), dy.dtype)  # (top, bottom)
    dx = np.empty((c, 2 * out_h, w, n), dtype=dy.dtype)
    pairs = dx.reshape(out_rows, w, 2, n)

    def shard(start: int, stop: int) -> None:
        part = slice(start, stop)
        g = grad[part]
        if positive is not None:  # the absorbed ReLU's gradient
            g = np.multiply(g, positive[part], out=split[part, 0])
        np.multiply(g, bottom[part], out=split[part, 1])
        np.subtract(g, split[part, 1], out=split[part, 0])  # exact: dy - dy or dy - 0
        rows = split[part].reshape(stop - start, w, n)
        np.multiply(rows, right[part], out=pairs[part, :, 1])
        np.subtract(rows, pairs[part, :, 1], out=pairs[part, :, 0])

    parallel.run(shard, parallel.shard_ranges(out_rows, min_size=16))
    return dx


def scratch(store: dict[str, np.ndarray], name: str, shape: tuple, dtype) -> np.ndarray:
    """``store[name]``, (re)allocated when its shape or dtype differs: buffers kept
    between calls (fresh allocations of a few MB cost page faults on every step)."""
    array = store.get(name)
    if array is None or array.shape != shape or array.dtype != np.dtype(dtype):
        store[name] = array = np.empty(shape, dtype=dtype)
    return array
