"""Data-parallel training steps: each thread runs the whole model on its own shard of the batch.

With ``parallel.threads()`` > 1, layers can split each of their passes over the batch
(:mod:`toolkit.nn.parallel`), which wakes the second thread once per pass and leaves the
work between passes on one. Here a step's forward, loss and backward run once per
contiguous shard of the batch instead, every shard on its own thread with its own
*replica* of the model, and the threads meet only where the batch must be seen whole:

* the replicas share the model's ``params`` and ``buffers`` (the same dicts, so the same
  arrays, also after an optimizer swaps in views of its flat arrays), and have their own
  gradients, caches, scratch buffers and random streams (reseeded from the model's own
  by :meth:`DataParallel.new_epoch`, so every shard draws its own dropout masks and a run
  resumed at an epoch boundary draws the same ones);
* batch norm sums its statistics over the shards (:func:`toolkit.nn.parallel.all_sum`),
  so every shard normalises with the whole batch's, as a single pass would; only the
  first shard updates the running statistics;
* each shard's loss gradient is scaled by its share of the batch, and after backward the
  replicas' gradients are added into the model's in shard order, so reruns with the same
  thread count are bit-identical.

Only models whose every layer declares ``shards_batch`` (each sample's output depends on
that sample alone, or its batch statistics go through ``all_sum``) with a loss that is a
mean over samples run this way; any other, and GEMMs too small to share
(``parallel.MIN_SHARD_MACS``), take the single pass.

    step = DataParallel(model, loss)
    step.new_epoch(batch_size=64)
    output, value = step.forward_backward(x, y)   # model.grads now hold dL/dparams
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator

import numpy as np

from toolkit.nn import parallel
from toolkit.nn.layer import Layer
from toolkit.nn.losses import Loss

#: the fewest samples worth a shard of their own
MIN_SHARD_SAMPLES = 8


def all_layers(layer: Layer) -> Iterator[Layer]:
    """``layer`` and every layer inside it, containers included, depth first."""
    yield layer
    for _, child in layer.children():
        yield from all_layers(child)


def replicate(model: Layer) -> Layer:
    """A deep copy of ``model`` that shares its layers' ``params`` and ``buffers`` dicts."""
    shared = {}
    for layer in all_layers(model):
        shared[id(layer.params)], shared[id(layer.buffers)] = layer.params, layer.buffers
    return copy.deepcopy(model, shared)


def macs_per_sample(model: Layer) -> int:
    """Multiply-adds of the weight layers for one sample (a conv's kernels at every output
    position, a dense layer's matrix once)."""
    total = 0
    for _, layer in model.named_layers():
        for name in layer.weight_names:
            weights = layer.params.get(name)
            if weights is not None:
                positions = math.prod(layer.output_shape[1:]) if layer.is_conv else 1
                total += weights.size * positions
    return total


class DataParallel:
    """A model's training steps (forward, loss, backward) over shards of each batch on
    ``parallel.threads()`` threads, or in one pass where sharding does not apply."""

    def __init__(self, model: Layer, loss: Loss) -> None:
        self.model, self.loss = model, loss
        shardable = getattr(loss, "shards_batch", False) and all(
            getattr(layer, "shards_batch", False) for layer in all_layers(model)
        )
        self._model_macs = macs_per_sample(model)
        self._macs = self._model_macs if shardable else 0  # 0: always one pass
        self._replicas: list[tuple[Layer, Loss]] = []
        self._grad_pairs: list[list[tuple[Layer, Layer]]] = []  # per replica: (leaf, twin)
        self._structure: list[tuple] = []

    def shard_sizes(self, samples: int) -> list[int]:
        """Samples per shard for a batch of ``samples`` (one shard: the single pass)."""
        count = min(
            parallel.threads(),
            samples // MIN_SHARD_SAMPLES,
            samples * self._macs // parallel.MIN_SHARD_MACS,
        )
        if count < 2:
            return [samples]
        return np.diff([samples * i // count for i in range(count + 1)]).tolist()

    def blas_threads(self, batch_size: int) -> int:
        """BLAS threads for steps of ``batch_size``: ``parallel.threads()`` when the whole
        step is too small to split (below ``parallel.MIN_SHARD_MACS``, so no layer splits
        either: BLAS's own threads share each GEMM without the GIL), else 1 per shard."""
        if batch_size * self._model_macs < parallel.MIN_SHARD_MACS:
            return parallel.threads()
        return 1

    def new_epoch(self, batch_size: int) -> None:
        """Ready the replicas for an epoch of ``batch_size`` batches on
        ``parallel.threads()`` threads (made again when the model's layers, their
        parameter dicts or which need an input gradient changed) and give each its own
        random streams, drawn from the model's: only when such batches are split, so
        runs that never split draw the same masks whatever the thread count."""
        count = len(self.shard_sizes(batch_size))
        if count < 2:
            return
        structure = [
            (id(layer), id(layer.params), id(layer.buffers), layer.needs_input_grad)
            for layer in all_layers(self.model)
        ]
        if structure != self._structure or len(self._replicas) < count - 1:
            self._structure = structure
            self._replicas = [
                (replicate(self.model), copy.deepcopy(self.loss)) for _ in range(count - 1)
            ]
            self._grad_pairs = [
                [
                    (layer, twin)
                    for (_, layer), (_, twin) in zip(
                        self.model.named_layers(), replica.named_layers(), strict=True
                    )
                    if layer.grads
                ]
                for replica, _ in self._replicas
            ]
        for replica, _ in self._replicas:
            for layer, twin in zip(all_layers(self.model), all_layers(replica), strict=True):
                if isinstance(getattr(layer, "rng", None), np.random.Generator):
                    twin.rng = np.random.default_rng(layer.rng.integers(2**63))

    def forward_backward(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
        """Training-mode outputs (N, ...) for the batch ``x`` (N, ...) and its mean loss
        for targets ``y``, with the model's ``grads`` set to that loss's gradient."""
        sizes = self.shard_sizes(len(x))
        if len(sizes) == 1 or len(sizes) > len(self._replicas) + 1:
            output = self.model.forward(x, training=True)
            value = self.loss.forward(output, y)
            self.model.backward(self.loss.backward())
            return output, value
        shards = [(self.model, self.loss), *self._replicas]

        def shard(start: int, stop: int) -> tuple[np.ndarray, float]:
            model, loss = shards[parallel.shard_index()]
            output = model.forward(x[start:stop], training=True)
            share = (stop - start) / len(x)
            value = loss.forward(output, y[start:stop]) * share
            grad = loss.backward()
            grad *= grad.dtype.type(share)
            model.backward(grad)
            return output, value

        parts = parallel.run_shards(shard, sizes)
        for pairs in self._grad_pairs[: len(sizes) - 1]:  # in shard order
            for layer, twin in pairs:
                for key, grad in layer.grads.items():
                    grad += twin.grads[key]
        return np.concatenate([output for output, _ in parts]), sum(v for _, v in parts)
