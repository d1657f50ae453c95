"""Batch norm -> ReLU -> 2x2/2 max-pool as one unit on batch-last images (training mode).

Per channel, batch norm is an affine map of the centred input ``c = x - mean``:
``bn(x) = c * scale + beta`` with ``scale = gamma / sqrt(var + eps)``. An affine map with
``scale >= 0`` is non-decreasing, and so is its rounded float result, so it commutes with
a max; for ``scale < 0`` it does on ``-c``. With ``sign = +-1`` the sign of ``scale``::

    maxpool(relu(bn(x))) = relu(maxpool(sign * c) * |scale| + beta)

so the affine map and the ReLU run on a quarter of the elements and the full-size batch
norm output is never written. The values are those of the three layers one after
another, bit for bit. Backward: only each window's winner gets the pooled gradient
``G``; the batch statistics add a term for every element::

    dx = scale * (G - sum(G) / M - x_hat * sum(G * x_hat) / M),  x_hat = c / sqrt(var + eps)

and both sums run over the pooled gradient (the winners' ``x_hat`` is the pooled
``sign * c`` times ``1 / sqrt(var + eps)``), so they are quarter-size too.

The winner of a window is the first maximum of ``sign * c``; the unfused layers pick the
first maximum of the rounded ``bn(x)``, which differs only where two different inputs
round to the same output (then a different element of the window gets the gradient).
Shapes: x (C, H, W, N) memory, M = H*W*N values per channel (N: the whole batch of a
data-parallel step, whose sums run over every shard); y (C, H/2, W/2, N).
"""

from __future__ import annotations

import numpy as np

from toolkit.nn import batch_last, parallel
from toolkit.nn.norm import BatchNorm, row_dots, step_count


def forward(bn: BatchNorm, xl: np.ndarray, store: dict[str, np.ndarray]) -> np.ndarray:
    """Training-mode ``maxpool(relu(bn(x)))`` of xl (C, H, W, N) -> y (C, H/2, W/2, N),
    on shards of channels (each shard all steps, while its channels are in cache);
    updates ``bn``'s running statistics and keeps what :func:`backward` needs in ``store``
    (the pool's reused buffers: ``signed`` = sign * c, the window masks, ``positive_y``,
    the per-channel ``inv_std``, ``sign`` and ``scale``)."""
    c, h, w, n = xl.shape
    rows = xl.reshape(c, -1)
    count, dtype = step_count(rows.shape[1], n), rows.dtype
    signed = batch_last.scratch(store, "signed", rows.shape, dtype)
    batch_last.pool_scratch(xl.shape, dtype, store, relu=False)
    y = np.empty((c, h // 2, w // 2, n), dtype)
    positive = batch_last.scratch(store, "positive_y", y.shape, bool)
    pooled = batch_last.scratch(store, "pooled", y.shape, dtype)  # max of sign * c
    mean, var, inv_std, sign = (np.empty(c, dtype) for _ in range(4))
    gamma, beta = bn.params["gamma"], bn.params["beta"]
    scale = np.empty_like(gamma)

    def shard(start: int, stop: int) -> None:
        part = slice(start, stop)
        np.sum(rows[part], axis=1, out=mean[part])
        mean[part] = parallel.all_sum(mean[part]) / count
        np.subtract(rows[part], mean[part, None], out=signed[part])
        row_dots(signed[part], signed[part], out=var[part])
        var[part] = parallel.all_sum(var[part]) / count
        np.divide(1.0, np.sqrt(var[part] + bn.eps), out=inv_std[part])
        np.multiply(gamma[part], inv_std[part], out=scale[part])
        np.copysign(1.0, scale[part], out=sign[part])
        for channel in np.flatnonzero(sign[part] < 0) + start:
            np.negative(signed[channel], out=signed[channel])
        out_rows = slice(start * h // 2, stop * h // 2)
        batch_last.pool_rows(signed.reshape(xl.shape), pooled, store, False, out_rows)
        out = np.multiply(pooled[part], np.abs(scale[part])[:, None, None, None], out=y[part])
        out += beta[part, None, None, None]
        np.greater(out, 0, out=positive[part])
        out *= positive[part]

    parallel.run(shard, parallel.shard_ranges(c, min_size=2))
    bn._update_running(mean, var, count)
    store.update(inv_std=inv_std, sign=sign, scale=scale)
    return y


def backward(bn: BatchNorm, dy: np.ndarray, store: dict[str, np.ndarray]) -> np.ndarray | None:
    """dy (C, H/2, W/2, N) C-contiguous -> dx (C, H, W, N) (None unless
    ``bn.needs_input_grad``); fills ``bn.grads`` (gamma, beta). Sharded over channels."""
    pooled, inv_std, sign, scale = (store[k] for k in ("pooled", "inv_std", "sign", "scale"))
    signed, positive = store["signed"], store["positive_y"]
    c, count = signed.shape[0], step_count(signed.shape[1], dy.shape[3])
    out_h = dy.shape[1]
    dbeta, dgamma = bn.grads["beta"], bn.grads["gamma"]
    needs_dx = bn.needs_input_grad
    grad = batch_last.scratch(store, "grad", dy.shape, dy.dtype)
    if needs_dx:
        batch_last.scratch(store, "split", (c * out_h, 2, dy[0, 0].size), dy.dtype)
        dx = np.empty((c, 2 * out_h, 2 * dy.shape[2], dy.shape[3]), dy.dtype)
        rows = dx.reshape(c, -1)
        term = batch_last.scratch(store, "term", rows.shape, rows.dtype)

    def shard(start: int, stop: int) -> None:
        part = slice(start, stop)
        g = np.multiply(dy[part], positive[part], out=grad[part])  # the ReLU's gradient: G
        np.sum(g.reshape(stop - start, -1), axis=1, out=dbeta[part])
        row_dots(
            g.reshape(stop - start, -1), pooled[part].reshape(stop - start, -1), out=dgamma[part]
        )
        dgamma[part] *= sign[part] * inv_std[part]  # sum(G * x_hat)
        if not needs_dx:
            return
        g *= scale[part, None, None, None]
        batch_last.unpool_rows(grad, dx, store, False, slice(start * out_h, stop * out_h))
        sum_g, sum_g_x_hat = parallel.all_sum(np.stack((dbeta[part], dgamma[part])))
        slope = scale[part] * inv_std[part] * sum_g_x_hat * sign[part] / count  # per signed c
        np.multiply(signed[part], slope[:, None], out=term[part])
        term[part] += (scale[part] * sum_g / count)[:, None]
        rows[part] -= term[part]

    parallel.run(shard, parallel.shard_ranges(c, min_size=2))
    return dx if needs_dx else None
