"""Max over k x k windows with stride s, as two 1-D passes: ``maxpool2d``'s general case.

The max of a window is the max over its rows of each row's max, so::

    h[n, c, r, o] = max_j x[n, c, r, s*o + j]           (N, C, R, W')   j < k, R = s*(H'-1)+k
    y[n, c, q, o] = max_i h[n, c, s*q + i, o]           (N, C, H', W')  i < k

``2k - 2`` maximum passes over strided views instead of ``k*k - 1`` (4 instead of 8 for
ResNet's 3x3/2 pooling). Forward keeps no index arrays: the backward pass finds each
window's *first* maximum in row-major order from x, h and y -- the first row ``i`` whose
``h`` equals ``y``, then the first column ``j`` of that row whose ``x`` equals ``h`` --
which is the element PyTorch's argmax picks. Both passes are split over
``parallel.threads()`` shards of samples; every output element is computed the same way
whatever the split.
"""

from __future__ import annotations

import numpy as np

from toolkit.nn import parallel


def _taps(x: np.ndarray, axis: int, k: int, s: int, count: int) -> list[np.ndarray]:
    """The k strided views ``x[..., t : t + s*(count-1) + 1 : s, ...]`` along ``axis``."""
    views = []
    for t in range(k):
        index = [slice(None)] * x.ndim
        index[axis] = slice(t, t + s * (count - 1) + 1, s)
        views.append(x[tuple(index)])
    return views


def _max_of(views: list[np.ndarray], out: np.ndarray) -> None:
    """out <- the element-wise max of ``views`` (all of out's shape)."""
    if len(views) == 1:
        np.copyto(out, views[0])
        return
    np.maximum(views[0], views[1], out=out)
    for view in views[2:]:
        np.maximum(out, view, out=out)


def window_max(x: np.ndarray, k: int, s: int, out_hw: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """x (N, C, H, W) -> (h (N, C, R, W'), y (N, C, H', W')): the row maxima and the
    window maxima (rows/columns past the last full window are not read)."""
    out_h, out_w = out_hw
    rows = s * (out_h - 1) + k
    n, c = x.shape[:2]
    h = np.empty((n, c, rows, out_w), dtype=x.dtype)
    y = np.empty((n, c, out_h, out_w), dtype=x.dtype)

    def shard(start: int, stop: int) -> None:
        part = x[start:stop, :, :rows]
        row_max, out = h[start:stop], y[start:stop]
        _max_of(_taps(part, 3, k, s, out_w), out=row_max)
        _max_of(_taps(row_max, 2, k, s, out_h), out=out)

    parallel.run(shard, parallel.shard_ranges(n))
    return h, y


def _route(
    source: list[np.ndarray], target: np.ndarray, grad: np.ndarray, into: list[np.ndarray]
) -> None:
    """into[t] += grad where source[t] is the first of the k taps equal to target."""
    taken = np.zeros(target.shape, dtype=bool)
    chosen = np.empty(target.shape, dtype=bool)
    share = np.empty(grad.shape, dtype=grad.dtype)
    last = len(source) - 1
    for t, (view, dest) in enumerate(zip(source, into, strict=True)):
        if t == last:
            np.logical_not(taken, out=chosen)  # no earlier tap held the maximum
        else:
            np.equal(view, target, out=chosen)
            np.greater(chosen, taken, out=chosen)  # and not taken before
            taken |= chosen
        # (a ufunc's where= and a masked copy onto overlapping taps are slower or wrong)
        np.multiply(grad, chosen, out=share)
        dest += share


def window_max_grad(
    x: np.ndarray, h: np.ndarray, y: np.ndarray, dy: np.ndarray, k: int, s: int
) -> np.ndarray:
    """dy (N, C, H', W') -> dx (N, C, H, W) (zero off each window's first maximum), from
    the forward's x and its :func:`window_max` results h, y."""
    n, c, out_h, out_w = y.shape
    rows = h.shape[2]
    dx = np.zeros(x.shape, dtype=dy.dtype)
    dh = np.zeros(h.shape, dtype=dy.dtype)

    def shard(start: int, stop: int) -> None:
        part = slice(start, stop)
        row_max, grad_rows = h[part], dh[part]
        _route(_taps(row_max, 2, k, s, out_h), y[part], dy[part], _taps(grad_rows, 2, k, s, out_h))
        inputs, grads = x[part, :, :rows], dx[part, :, :rows]
        _route(_taps(inputs, 3, k, s, out_w), row_max, grad_rows, _taps(grads, 3, k, s, out_w))

    parallel.run(shard, parallel.shard_ranges(n))
    return dx
