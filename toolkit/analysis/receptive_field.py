"""Receptive field and effective stride of every layer of a sequential CNN.

For a layer with kernel ``k`` and stride ``s`` applied to a map whose units each see
``r`` input pixels and sit ``j`` input pixels apart (the effective stride, or "jump"):

    r_out = r + (k - 1) * j        j_out = j * s

A residual block is its two convolutions in a row (the first carries the stride); a
global pooling or a flatten sees the whole input. The conv-pool-conv-pool network of the
reference reports (3x3 convs, 2x2 pools) ends with a 10x10 field and stride 4.
"""

from __future__ import annotations

from dataclasses import dataclass

from toolkit.nn.layer import Sequential


@dataclass
class FieldRow:
    """One layer's output: its receptive field (pixels per side) and effective stride."""

    layer: str
    output_shape: tuple[int, ...]
    receptive_field: int
    stride: int


def receptive_fields(model: Sequential) -> list[FieldRow]:
    """Rows for every top-level layer of a built model, from the input to the output,
    from the (kernel, stride) steps each layer declares (``Layer.spatial_steps``).

    Once a layer has mixed the whole map (flatten, global pooling), every later layer sees
    the whole input too: dense layers, and a decoder's convolutions after them, keep that
    layer's field and stride.
    """
    rows, field, jump, mixed = [], 1, 1, False
    for index, layer in enumerate(model.layers):
        for kernel, stride in [] if mixed else layer.spatial_steps():
            field += (kernel - 1) * jump
            jump *= stride
        mixed = mixed or len(layer.output_shape) != 3
        rows.append(FieldRow(f"{index}.{layer.kind}", layer.output_shape, field, jump))
    return rows


def field_table(rows: list[FieldRow]) -> str:
    """A Markdown table of :func:`receptive_fields`."""
    lines = [
        "| layer | output shape | receptive field (px) | effective stride (px) |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r.layer} | {r.output_shape} | {r.receptive_field}x{r.receptive_field} | {r.stride} |"
        for r in rows
    ]
    return "\n".join(lines)
