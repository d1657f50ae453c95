"""The batch-last image layout: NCHW arrays whose memory is (C, H, W, N).

``conv2d`` writes its output in this order (the GEMM's columns are ordered (h, w, n)),
returns an (N, C, H, W) *view* of it (``transpose(3, 0, 1, 2)``), and the layers behind
it keep the order: element-wise layers (NumPy allocates results in the
input's memory order), batch norm (one contiguous row of H*W*N values per channel), the
2x2 max-pool and the next convolution, all without copies; a flatten copies it into NCHW.

Why: with the batch innermost, the two elements of a horizontal 2x2-pooling pair are N
floats apart, so every pooling pass runs NumPy's contiguous (vectorised) loops over runs
of N (or W*N) elements; in (C, N, H, W) memory they are neighbours and the passes are
stride-2 loops or many 7- to 14-element rows (2-3x slower). A convolution's taps are a
strided view whose rows are runs of W*N values (``toolkit/nn/conv_batch_last.py``).

Shapes: ``xl`` (C, H, W, N); pooling output (C, H/2, W/2, N).
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


def in_layout_of(x: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``x`` with the memory order of ``like`` (same shape): ``x`` itself when the orders
    match or ``like`` is not contiguous in any order, else one copy. An element-wise
    NumPy operation on two arrays of different orders (a channel-major gradient times a
    batch-last mask) runs strided loops, ~14x slower than the copy and a contiguous one."""
    if x.shape != like.shape or x.ndim < 2 or (x.flags.c_contiguous and like.flags.c_contiguous):
        return x
    order = tuple(int(a) for a in np.argsort([-abs(s) for s in like.strides], kind="stable"))
    if not like.transpose(order).flags.c_contiguous or x.transpose(order).flags.c_contiguous:
        return x
    return np.ascontiguousarray(x.transpose(order)).transpose(np.argsort(order))


def pool_forward(xl: np.ndarray, relu: bool, masks: dict[str, np.ndarray]) -> np.ndarray:
    """2x2/2 max-pool (then ReLU when ``relu``) of xl (C, H, W, N) -> y (C, H/2, W/2, N),
    on shards of output rows (:func:`pool_rows`)."""
    c, h, w, n = xl.shape
    pool_scratch(xl.shape, xl.dtype, masks, relu)
    y = np.empty((c, h // 2, w // 2, n), dtype=xl.dtype)
    ranges = parallel.shard_ranges(c * h // 2, min_size=16)
    parallel.run(lambda start, stop: pool_rows(xl, y, masks, relu, slice(start, stop)), ranges)
    return y


def pool_scratch(shape: tuple[int, ...], dtype, masks: dict[str, np.ndarray], relu: bool) -> None:
    """The reused buffers of :func:`pool_rows` for xl of ``shape`` (C, H, W, N), in
    ``masks``: ``wide`` (C*H/2, 2, W/2*N) pair maxima, ``right`` (C*H/2, W, N) and
    ``bottom`` (C*H/2, W/2*N) which element won, ``positive`` (y > 0) when ``relu``."""
    c, h, w, n = shape
    out_rows, half = c * h // 2, w // 2
    scratch(masks, "wide", (out_rows, 2, half * n), dtype)
    scratch(masks, "right", (out_rows, w, n), bool)
    scratch(masks, "bottom", (out_rows, half * n), bool)
    if relu:
        scratch(masks, "positive", (out_rows, half * n), bool)


def pool_rows(
    xl: np.ndarray, y: np.ndarray, masks: dict[str, np.ndarray], relu: bool, part: slice
) -> None:
    """Output rows ``part`` (of y's C*H/2 rows) of the 2x2/2 max-pool of xl (C, H, W, N)
    into y (C, H/2, W/2, N), masks recorded (:func:`pool_scratch`'s buffers). As in
    (C, N, H, W) memory: horizontal pairs first (ties: left), then vertical (ties: top),
    so the recorded maximum is each window's first in row-major order."""
    c, h, w, n = xl.shape
    pairs = xl.reshape(c * h // 2, w, 2, n)[part]  # per output row: its 2 input rows' pairs
    out = y.reshape(c * h // 2, -1)[part]
    wide, bottom = masks["wide"][part], masks["bottom"][part]
    np.greater(pairs[:, :, 1], pairs[:, :, 0], out=masks["right"][part])
    np.maximum(pairs[:, :, 0], pairs[:, :, 1], out=wide.reshape(len(out), w, n))
    np.greater(wide[:, 1], wide[:, 0], out=bottom)
    np.maximum(wide[:, 0], wide[:, 1], out=out)
    if relu:
        positive = masks["positive"][part]
        np.greater(out, 0, out=positive)
        np.multiply(out, positive, out=out)


def pool_backward(dy: np.ndarray, masks: dict[str, np.ndarray], relu: bool) -> np.ndarray:
    """dy (C, H/2, W/2, N) C-contiguous -> dx (C, H, W, N): each window's gradient to the
    element :func:`pool_forward` recorded (times the ReLU's mask when ``relu``), on shards
    of output rows (:func:`unpool_rows`)."""
    c, out_h, half, n = dy.shape
    scratch(masks, "split", (c * out_h, 2, half * n), dy.dtype)
    dx = np.empty((c, 2 * out_h, 2 * half, n), dtype=dy.dtype)
    ranges = parallel.shard_ranges(c * out_h, min_size=16)
    parallel.run(lambda start, stop: unpool_rows(dy, dx, masks, relu, slice(start, stop)), ranges)
    return dx


def unpool_rows(
    dy: np.ndarray, dx: np.ndarray, masks: dict[str, np.ndarray], relu: bool, part: slice
) -> None:
    """dx's rows behind output rows ``part`` (of dy's C*H/2) <- dy routed to the recorded
    window elements (masks of :func:`pool_rows`, ``split`` a (C*H/2, 2, W/2*N) buffer)."""
    c, out_h, half, n = dy.shape
    g = dy.reshape(c * out_h, -1)[part]
    split = masks["split"][part]  # (top, bottom)
    pairs = dx.reshape(c * out_h, 2 * half, 2, n)[part]
    if relu:  # the absorbed ReLU's gradient
        g = np.multiply(g, masks["positive"][part], out=split[:, 0])
    np.multiply(g, masks["bottom"][part], out=split[:, 1])
    np.subtract(g, split[:, 1], out=split[:, 0])  # exact: dy - dy or dy - 0
    rows = split.reshape(len(g), 2 * half, n)
    np.multiply(rows, masks["right"][part], out=pairs[:, :, 1])
    np.subtract(rows, pairs[:, :, 1], out=pairs[:, :, 0])


def scratch(store: dict[str, np.ndarray], name: str, shape: tuple, dtype) -> np.ndarray:
    """``store[name]``, (re)allocated when its shape or dtype differs: buffers kept
    between calls (fresh allocations of a few MB cost page faults on every step)."""
    array = store.get(name)
    if array is None or array.shape != shape or array.dtype != np.dtype(dtype):
        store[name] = array = np.empty(shape, dtype=dtype)
    return array
