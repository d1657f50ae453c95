"""Augmentations for RGB photo batches (N, 3, S, S): torchvision's ``RandomResizedCrop``
and ``RandomHorizontalFlip``, vectorised over the batch.

``random_resized_crop`` picks, per image, a box of ``area`` in [min_scale, max_scale] of
the image and aspect ratio (width / height) log-uniform in [min_ratio, max_ratio],
placed uniformly at random, and resamples it to the full S x S (bilinear, through
:func:`~toolkit.data.augment.resample.warp`). As in torchvision, 10 boxes are drawn per
image and the first that fits is used, else the whole image. A box is never larger
than the image, so it is only ever enlarged to S x S: no antialiasing is needed (unlike
torchvision, which crops full-size photos).
"""

from __future__ import annotations

import math

import numpy as np

from toolkit.data.augment.resample import affine_grid, scratch, warp
from toolkit.data.augment.transforms import Augmentation, check_mode, check_number
from toolkit.registry import ParameterError, augmentations

ATTEMPTS = 10  # boxes drawn per image before falling back to the whole image


def crop_boxes(
    n: int,
    size: tuple[int, int],
    scale: tuple[float, float],
    ratio: tuple[float, float],
    rng: np.random.Generator,
) -> np.ndarray:
    """(N, 4) float64 boxes ``(top, left, height, width)`` in pixels, one per image of
    ``size`` (H, W), drawn as in torchvision's ``RandomResizedCrop.get_params`` (whole
    pixels; the first of :data:`ATTEMPTS` draws that fits, else the whole image)."""
    h, w = size
    area = h * w * rng.uniform(scale[0], scale[1], (n, ATTEMPTS))
    aspect = np.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1]), (n, ATTEMPTS)))
    widths = np.rint(np.sqrt(area * aspect))
    heights = np.rint(np.sqrt(area / aspect))
    fits = (widths >= 1) & (widths <= w) & (heights >= 1) & (heights <= h)
    first = fits.argmax(axis=1)
    rows = np.arange(n)
    box_h = np.where(fits.any(axis=1), heights[rows, first], h)
    box_w = np.where(fits.any(axis=1), widths[rows, first], w)
    top = np.floor(rng.random(n) * (h - box_h + 1))
    left = np.floor(rng.random(n) * (w - box_w + 1))
    return np.stack([top, left, box_h, box_w], axis=1)


def crop_and_resize(x: np.ndarray, boxes: np.ndarray, mode: str = "bilinear") -> np.ndarray:
    """Each image of ``x`` (N, C, H, W) cut to its box ``(top, left, height, width)`` and
    resampled to (H, W), pixel centres aligned (as ``torch``'s ``align_corners=False``)."""
    n, _, h, w = x.shape
    top, left, box_h, box_w = boxes.T
    matrices = np.zeros((n, 2, 3), dtype=np.float32)
    matrices[:, 0, 0] = box_h / h
    matrices[:, 0, 2] = top + 0.5 * box_h / h - 0.5
    matrices[:, 1, 1] = box_w / w
    matrices[:, 1, 2] = left + 0.5 * box_w / w - 0.5
    grid = scratch("grid_rows", (n, h, w)), scratch("grid_cols", (n, h, w))
    rows, cols = affine_grid(matrices, (h, w), grid)
    # the samples stay inside the box, so the fill is never read (edges clamp instead)
    np.clip(rows, 0, h - 1, out=rows)
    np.clip(cols, 0, w - 1, out=cols)
    return warp(x, rows, cols, 0.0, mode, overwrite_coords=True)


@augmentations.register("random_resized_crop")
class RandomResizedCrop(Augmentation):
    """A random box of each image (area share and aspect ratio at random) resized back
    to the image's size: torchvision's ``RandomResizedCrop(S)``.

    Args:
        min_scale, max_scale: the box's area as a share of the image's, 0 < min <= max <= 1
            (torchvision: 0.08, 1.0).
        min_ratio, max_ratio: the box's width / height, drawn log-uniformly (3/4, 4/3).
        mode: resampling, ``"bilinear"`` or ``"nearest"``.
    """

    def __init__(
        self,
        min_scale: float = 0.08,
        max_scale: float = 1.0,
        min_ratio: float = 3 / 4,
        max_ratio: float = 4 / 3,
        mode: str = "bilinear",
    ) -> None:
        self.min_scale = check_number(self, "min_scale", min_scale, above=0, at_most=1)
        self.max_scale = check_number(self, "max_scale", max_scale, above=0, at_most=1)
        self.min_ratio = check_number(self, "min_ratio", min_ratio, above=0)
        self.max_ratio = check_number(self, "max_ratio", max_ratio, above=0)
        for low, high in (("min_scale", "max_scale"), ("min_ratio", "max_ratio")):
            if getattr(self, low) > getattr(self, high):
                raise ParameterError(type(self).__name__, f"{{{low}}} must be <= {{{high}}}")
        self.mode = check_mode(self, mode)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        boxes = crop_boxes(
            len(x),
            x.shape[2:],
            (self.min_scale, self.max_scale),
            (self.min_ratio, self.max_ratio),
            rng,
        )
        return crop_and_resize(x, boxes, self.mode)


@augmentations.register("hflip")
class HorizontalFlip(Augmentation):
    """Mirror each image left-right with probability ``p`` (exact, no resampling):
    torchvision's ``RandomHorizontalFlip``.

    Args:
        p: the probability per image, in [0, 1].
    """

    def __init__(self, p: float = 0.5) -> None:
        self.p = check_number(self, "p", p, at_least=0, at_most=1)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        flipped = rng.random(len(x)) < self.p
        out = x.copy()
        out[flipped] = x[flipped, :, :, ::-1]
        return out
