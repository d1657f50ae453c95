"""The PyTorch side of the benches: a toolkit model's torch twin and the machine's
reference GEMM speed.

``torch_twin(model)`` is :func:`toolkit.interop.torch_state.torch_module` (the same
layers, loaded with the toolkit model's weights) extended to ``residual_block``, which
has no interop twin: a ``BasicBlock`` with the same convolutions, batch norms and
projection. ``gemm_gflops()`` times a single-core float32 GEMM, the yardstick the
per-layer and per-step GFLOP/s are printed beside.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from toolkit.interop.torch_state import _torch_layer, to_state_dict
from toolkit.nn.layer import Sequential


def gemm_gflops(m: int = 512, k: int = 512, n: int = 512, repeats: int = 30) -> float:
    """GFLOP/s of the fastest of ``repeats`` float32 (m x k) @ (k x n) products on one
    BLAS thread (NumPy's OpenBLAS)."""
    rng = np.random.default_rng(0)
    a, b = rng.random((m, k), dtype=np.float32), rng.random((k, n), dtype=np.float32)
    with threadpool_limits(1, user_api="blas"):
        a @ b
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
    return 2 * m * k * n / best / 1e9


def torch_twin(model: Sequential) -> Any:
    """A ``torch.nn.Sequential`` computing what ``model`` computes (its weights where
    interop maps them; residual blocks keep torch's own initialisation)."""
    import torch

    modules = [
        _residual_block(torch.nn, layer)
        if layer.kind == "residual_block"
        else _torch_layer(torch.nn, layer, f"{i}.{layer.kind}")
        for i, layer in enumerate(model)
    ]
    net = torch.nn.Sequential(*modules)
    if not any(layer.kind == "residual_block" for layer in model):
        net.load_state_dict(to_state_dict(model))
    return net


def _residual_block(nn: Any, block: Any) -> Any:
    """torchvision's BasicBlock shape: conv-bn-relu-conv-bn (+ shortcut) -> relu."""

    def conv(layer: Any) -> Any:
        return nn.Conv2d(layer.input_shape[0], layer.out_channels, layer.kernel_size,
                         stride=layer.stride, padding=layer.pad, bias=layer.bias)  # fmt: skip

    def norm(layer: Any) -> Any:
        return nn.BatchNorm2d(layer.input_shape[0]) if layer is not None else nn.Identity()

    class BasicBlock(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.bn1 = conv(block.conv1), norm(block.bn1)
            self.conv2, self.bn2 = conv(block.conv2), norm(block.bn2)
            self.shortcut = block.shortcut
            self.proj = (
                nn.Sequential(conv(block.proj), norm(block.proj_bn))
                if block.proj is not None
                else nn.Identity()
            )
            self.relu = nn.ReLU(inplace=True)

        def forward(self, x: Any) -> Any:
            h = self.relu(self.bn1(self.conv1(x)))
            h = self.bn2(self.conv2(h))
            if self.shortcut:
                h = h + self.proj(x)
            return self.relu(h)

    return BasicBlock()
