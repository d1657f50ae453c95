"""im2col/col2im of ``conv2d``'s general geometries (any stride and padding) on
channel-major memory: x (C, N, H, W), patches / dcols (C, k, k, N, H', W'). The stride-1
"same" case's flat-shift im2col/col2im work on batch-last memory: see
``toolkit/nn/batch_last.py``.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def tap_span(offset: int, size: int, out_size: int, stride: int, pad: int) -> tuple[slice, slice]:
    """Along one axis of ``size`` inputs: the output positions whose kernel tap
    ``offset`` lands inside the unpadded input, and the input positions it lands on."""
    lo = max(0, -((offset - pad) // stride))  # first o with o*stride + offset - pad >= 0
    hi = max(lo, min(out_size, (size - 1 + pad - offset) // stride + 1))
    start = lo * stride + offset - pad
    return slice(lo, hi), slice(start, start + stride * (hi - lo), stride)


def im2col_windows(
    x: np.ndarray, patches: np.ndarray, padded: np.ndarray | None, stride: int, pad: int
) -> None:
    """patches (C, k, k, n, H', W') <- strided windows of x (C, n, H, W) padded by ``pad``
    (through the zero-bordered buffer ``padded`` (C, >= n, H+2p, W+2p), None when 0)."""
    k, out_h, out_w = patches.shape[1], *patches.shape[4:]
    if pad:
        padded = padded[:, : x.shape[1]]
        padded[:, :, pad:-pad, pad:-pad] = x
        x = padded
    windows = sliding_window_view(x, (k, k), axis=(2, 3))
    windows = windows[:, :, : stride * out_h : stride, : stride * out_w : stride]
    np.copyto(patches, windows.transpose(0, 4, 5, 1, 2, 3), casting="same_kind")  # (C,N,H',W',k,k)


def col2im_clipped(dcols: np.ndarray, stride: int, pad: int, out: np.ndarray) -> np.ndarray:
    """dcols (C, k, k, N, H', W') -> out (C, N, H, W): one strided add per kernel offset,
    clipped to the unpadded input (no padded buffer, no crop)."""
    k, out_h, out_w = dcols.shape[1], *dcols.shape[4:]
    h, w = out.shape[2:]
    rows = [tap_span(i, h, out_h, stride, pad) for i in range(k)]
    cols = [tap_span(j, w, out_w, stride, pad) for j in range(k)]
    out[...] = 0
    for i, (out_rows, in_rows) in enumerate(rows):
        for j, (out_cols, in_cols) in enumerate(cols):
            out[:, :, in_rows, in_cols] += dcols[:, i, j, :, out_rows, out_cols]
    return out
