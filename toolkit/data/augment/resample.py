"""Resampling image batches (N, C, H, W): the one sampler every geometric augmentation
uses (:func:`warp`), the coordinate grids it reads (:func:`affine_grid`,
:func:`elastic_grid`), and an exact fast path for whole-pixel shifts (:func:`shift_images`).

Coordinates are in pixels: ``(row, col)`` in the source image, with ``(0, 0)`` the centre
of the top-left pixel and rows growing downwards. Whatever lies outside the image reads a
constant ``fill`` (the image background). Arrays stay float32 throughout.
"""

from __future__ import annotations

import math
import threading
from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

MODES = ("bilinear", "nearest")
SCRATCH_LIMIT = 1 << 21  # elements (8 MiB of float32): larger temporaries are not kept


class _Scratch(threading.local):
    """The reusable temporaries of the current thread, by name."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}


_scratch = _Scratch()


def scratch(name: str, shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
    """An uninitialised temporary array, reused across calls (one per name and thread).

    Fresh temporaries of a few hundred KB are slow here: the C allocator hands their pages
    back to the system when they are freed, and the next call pays a page fault per 4 KB
    (measured on a VM: ~500 faults, about 2 of the 3 ms of a bilinear warp of 64 MNIST
    images). The array is valid until the next request for ``name`` in this thread, so it
    must never be returned to a caller. Arrays over :data:`SCRATCH_LIMIT` elements are
    allocated fresh.
    """
    size = math.prod(shape)
    if size > SCRATCH_LIMIT:
        return np.empty(shape, dtype)
    buffer = _scratch.arrays.get(name)
    if buffer is None or buffer.dtype != dtype or buffer.size < size:
        buffer = _scratch.arrays[name] = np.empty(size, dtype)
    return buffer[:size].reshape(shape)


def warp(
    x: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    fill: float,
    mode: str = "bilinear",
    overwrite_coords: bool = False,
) -> np.ndarray:
    """Sample each image of ``x`` at its own source coordinates.

    Output pixel ``(n, :, i, j)`` reads ``x[n, :, rows[n, i, j], cols[n, i, j]]``:
    ``"bilinear"`` blends the four surrounding pixels, ``"nearest"`` takes the closest one.
    Outside the image every pixel counts as ``fill``, so a coordinate half a pixel beyond
    the border blends the edge pixel and ``fill`` half and half.

    Args:
        x: images (N, C, H, W) float32.
        rows, cols: source coordinates (N, H_out, W_out) float32, in pixels.
        fill: the value outside the image.
        mode: ``"bilinear"`` or ``"nearest"``.
        overwrite_coords: use ``rows`` and ``cols`` as scratch space (they must then be
            writable float32 arrays that you no longer need).

    Returns:
        a new float32 array (N, C, H_out, W_out); ``x`` is unchanged.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    n, c, h, w = x.shape
    pixels, stride = _framed_pixels(x, fill)
    # In framed coordinates (+1) the image spans [1, H] x [1, W]; clipping to [0, H + 1] and
    # [0, W + 1] keeps every read inside the frame, where anything far outside reads fill.
    row = rows if overwrite_coords else scratch("row", rows.shape)
    np.add(rows, np.float32(1), out=row)
    np.clip(row, 0, h + 1, out=row)
    col = cols if overwrite_coords else scratch("col", cols.shape)
    np.add(cols, np.float32(1), out=col)
    np.clip(col, 0, w + 1, out=col)
    if mode == "nearest":
        np.rint(row, out=row)
        np.rint(col, out=col)
        out = np.take(pixels, _flat_index(row, col, stride, len(pixels) // n), axis=0)
        return _to_nchw(out, rows.shape)
    # Bilinear: the top-left neighbour (row0, col0); row/col become the next one's weights.
    row0 = np.floor(row, out=scratch("row0", row.shape))
    row -= row0
    col0 = np.floor(col, out=scratch("col0", col.shape))
    col -= col0
    index = _flat_index(row0, col0, stride, len(pixels) // n)
    top = np.take(pixels, index, axis=0)  # a fresh array: it becomes the output
    # mode="clip" lets take write straight into `out` (indices are in range by construction)
    neighbours = ("top_right", 1), ("bottom", stride), ("bottom_right", stride + 1)
    top_right, bottom, bottom_right = (
        np.take(pixels[offset:], index, axis=0, out=scratch(name, top.shape), mode="clip")
        for name, offset in neighbours
    )
    col_weight, row_weight = col.reshape(n, -1, 1), row.reshape(n, -1, 1)
    top_right -= top
    top_right *= col_weight
    top += top_right
    bottom_right -= bottom
    bottom_right *= col_weight
    bottom += bottom_right
    bottom -= top
    bottom *= row_weight
    top += bottom
    return _to_nchw(top, rows.shape)


def _framed_pixels(x: np.ndarray, fill: float) -> tuple[np.ndarray, int]:
    """``x`` (N, C, H, W) channels-last inside a frame of ``fill`` (1 pixel above and left,
    2 below and right, so the neighbours of a pixel on the frame are still in it), flattened
    to pixel rows (N * (H + 3) * (W + 3), C); also the row stride W + 3."""
    n, c, h, w = x.shape
    framed = scratch("framed", (n, h + 3, w + 3, c))
    framed[:, 0] = fill
    framed[:, h + 1 :] = fill
    framed[:, 1 : h + 1, 0] = fill
    framed[:, 1 : h + 1, w + 1 :] = fill
    framed[:, 1 : h + 1, 1 : w + 1] = x.transpose(0, 2, 3, 1)
    return framed.reshape(-1, c), w + 3


def _flat_index(row: np.ndarray, col: np.ndarray, stride: int, plane: int) -> np.ndarray:
    """Indices (N, H_out * W_out) into the framed pixel rows of the whole-pixel framed
    coordinates ``row``, ``col`` (N, H_out, W_out); ``row`` is overwritten."""
    n = len(row)
    row *= stride  # within one framed image the index is exact in float32
    row += col
    index = scratch("index", (n, row[0].size), np.intp)
    np.copyto(index, row.reshape(n, -1), casting="unsafe")
    index += np.arange(0, n * plane, plane)[:, None]
    return index


def _to_nchw(pixels: np.ndarray, grid_shape: tuple[int, ...]) -> np.ndarray:
    """Sampled pixels (N, H_out * W_out, C) as a contiguous (N, C, H_out, W_out)."""
    n, _, c = pixels.shape
    images = pixels.reshape(n, *grid_shape[1:], c)
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2))


def affine_matrices(
    degrees: np.ndarray, scales: np.ndarray, shifts: np.ndarray, size: tuple[int, int]
) -> np.ndarray:
    """Per-image affine maps from output to source pixel coordinates, about the centre.

    Each map rotates the content counter-clockwise (as displayed, rows down) by ``degrees``,
    zooms it by ``scales`` (> 1 enlarges), then moves it by ``shifts``.

    Args:
        degrees: (N,) rotation angles in degrees.
        scales: (N,) zoom factors, positive.
        shifts: (N, 2) translations in pixels, (down, right).
        size: (H, W) of the images.

    Returns:
        (N, 2, 3) float32 ``A``: source ``(row, col) = A @ (row_out, col_out, 1)``.
    """
    theta = np.radians(np.asarray(degrees, dtype=np.float64))
    cos, sin = np.cos(theta), np.sin(theta)
    # Undo shift, zoom and rotation: source = R(-theta) (p - centre - shift) / scale + centre.
    linear = np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], 1)
    linear /= np.asarray(scales, dtype=np.float64)[:, None, None]
    centre = (np.asarray(size, dtype=np.float64) - 1) / 2
    moved = centre + np.asarray(shifts, dtype=np.float64)
    offset = centre - (linear @ moved[:, :, None])[:, :, 0]
    return np.concatenate([linear, offset[:, :, None]], axis=2).astype(np.float32)


def affine_grid(
    matrices: np.ndarray,
    size: tuple[int, int],
    out: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Source coordinates ``rows, cols`` (N, H, W) float32 of the affine maps ``matrices``
    (N, 2, 3) (see :func:`affine_matrices`) for output images of ``size`` (H, W); written
    into ``out`` when given."""
    h, w = size
    if out is None:
        out = (
            np.empty((len(matrices), h, w), np.float32),
            np.empty((len(matrices), h, w), np.float32),
        )
    m = matrices[:, :, :, None, None]
    out_row = np.arange(h, dtype=np.float32)[:, None]
    out_col = np.arange(w, dtype=np.float32)
    for axis, coords in enumerate(out):  # (N, H, 1) + (N, 1, W) -> (N, H, W)
        np.add(m[:, axis, 0] * out_row, m[:, axis, 1] * out_col + m[:, axis, 2], out=coords)
    return out


def affine_transform(
    x: np.ndarray,
    degrees: np.ndarray,
    scales: np.ndarray,
    shifts: np.ndarray,
    fill: float,
    mode: str = "bilinear",
) -> np.ndarray:
    """Rotate (degrees, counter-clockwise), zoom and shift (pixels) each image of ``x``
    (N, C, H, W) about its centre in one resampling pass; parameters as in
    :func:`affine_matrices`. Returns a new float32 (N, C, H, W)."""
    n, _, h, w = x.shape
    grid = scratch("grid_rows", (n, h, w)), scratch("grid_cols", (n, h, w))
    rows, cols = affine_grid(affine_matrices(degrees, scales, shifts, (h, w)), (h, w), grid)
    return warp(x, rows, cols, fill, mode, overwrite_coords=True)


def elastic_grid(noise: np.ndarray, alpha: float, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Source coordinates of an elastic distortion (Simard et al., 2003): random
    displacements uniform in [-alpha, alpha] pixels, smoothed by a gaussian of ``sigma``.

    Args:
        noise: (2, N, H, W) float32 uniform in [0, 1): raw fields for rows and columns;
            overwritten with the result.
        alpha: displacement scale in pixels.
        sigma: standard deviation in pixels of the smoothing gaussian.

    Returns:
        rows, cols (N, H, W) float32 (views of ``noise``): the identity grid plus the
        smoothed displacements.
    """
    h, w = noise.shape[2:]
    # Smooth along rows, then along columns: stacks of (H, H) @ (H, W) @ (W, W) products,
    # each small enough for BLAS to run on one thread. (One big product for the columns is
    # faster on an idle machine but, on a busy one, waits for its BLAS threads: 2-4x slower.)
    along_rows = np.matmul(gaussian_matrix(h, sigma), noise, out=scratch("smoothed", noise.shape))
    rows, cols = np.matmul(along_rows, gaussian_matrix(w, sigma).T, out=noise)
    # The smoothing matrices' rows sum to 1, so smoothing (2u - 1) is 2 smooth(u) - 1.
    rows *= np.float32(2 * alpha)
    rows += np.arange(h, dtype=np.float32)[:, None] - np.float32(alpha)
    cols *= np.float32(2 * alpha)
    cols += np.arange(w, dtype=np.float32) - np.float32(alpha)
    return rows, cols


@lru_cache(maxsize=32)
def gaussian_matrix(n: int, sigma: float) -> np.ndarray:
    """The 1-D gaussian convolution along an axis of length ``n``, as a matrix.

    ``G @ v`` convolves ``v`` (n, ...) along its first axis with a normalised gaussian of
    ``sigma`` pixels, truncated at 4 sigma, borders mirrored (``c b a | a b c``); so
    ``G_h @ field @ G_w.T`` smooths (..., H, W) fields separably, with one matrix product
    per axis. Returns a read-only (n, n) float32 array, cached per (n, sigma).
    """
    radius = int(np.ceil(4 * sigma))
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    sources = (np.arange(n)[:, None] + offsets) % (2 * n)  # mirroring repeats every 2n
    sources = np.where(sources < n, sources, 2 * n - 1 - sources)
    cells = (np.arange(n)[:, None] * n + sources).ravel()  # mirrored taps can repeat a cell
    weights = np.broadcast_to(kernel, sources.shape).ravel()
    matrix = np.bincount(cells, weights=weights, minlength=n * n).reshape(n, n)
    matrix = matrix.astype(np.float32)
    matrix.flags.writeable = False
    return matrix


def shift_images(x: np.ndarray, shifts: np.ndarray, fill: float) -> np.ndarray:
    """Move each image by whole pixels, exactly: the fast path beside :func:`warp`.

    Args:
        x: images (N, C, H, W) float32.
        shifts: (N, 2) integers, (down, right) in pixels per image.
        fill: the value of the pixels uncovered at the borders.

    Returns:
        a new float32 (N, C, H, W) with ``out[n, :, i, j] = x[n, :, i - down, j - right]``.
    """
    n, c, h, w = x.shape
    shifts = np.asarray(shifts, dtype=np.intp)
    pad = int(np.abs(shifts).max(initial=0))
    padded = np.full((n, c, h + 2 * pad, w + 2 * pad), fill, dtype=np.float32)
    padded[:, :, pad : pad + h, pad : pad + w] = x
    # Each shifted image is one (H, W) window of its padded image: gather one per image.
    windows = sliding_window_view(padded, (h, w), axis=(2, 3))
    return windows[np.arange(n), :, pad - shifts[:, 0], pad - shifts[:, 1]]
