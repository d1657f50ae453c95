"""A :class:`~toolkit.nn.Sequential` whose children have names of their own.

(Names may hold dots: a prefix or suffix cut from a plain Sequential keeps its children's
names ``"7.dense"``, so the parameter paths stay those of the whole model.)

``NamedSequential({"conv1": ..., "bn1": ..., "layer1": ...})`` applies its layers in order
like a Sequential, but parameter paths read ``layer1.0.conv1`` instead of
``2.residual_block.conv1``: the names of the equivalent PyTorch modules, so a torch
``state_dict`` key is the path plus the parameter's torch name (see
:mod:`toolkit.interop.named_state`), and stages can be frozen by name
(``transfer.freeze=[layer1, layer2]``).

:meth:`split` cuts it into a prefix and the rest, two NamedSequentials that share the
layers (no copies), which is how a frozen prefix is run once and cached.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from toolkit.nn.layer import Layer, Sequential
from toolkit.registry import ConfigError


class NamedSequential(Sequential):
    """Layers applied in order, named by the keys of ``named`` (e.g. ``"layer4"``, ``"0"``)."""

    kind = "sequential"

    def __init__(self, named: Mapping[str, Layer]) -> None:
        for name in named:
            if not name:
                raise ConfigError("a NamedSequential's layer names must be non-empty")
        super().__init__(list(named.values()))
        self.names = list(named)

    def children(self) -> Iterator[tuple[str, Layer]]:
        return zip(self.names, self.layers, strict=True)

    def stage(self, name: str) -> Layer:
        """The child called ``name``."""
        if name not in self.names:
            raise ConfigError(f"no stage {name!r}; stages: {', '.join(self.names)}")
        return self.layers[self.names.index(name)]

    def split(self, count: int) -> tuple[NamedSequential, NamedSequential]:
        """The first ``count`` children and the rest, as two NamedSequentials sharing this
        one's (built) layers; their shapes are set from the children's."""
        if not 0 <= count <= len(self.layers):
            raise ValueError(f"split at {count} of {len(self.layers)} stages")
        parts = []
        for names, group in (
            (self.names[:count], self.layers[:count]),
            (self.names[count:], self.layers[count:]),
        ):
            part = NamedSequential(dict(zip(names, group, strict=True)))
            if group:
                part.input_shape, part.output_shape = group[0].input_shape, group[-1].output_shape
            parts.append(part)
        return parts[0], parts[1]
