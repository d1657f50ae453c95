"""The layer protocol and the Sequential container.

Every layer is an object with

* ``build(input_shape, rng, dtype) -> output_shape``: create parameters for inputs of a
  per-sample shape (no batch axis, e.g. ``(1, 28, 28)`` for an MNIST image in NCHW) and
  return the per-sample output shape. Shape mismatches raise :class:`ConfigError` naming
  the layer, the input shape and the fix.
* ``forward(x, training) -> y``: ``x`` has shape ``(batch, *input_shape)``. A layer keeps
  what its backward pass needs (its cache) on ``self``.
* ``backward(dy) -> dx``: ``dy = dL/dy`` with ``y``'s shape; returns ``dL/dx`` and writes
  ``dL/dparam`` into ``grads`` under the same keys as ``params``. Gradients are
  overwritten (not accumulated) by every backward call.
* ``params`` / ``grads``: dicts name -> array of trainable arrays and their gradients.
* ``buffers``: dict name -> array of non-trainable state that a checkpoint must keep
  (batch-norm running statistics).
* ``needs_input_grad``: when False, ``backward`` may skip computing ``dL/dx`` and return
  None (the first layer of a model never needs it; dense and conv layers use this).

What a layer class declares about itself, read by the rest of the toolkit instead of
tables keyed by ``kind`` (so a new layer is one file plus its test):

* ``gradcheck_cases``: ``[(constructor kwargs, per-sample input shape), ...]`` that the
  gradient-check test builds it with (default: no arguments, ``(5,)`` inputs; a layer
  with required arguments or image inputs declares its own).
* ``weight_names``: the ``params`` that are weights multiplying the input (``("W",)``
  for dense and conv; not biases or batch-norm scales): gradient-flow profiles follow
  the layers that have them.
* ``is_conv``: a convolution whose ``params[weight_names[0]]`` are (F, C, kh, kw)
  filters (figures draw them; the conv-only post-fit steps apply to models with one).
* ``feature_stage``: its NCHW output is a stage worth showing as feature maps.
* ``spatial_steps()``: the (kernel, stride) steps it applies along a spatial axis, for
  receptive fields.
* ``torch_layout``: its PyTorch twin and where its arrays go there
  (:class:`~toolkit.nn.torch_layout.TorchLayout`), or None.
* ``shards_batch``: it may run on a shard of the batch in a data-parallel step
  (:mod:`toolkit.nn.data_parallel`): each sample's output depends on that sample alone,
  or what depends on the whole batch is summed with ``parallel.all_sum``. False by
  default, so a plugin layer runs on whole batches until it says otherwise.

Backward must follow the forward call it answers; layers are not re-entrant.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np

from toolkit.nn.torch_layout import TorchLayout
from toolkit.registry import ConfigError

Shape = tuple[int, ...]
#: (constructor kwargs, per-sample input shape) of one gradient-check case
GradcheckCase = tuple[dict[str, Any], Shape]


class Layer:
    """Base class of all layers: stateless identity with no parameters.

    Subclasses override :meth:`build` (if they own parameters or check shapes),
    :meth:`forward` and :meth:`backward`.
    """

    #: short name used in parameter paths and error messages (``"dense"``)
    kind: str = "layer"
    #: whether ``backward`` must return dL/dx (see the module docstring)
    needs_input_grad: bool = True
    #: how the gradient check builds it (see the module docstring)
    gradcheck_cases: ClassVar[Sequence[GradcheckCase]] = (({}, (5,)),)
    #: ``params`` keys that are weights multiplying the input
    weight_names: ClassVar[tuple[str, ...]] = ()
    #: a convolution with (F, C, kh, kw) filters in ``params[weight_names[0]]``
    is_conv: ClassVar[bool] = False
    #: its (C, H, W) output is a feature-map stage
    feature_stage: ClassVar[bool] = False
    #: its PyTorch twin and array layout, for :mod:`toolkit.interop` (None: none)
    torch_layout: ClassVar[TorchLayout | None] = None
    #: each sample's output depends on that sample alone (or its batch statistics are
    #: summed over shards with ``parallel.all_sum``): it may run on a shard of the batch
    shards_batch: ClassVar[bool] = False

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self.input_shape: Shape | None = None
        self.output_shape: Shape | None = None

    def build(self, input_shape: Shape, rng: np.random.Generator, dtype: np.dtype) -> Shape:
        """Create parameters for per-sample ``input_shape``; return the output shape."""
        self.input_shape = tuple(input_shape)
        self.output_shape = self.infer_output_shape(self.input_shape)
        return self.output_shape

    def infer_output_shape(self, input_shape: Shape) -> Shape:
        """Per-sample output shape for a per-sample input shape (identity by default)."""
        return input_shape

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy

    def spatial_steps(self) -> list[tuple[int, int]]:
        """The (kernel, stride) steps, in pixels, that this built layer applies along one
        spatial axis, in order (none by default: element-wise or not spatial)."""
        return []

    def __call__(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        return self.forward(x, training)

    def children(self) -> Iterator[tuple[str, Layer]]:
        """Direct sub-layers as (name, layer); containers override this."""
        return iter(())

    def named_layers(self, prefix: str = "") -> Iterator[tuple[str, Layer]]:
        """All leaf layers (those without children) as (dotted path, layer), depth first."""
        has_children = False
        for name, child in self.children():
            has_children = True
            path = f"{prefix}.{name}" if prefix else name
            yield from child.named_layers(path)
        if not has_children:
            yield prefix or self.kind, self

    def num_params(self) -> int:
        return sum(p.size for _, layer in self.named_layers() for p in layer.params.values())

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        shape = f" {self.input_shape}->{self.output_shape}" if self.output_shape else ""
        return f"{type(self).__name__}({self.extra_repr()}){shape}"

    def shape_error(self, problem: str, fix: str) -> ConfigError:
        """A one-line ConfigError naming this layer, its input shape, the problem and the fix."""
        return ConfigError(f"{self!r} with input shape {self.input_shape}: {problem}; {fix}")

    def image_shape(self, input_shape: Shape, fix: str) -> tuple[int, int, int]:
        """``input_shape`` as per-sample ``(channels, height, width)``; else a shape_error
        with ``fix``."""
        if len(input_shape) != 3:
            raise self.shape_error(
                f"{self.kind} expects per-sample inputs (channels, height, width)", fix
            )
        channels, height, width = input_shape
        return channels, height, width


class Sequential(Layer):
    """Layers applied in order; its children are named ``"0.dense"``, ``"1.relu"``, ..."""

    kind = "sequential"
    shards_batch = True

    def __init__(self, layers: Sequence[Layer]) -> None:
        super().__init__()
        self.layers = list(layers)
        self._needs_input_grad = True
        self._fused_key: tuple = ()
        self._fusions: dict[int, tuple[Layer, ...]] = {}
        self._fused: frozenset[int] = frozenset()

    @property
    def needs_input_grad(self) -> bool:
        return self._needs_input_grad

    @needs_input_grad.setter
    def needs_input_grad(self, needed: bool) -> None:
        """Without an input gradient, backward stops at the first layer with parameters,
        which is told it may skip its own dL/dx."""
        self._needs_input_grad = needed
        first = self._first_trainable()
        if first is not None:
            self.layers[first].needs_input_grad = needed

    def _first_trainable(self) -> int | None:
        for index, layer in enumerate(self.layers):
            if any(leaf.params for _, leaf in layer.named_layers()):
                return index
        return None

    def children(self) -> Iterator[tuple[str, Layer]]:
        for i, layer in enumerate(self.layers):
            yield f"{i}.{layer.kind}", layer

    def build(self, input_shape: Shape, rng: np.random.Generator, dtype: np.dtype) -> Shape:
        self.input_shape = shape = tuple(input_shape)
        for layer in self.layers:
            shape = layer.build(shape, rng, dtype)
        self.output_shape = shape
        return shape

    def fusions(self) -> dict[int, tuple[Layer, ...]]:
        """{index: the layers right before it that it runs itself}, from each layer's
        ``absorbs(previous_layers)``: a 2x2 max-pool runs the ReLU before it (pool first,
        then a 4x smaller ReLU: the same function and gradient), and the batch norm before
        that ReLU too (``toolkit/nn/norm_pool.py``). Recomputed whenever ``layers`` changes."""
        key = tuple((id(layer), layer.output_shape) for layer in self.layers)
        if key != self._fused_key:
            self._fused_key, self._fusions = key, {}
            for i, layer in enumerate(self.layers):
                absorbs = getattr(layer, "absorbs", None)
                count = absorbs(self.layers[:i]) if absorbs and layer.output_shape else 0
                if count:
                    self._fusions[i] = tuple(self.layers[i - count : i])
            self._fused = frozenset(
                j for i, run in self._fusions.items() for j in range(i - len(run), i)
            )
        return self._fusions

    def _absorbed(self) -> frozenset[int]:
        """Indices of the layers whose work a later layer does for them (see :meth:`fusions`)."""
        self.fusions()
        return self._fused

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        fusions, absorbed = self.fusions(), self._fused  # fusions() refreshed both
        for i, layer in enumerate(self.layers):
            if i in absorbed:
                continue
            run = fusions.get(i)
            x = layer.forward_fused(x, run, training) if run else layer.forward(x, training)
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        stop = 0 if self._needs_input_grad else (self._first_trainable() or 0)
        absorbed = self._absorbed()
        for i in range(len(self.layers) - 1, stop - 1, -1):
            if i not in absorbed:  # an absorbed layer's gradient came with the next one's
                dy = self.layers[i].backward(dy)
        return dy if self._needs_input_grad else None

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index: int) -> Layer:
        return self.layers[index]

    def summary(self) -> str:
        """A table of layers with output shapes and parameter counts."""
        rows = [f"{'layer':<28}{'output shape':<20}{'params':>10}"]
        for path, layer in self.named_layers():
            count = sum(p.size for p in layer.params.values())
            rows.append(f"{path:<28}{str(layer.output_shape):<20}{count:>10,}")
        rows.append(f"{'total':<48}{self.num_params():>10,}")
        return "\n".join(rows)


def forward_in_batches(layer: Layer, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """``layer``'s outputs for ``x`` (N, ...) in evaluation mode, ``batch_size`` samples
    at a time (bounded memory for whole splits)."""
    outputs = [
        layer.forward(x[i : i + batch_size], training=False) for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(outputs)
