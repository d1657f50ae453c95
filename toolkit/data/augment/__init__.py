"""Data augmentation for image batches (N, C, H, W), vectorised NumPy, seeded.

Registered augmentations (:data:`toolkit.registry.augmentations`), with their defaults:

=========================  ==================================================================
``shift``                  ``max_pixels=2``: whole-pixel shifts, exact
``rotate``                 ``max_degrees=10.0``
``scale``                  ``min_scale=0.9, max_scale=1.1``
``affine``                 rotation + zoom + fractional shift in one resampling pass
                           (``max_degrees=10.0, max_pixels=2.0, min_scale=0.9, max_scale=1.1``)
``elastic``                ``alpha=8.0, sigma=3.0``: smoothed random displacement fields
``noise``                  ``std=0.1``: gaussian, in the normalised input units
``cutout``                 ``size=8``: one filled square per image
``random_resized_crop``    ``min_scale=0.08, max_scale=1.0, min_ratio=3/4, max_ratio=4/3``:
                           a random box resized to the image (torchvision's RandomResizedCrop)
``hflip``                  ``p=0.5``: left-right mirror (torchvision's RandomHorizontalFlip)
=========================  ==================================================================

Geometric ones also take ``fill`` (None: the batch minimum, i.e. the background of
normalised images) and ``mode`` (``"bilinear"`` or ``"nearest"``). A pipeline::

    augmenter = build_augmenter({"shift": {"max_pixels": 2}, "rotate": None}, p=0.5)
    x_augmented = augmenter(x_batch, rng)  # a new float32 (N, C, H, W); x_batch intact

All geometric augmentations resample through one function, :func:`warp` (bilinear or
nearest), fed by coordinate grids; ``shift`` uses an exact whole-pixel fast path.
"""

from toolkit.data.augment.photo import HorizontalFlip, RandomResizedCrop
from toolkit.data.augment.pipeline import Augmenter, build_augmenter
from toolkit.data.augment.pixels import Cutout, Noise
from toolkit.data.augment.resample import (
    affine_grid,
    affine_matrices,
    affine_transform,
    elastic_grid,
    shift_images,
    warp,
)
from toolkit.data.augment.transforms import (
    Affine,
    Augmentation,
    Elastic,
    Rotate,
    Scale,
    Shift,
)

__all__ = [
    "Affine",
    "Augmentation",
    "Augmenter",
    "Cutout",
    "Elastic",
    "HorizontalFlip",
    "Noise",
    "RandomResizedCrop",
    "Rotate",
    "Scale",
    "Shift",
    "affine_grid",
    "affine_matrices",
    "affine_transform",
    "build_augmenter",
    "elastic_grid",
    "shift_images",
    "warp",
]
