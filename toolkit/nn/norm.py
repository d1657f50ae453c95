"""Batch normalisation for flat features (N, F) and NCHW images (N, C, H, W).

Training mode normalises with the batch statistics of each feature/channel ``c``
(over the batch, and for images over all positions too; ``M`` values each)::

    mean_c, var_c = mean(x_c), mean((x_c - mean_c)^2)          (biased variance)
    x_hat = (x - mean_c) / sqrt(var_c + eps),   y = gamma_c * x_hat + beta_c

and updates the running statistics as PyTorch does (``momentum`` weighs the new batch,
and the running variance takes the *unbiased* batch variance ``var_c * M / (M - 1)``).
Evaluation mode normalises with the running statistics instead. Backward (training)::

    dx = gamma / sqrt(var + eps) / M * (M * dy - sum(dy) - x_hat * sum(dy * x_hat))

Per-channel sums of products use ``einsum`` (one pass, no temporary array), on channel
rows (the layouts conv2d returns) ``np.vecdot``. In a data-parallel step
(:mod:`toolkit.nn.data_parallel`) the sums behind the batch statistics and the backward
pass's two sums run over every shard's samples (:func:`toolkit.nn.parallel.all_sum`), so
each shard normalises with the statistics of the whole batch; its ``grads`` hold its own
samples' share, summed over the shards with the other gradients.
"""

from __future__ import annotations

import numpy as np

from toolkit.nn import parallel
from toolkit.nn.layer import Layer, Shape
from toolkit.nn.torch_layout import TorchLayout
from toolkit.registry import ConfigError, layers


@layers.register("batchnorm")
class BatchNorm(Layer):
    """Batch normalisation; 1-d for (F,) samples, per channel for (C, H, W) samples.

    Args:
        momentum: weight of the current batch in the running statistics (PyTorch's
            convention: ``running = (1 - momentum) * running + momentum * batch``).
        eps: added to the variance before the square root.

    ``params``: ``gamma`` (scale, starts at 1) and ``beta`` (shift, starts at 0), shape (C,).
    ``buffers``: ``running_mean`` (starts at 0) and ``running_var`` (starts at 1), shape (C,).
    """

    kind = "batchnorm"
    shards_batch = True
    #: per-sample ranks accepted (``batchnorm1d``/``batchnorm2d`` narrow this down)
    ranks: tuple[int, ...] = (1, 3)
    gradcheck_cases = [({}, (4,)), ({}, (2, 3, 3))]
    torch_layout = TorchLayout(
        {
            "gamma": "weight",
            "beta": "bias",
            "running_mean": "running_mean",
            "running_var": "running_var",
        },
        counts_batches=True,
        module=lambda nn, bn: (nn.BatchNorm2d if len(bn.input_shape) == 3 else nn.BatchNorm1d)(
            bn.input_shape[0], eps=bn.eps, momentum=bn.momentum
        ),
    )

    def __init__(self, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        if isinstance(momentum, bool) or not 0.0 <= momentum <= 1.0:
            raise ConfigError(f"{self.kind}.momentum={momentum!r} must be in [0, 1]")
        if isinstance(eps, bool) or not eps > 0:
            raise ConfigError(f"{self.kind}.eps={eps!r} must be > 0")
        self.momentum = float(momentum)
        self.eps = float(eps)

    def extra_repr(self) -> str:
        return f"momentum={self.momentum}, eps={self.eps}"

    def infer_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) not in self.ranks:
            expected = " or ".join(
                {1: "(features,)", 3: "(channels, height, width)"}[r] for r in self.ranks
            )
            raise self.shape_error(
                f"{self.kind} expects per-sample inputs {expected}",
                "use batchnorm, which accepts both, or reshape the input",
            )
        return input_shape

    def build(self, input_shape: Shape, rng: np.random.Generator, dtype: np.dtype) -> Shape:
        shape = super().build(input_shape, rng, dtype)
        channels = shape[0]
        self.params = {"gamma": np.ones(channels, dtype), "beta": np.zeros(channels, dtype)}
        self.grads = {name: np.zeros_like(value) for name, value in self.params.items()}
        self.buffers = {
            "running_mean": np.zeros(channels, dtype),
            "running_var": np.ones(channels, dtype),
        }
        # axes reduced per channel, how a (C,) vector broadcasts against the input, and
        # the einsum that sums a product per channel in one pass without a temporary
        self._axes = (0,) if len(shape) == 1 else (0, 2, 3)
        self._column = (1, channels) if len(shape) == 1 else (1, channels, 1, 1)
        self._dot = "nc,nc->c" if len(shape) == 1 else "nchw,nchw->c"
        return shape

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, C[, H, W]) -> y of the same shape."""
        rows = channel_rows(x)
        if rows is not None:  # images in channel-major or batch-last memory (behind a conv2d)
            return self._forward_rows(x, rows, training)
        self._rows = None
        column = self._column
        if training:
            count = step_count(x.size // column[1], len(x))
            mean = parallel.all_sum(x.sum(axis=self._axes)) / count
            centered = x - mean.reshape(column)
            var = parallel.all_sum(np.einsum(self._dot, centered, centered)) / count
            self._update_running(mean, var, count)
        else:
            centered = x - self.buffers["running_mean"].reshape(column)
            var = self.buffers["running_var"]
        self._centered, self._inv_std = centered, 1.0 / np.sqrt(var + self.eps)
        self._training = training
        y = centered * (self.params["gamma"] * self._inv_std).reshape(column)
        y += self.params["beta"].reshape(column)
        return y

    def _forward_rows(self, x: np.ndarray, rows: np.ndarray, training: bool) -> np.ndarray:
        """The same normalisation on rows (C, M) = one channel's N*H*W values each,
        channels split over ``parallel.threads()`` shards (channels are independent, so
        the result does not depend on the split). Returns y in x's memory order."""
        channels, count = rows.shape[0], step_count(rows.shape[1], len(x))
        y = np.empty_like(rows)
        # evaluation keeps no centred copy: y = x * scale + (beta - mean * scale), the
        # fused form PyTorch's CPU kernel uses; backward centres x again if it is called
        centered = np.empty_like(rows) if training else None
        mean = self.buffers["running_mean"].copy()
        var = self.buffers["running_var"].copy()
        gamma, beta = self.params["gamma"], self.params["beta"]
        inv_std = np.empty_like(var)

        def shard(start: int, stop: int) -> None:
            part = slice(start, stop)
            if not training:
                np.divide(1.0, np.sqrt(var[part] + self.eps), out=inv_std[part])
                scale = gamma[part] * inv_std[part]
                np.multiply(rows[part], scale[:, None], out=y[part])
                y[part] += (beta[part] - mean[part] * scale)[:, None]
                return
            np.sum(rows[part], axis=1, out=mean[part])
            mean[part] = parallel.all_sum(mean[part]) / count
            np.subtract(rows[part], mean[part, None], out=centered[part])
            row_dots(centered[part], centered[part], out=var[part])
            var[part] = parallel.all_sum(var[part]) / count
            np.divide(1.0, np.sqrt(var[part] + self.eps), out=inv_std[part])
            np.multiply(centered[part], (gamma[part] * inv_std[part])[:, None], out=y[part])
            y[part] += beta[part, None]

        parallel.run(shard, parallel.shard_ranges(channels, min_size=2))
        if training:
            self._update_running(mean, var, count)
        self._rows, self._centered, self._inv_std, self._mean = rows, centered, inv_std, mean
        self._training, self._perm, self._count = training, channel_first(x), count
        return from_rows(y, x, self._perm)

    def _update_running(self, mean: np.ndarray, var: np.ndarray, count: int) -> None:
        """Running statistics += this step's (once per step: by the first shard of a
        data-parallel step, whose ``mean`` and ``var`` are every shard's)."""
        if parallel.shard_index() != 0:
            return
        m = self.momentum
        running_mean, running_var = self.buffers["running_mean"], self.buffers["running_var"]
        running_mean *= 1.0 - m
        running_mean += m * mean
        running_var *= 1.0 - m
        running_var += (m * count / max(count - 1, 1)) * var

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        """dy (N, C[, H, W]) -> dx of the same shape (None unless ``needs_input_grad``);
        fills grads["gamma"], grads["beta"]."""
        if self._rows is not None:
            return self._backward_rows(dy)
        centered, inv_std, column = self._centered, self._inv_std, self._column
        dbeta = dy.sum(axis=self._axes)
        dgamma = np.einsum(self._dot, dy, centered) * inv_std  # sum(dy * x_hat)
        self.grads["beta"][...] = dbeta
        self.grads["gamma"][...] = dgamma
        if not self.needs_input_grad:
            return None
        scale = self.params["gamma"] * inv_std
        dx = dy * scale.reshape(column)
        if self._training:  # the batch statistics depend on x too
            count = step_count(dy.size // dbeta.size, len(dy))
            dbeta, dgamma = parallel.all_sum(np.stack((dbeta, dgamma)))
            dx -= centered * (scale * inv_std * dgamma / count).reshape(column)
            dx -= (scale * dbeta / count).reshape(column)
        return dx

    def _backward_rows(self, dy: np.ndarray) -> np.ndarray | None:
        """:meth:`backward` on channel rows (C, M), sharded over channels."""
        channels, count = self._rows.shape[0], self._count
        grad_rows = np.ascontiguousarray(dy.transpose(self._perm)).reshape(channels, -1)
        inv_std = self._inv_std
        dbeta, dgamma = self.grads["beta"], self.grads["gamma"]
        scale = self.params["gamma"] * inv_std
        dx = np.empty_like(grad_rows) if self.needs_input_grad else None

        def shard(start: int, stop: int) -> None:
            part = slice(start, stop)
            g = grad_rows[part]
            if self._centered is None:  # evaluation mode: centre x again
                centered = self._rows[part] - self._mean[part, None]
            else:
                centered = self._centered[part]
            np.sum(g, axis=1, out=dbeta[part])
            row_dots(g, centered, out=dgamma[part])
            dgamma[part] *= inv_std[part]  # sum(dy * x_hat)
            if dx is None:
                return
            if not self._training:
                np.multiply(g, scale[part, None], out=dx[part])
                return
            # the batch statistics depend on x too: four passes, no temporary
            # dx = scale * (dy - x_hat * sum(dy * x_hat) / M - sum(dy) / M)
            sum_dy, sum_dy_x_hat = parallel.all_sum(np.stack((dbeta[part], dgamma[part])))
            np.multiply(centered, (inv_std[part] * sum_dy_x_hat / count)[:, None], out=dx[part])
            np.subtract(g, dx[part], out=dx[part])
            dx[part] -= (sum_dy / count)[:, None]
            dx[part] *= scale[part, None]

        parallel.run(shard, parallel.shard_ranges(channels, min_size=2))
        if dx is None:
            return None
        return from_rows(dx, dy, self._perm)


def step_count(count: int, batch: int) -> int:
    """Values per channel in the whole step: ``count`` of this shard's ``batch`` samples,
    scaled to every shard's (:func:`toolkit.nn.parallel.step_size`)."""
    return count // batch * parallel.step_size(batch)


def row_dots(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out (C,) <- sum(a * b, axis=1) for rows a, b (C, M): ``np.vecdot`` (NumPy >= 2,
    ~2x faster than the einsum here and summed pairwise), else ``einsum``."""
    vecdot = getattr(np, "vecdot", None)
    if vecdot is None:  # pragma: no cover - NumPy 1.x
        return np.einsum("cm,cm->c", a, b, out=out)
    return vecdot(a, b, out=out)


def channel_first(x: np.ndarray) -> tuple[int, ...] | None:
    """The perm with ``x.transpose(perm)`` C-contiguous and channels first, for x
    (N, C, H, W) in channel-major (C, N, H, W) or batch-last (C, H, W, N) memory (the
    layout conv2d returns), else None."""
    if x.ndim != 4:
        return None
    for perm in ((1, 0, 2, 3), (1, 2, 3, 0)):
        if x.transpose(perm).flags.c_contiguous:
            return perm
    return None


def channel_rows(x: np.ndarray) -> np.ndarray | None:
    """x (N, C, H, W) as a (C, M) view (one row of a channel's N*H*W values, in memory
    order) when :func:`channel_first` finds its layout, else None."""
    perm = channel_first(x)
    return None if perm is None else x.transpose(perm).reshape(x.shape[1], -1)


def from_rows(rows: np.ndarray, like: np.ndarray, perm: tuple[int, ...]) -> np.ndarray:
    """Rows (C, M) laid out as ``like.transpose(perm)``, as an (N, C, H, W) view."""
    return rows.reshape(like.transpose(perm).shape).transpose(np.argsort(perm))


@layers.register("batchnorm1d")
class BatchNorm1d(BatchNorm):
    """:class:`BatchNorm` for flat features only: x (N, F) -> y (N, F)."""

    kind = "batchnorm1d"
    ranks = (1,)
    gradcheck_cases = [({}, (4,))]


@layers.register("batchnorm2d")
class BatchNorm2d(BatchNorm):
    """:class:`BatchNorm` for NCHW images only, per channel: x (N, C, H, W) -> same."""

    kind = "batchnorm2d"
    ranks = (3,)
    gradcheck_cases = [({}, (2, 3, 3))]
