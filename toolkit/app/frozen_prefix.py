"""A frozen prefix of a model, run once: its outputs become the data the rest trains on.

When the first stages of a model are frozen (a pretrained backbone), every epoch would
recompute the same outputs for them and keep their backward state for nothing. Instead::

    model = prefix + rest        (two containers sharing the model's own layers)
    features = prefix(x), once per image, in evaluation mode, batch by batch
    the trainer fits ``rest`` on the features; the model's weights are updated in place

The prefix is the longest run of leading children whose parameters are all frozen
(children without parameters, a ReLU or a pooling, join it), so ``freeze=[conv1, bn1,
layer1, layer2, layer3]`` on ResNet-18 caches layer3's outputs and trains layer4 + fc.
It runs in evaluation mode: its batch norms use their (pretrained) running statistics,
as a frozen torchvision backbone does under ``model.eval()``, and a dropout in it is off.

With augmentation the training images differ every epoch, so they cannot be cached:
the training batches then go through augmentation and the prefix (forward only, no
backward state) on every step, while the validation and test features are still cached.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from toolkit.data.splits import ArrayData, Splits
from toolkit.nn.layer import Layer
from toolkit.nn.named_sequential import NamedSequential
from toolkit.optim.optimizer import Optimizer
from toolkit.train.threads import blas_threads

FEATURE_BATCH = 64  # images per forward pass of the prefix

Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]


@dataclass
class FrozenSplit:
    """A model cut after its frozen prefix: ``prefix`` (evaluation mode, never trained)
    and ``rest`` (what trains); both share the model's layers."""

    prefix: NamedSequential
    rest: NamedSequential

    @property
    def names(self) -> list[str]:
        return self.prefix.names


def frozen_prefix_length(model: Layer, optimizer: Optimizer) -> int:
    """How many leading children of ``model`` have no parameter the optimizer updates,
    up to the last such child that has parameters (trailing parameter-free children of
    the run join it; a model whose every child is frozen gives 0: nothing to train)."""
    trained = {id(layer) for _, layer, _ in optimizer.slots}
    children = list(model.children())
    length = 0
    for index, (_, child) in enumerate(children):
        leaves = [leaf for _, leaf in child.named_layers()]
        if any(id(leaf) in trained for leaf in leaves):
            break
        if any(leaf.params for leaf in leaves) or length:
            length = index + 1
    if length == 0 or length == len(children):
        return 0
    return length


def split_frozen(model: Layer, optimizer: Optimizer) -> FrozenSplit | None:
    """The model cut after its frozen prefix, or ``None`` when it has none (nothing
    frozen, a model without children, or only the first layers partly frozen)."""
    length = frozen_prefix_length(model, optimizer)
    if not length:
        return None
    named = NamedSequential(dict(model.children()))
    prefix, rest = named.split(length)
    return FrozenSplit(prefix, rest)


def features(
    prefix: Layer, x: np.ndarray, threads: int | None = None, progress: bool = False
) -> np.ndarray:
    """``prefix(x)`` in evaluation mode, :data:`FEATURE_BATCH` samples at a time, into one
    array (N, *prefix.output_shape) of x's dtype."""
    out = np.empty((len(x), *prefix.output_shape), dtype=x.dtype)
    bar = _bar(len(x), progress)
    with blas_threads(threads):
        for start in range(0, len(x), FEATURE_BATCH):
            out[start : start + FEATURE_BATCH] = prefix.forward(
                x[start : start + FEATURE_BATCH], training=False
            )
            bar.update(min(FEATURE_BATCH, len(x) - start))
    bar.close()
    return out


def feature_splits(
    split: FrozenSplit,
    splits: Splits,
    augment: Augment | None,
    threads: int | None = None,
    progress: bool = False,
) -> tuple[Splits, Augment | None]:
    """What the trainer fits ``split.rest`` on, and its training-batch hook: cached
    features of every split; with ``augment``, the training images stay and the hook
    augments each batch and runs the prefix on it."""

    def cached(data: ArrayData | None) -> ArrayData | None:
        if data is None:
            return None
        return ArrayData(features(split.prefix, data.x, threads, progress), data.y)

    if augment is None:
        return Splits(cached(splits.train), cached(splits.val), cached(splits.test)), None

    def augment_then_prefix(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return split.prefix.forward(augment(x, rng).astype(x.dtype, copy=False), training=False)

    train = splits.train
    return Splits(train, cached(splits.val), cached(splits.test)), augment_then_prefix


def _bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        desc="frozen prefix",
        unit="img",
        disable=not enabled,
        leave=False,
        dynamic_ncols=True,
        file=sys.stderr,
    )
