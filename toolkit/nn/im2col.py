"""im2col/col2im for convolutions: where each kernel tap lands, and the flat-shift
copies of a stride-1 "same" convolution's patches (and their adjoint).

Shapes: inputs channel-major (C, N, H, W); patches (C, k, k, N, H, W).
"""

from __future__ import annotations

import numpy as np


def tap_span(offset: int, size: int, out_size: int, stride: int, pad: int) -> tuple[slice, slice]:
    """Along one axis of ``size`` inputs: the output positions whose kernel tap
    ``offset`` lands inside the unpadded input, and the input positions it lands on."""
    lo = max(0, -((offset - pad) // stride))  # first o with o*stride + offset - pad >= 0
    hi = max(lo, min(out_size, (size - 1 + pad - offset) // stride + 1))
    start = lo * stride + offset - pad
    return slice(lo, hi), slice(start, start + stride * (hi - lo), stride)


def as_view(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``array`` reshaped to ``shape`` without a copy (raises if that needs one), so that
    writing into the result writes into ``array``."""
    view = array.view()
    view.shape = shape
    return view


def zero_outside(tap: np.ndarray, di: int, dj: int) -> None:
    """Zero the positions of one tap's block (C, N, H, W) of a stride-1 "same"
    convolution whose input pixel, offset by (di, dj), falls outside the H x W image.

    Rows are zeroed through a (C, N, H*W) view (contiguous runs of whole rows), columns
    through a (C, N*H, W) view (one long strided run), so no inner loop is a single
    element; called right after the tap is written, while it is still in cache."""
    c, n, h, w = tap.shape
    if di:
        rows = slice(max(h - di, 0), h) if di > 0 else slice(0, min(-di, h))
        as_view(tap, (c, n, h * w))[:, :, rows.start * w : rows.stop * w] = 0
    if dj:
        by_cols = as_view(tap, (c, n * h, w))
        for col in range(max(w - dj, 0), w) if dj > 0 else range(min(-dj, w)):
            by_cols[:, :, col] = 0


def im2col_shifted(x: np.ndarray, patches: np.ndarray, pad: int) -> None:
    """patches (C, k, k, N, H, W) <- x (C, N, H, W) for a stride-1 "same" convolution:
    tap (i, j) is x shifted by (i - pad) * W + (j - pad) in the flat N*H*W positions,
    its positions outside the image zeroed."""
    c, k, n, h, w = patches.shape[0], patches.shape[1], *patches.shape[3:]
    size = n * h * w
    x = x.reshape(c, size)  # a view for channel-major x, else a copy
    flat = patches.reshape(c, k, k, size)
    for i in range(k):
        for j in range(k):
            shift = (i - pad) * w + (j - pad)
            if abs(shift) >= size:  # every tap outside
                flat[:, i, j] = 0
                continue
            if shift >= 0:
                flat[:, i, j, : size - shift] = x[:, shift:]
                flat[:, i, j, size - shift :] = 0  # the end the shifted copy did not write
            else:
                flat[:, i, j, -shift:] = x[:, :shift]
                flat[:, i, j, :-shift] = 0
            zero_outside(patches[:, i, j], i - pad, j - pad)


def col2im_shifted(dcols: np.ndarray, pad: int, out: np.ndarray | None = None) -> np.ndarray:
    """dcols (C, k, k, N, H, W) -> dx (C, N, H, W), the adjoint of :func:`im2col_shifted`,
    written into ``out`` when given (a (C, N, H, W) array whose N*H*W positions of each
    channel are contiguous); ``dcols`` is overwritten: its taps outside the image are
    zeroed first."""
    c, k, n, h, w = dcols.shape[0], dcols.shape[1], *dcols.shape[3:]
    size = n * h * w
    flat = dcols.reshape(c, k, k, size)
    if out is None:
        out = np.empty((c, n, h, w), dtype=dcols.dtype)
    dx = as_view(out, (c, size))
    np.copyto(dx, flat[:, pad, pad])  # the centre tap covers every position
    for i in range(k):
        for j in range(k):
            shift = (i - pad) * w + (j - pad)
            if abs(shift) >= size:
                continue
            zero_outside(dcols[:, i, j], i - pad, j - pad)
            if shift > 0:
                dx[:, shift:] += flat[:, i, j, : size - shift]
            elif shift < 0:
                dx[:, :shift] += flat[:, i, j, -shift:]
    return out
