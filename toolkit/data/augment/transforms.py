"""The registered augmentations: random transformations of image batches (N, C, H, W).

Each is a class registered in :data:`toolkit.registry.augmentations`, built from keyword
hyperparameters (checked at construction: a bad value raises a one-line ParameterError
naming the class and the parameter, e.g. ``Rotate: max_degrees must be >= 0; got -5``) and
called as ``aug(x, rng)``. Every image
gets its own random parameters drawn from ``rng``, so a seeded generator repeats itself.

Pixels that come from outside an image take the value ``fill``; ``fill=None`` means the
batch minimum, which for normalised images is the value of a black pixel (the background
of MNIST-like digits).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np

from toolkit.data.augment.resample import (
    MODES,
    affine_transform,
    elastic_grid,
    scratch,
    shift_images,
    warp,
)
from toolkit.registry import ConfigError, ParameterError, augmentations, bad_value, owner_name


class Augmentation(ABC):
    """A random transformation of image batches.

    Call it as ``aug(x, rng)`` with ``x`` (N, C, H, W) in the model's normalised units;
    it returns a new float32 array of the same shape and never modifies ``x``. Subclasses
    implement :meth:`apply`.
    """

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = as_image_batch(x)
        return self.apply(x, rng) if len(x) else x.copy()

    @abstractmethod
    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Transform a non-empty float32 batch ``x`` (N, C, H, W) into a new array."""

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in vars(self).items())
        return f"{type(self).__name__}({args})"


def as_image_batch(x: np.ndarray) -> np.ndarray:
    """``x`` as a float32 (N, C, H, W) array (no copy when it already is one)."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise ConfigError(
            f"augmentations need image batches (N, C, H, W); got an array of shape {x.shape}"
        )
    return x.astype(np.float32, copy=False)


def background(x: np.ndarray, fill: float | None) -> float:
    """The value for pixels from outside the images: ``fill``, or the minimum of ``x``."""
    return float(x.min()) if fill is None else fill


# ---- hyperparameter checks: each returns the value or raises a one-line ParameterError
# of parameter ``name`` of ``owner`` (the augmentation, or its name) ----


def check_number(
    owner: object,
    name: str,
    value: object,
    *,
    at_least: float | None = None,
    above: float | None = None,
    at_most: float | None = None,
    integer: bool = False,
) -> float:
    """``value`` as a float (an int if ``integer``) within the given bounds."""
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value):
        kind = "an integer" if integer else "a finite number"
        raise bad_value(owner, name, kind, value)
    if at_least is not None and value < at_least:
        raise bad_value(owner, name, f">= {at_least:g}", value)
    if above is not None and value <= above:
        raise bad_value(owner, name, f"> {above:g}", value)
    if at_most is not None and value > at_most:
        raise bad_value(owner, name, f"<= {at_most:g}", value)
    return int(value) if integer else float(value)


def check_fill(owner: object, fill: object) -> float | None:
    """Parameter ``fill`` as a float, or None (the batch minimum)."""
    return None if fill is None else check_number(owner, "fill", fill)


def check_mode(owner: object, mode: object) -> str:
    """Parameter ``mode`` if it is one of :data:`~toolkit.data.augment.resample.MODES`."""
    if mode not in MODES:
        raise bad_value(owner, "mode", f"one of: {', '.join(MODES)}", mode)
    return mode


def check_scale_range(owner: object, min_scale: object, max_scale: object) -> tuple[float, float]:
    """Parameters ``min_scale <= max_scale``, both positive."""
    low = check_number(owner, "min_scale", min_scale, above=0)
    high = check_number(owner, "max_scale", max_scale, above=0)
    if low > high:
        raise ParameterError(
            owner_name(owner), f"{{min_scale}} must be <= {{max_scale}}; got {low:g} > {high:g}"
        )
    return low, high


# ---- geometric augmentations: all resample through resample.warp (or its shift fast path)


@augmentations.register("shift")
class Shift(Augmentation):
    """Move each image by whole pixels: down and right by independent random integers in
    [-max_pixels, max_pixels] (exact, no interpolation).

    Args:
        max_pixels: largest shift in pixels, >= 0 (0 leaves images unchanged).
        fill: value of the uncovered border pixels; None for the batch minimum.
    """

    def __init__(self, max_pixels: int = 2, fill: float | None = None) -> None:
        self.max_pixels = check_number(self, "max_pixels", max_pixels, at_least=0, integer=True)
        self.fill = check_fill(self, fill)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        shifts = rng.integers(-self.max_pixels, self.max_pixels + 1, size=(len(x), 2))
        return shift_images(x, shifts, background(x, self.fill))


@augmentations.register("rotate")
class Rotate(Augmentation):
    """Rotate each image about its centre by a random angle uniform in
    [-max_degrees, max_degrees] (positive: counter-clockwise).

    Args:
        max_degrees: largest angle in degrees, >= 0.
        fill: value of pixels from outside the image; None for the batch minimum.
        mode: resampling, ``"bilinear"`` or ``"nearest"``.
    """

    def __init__(
        self, max_degrees: float = 10.0, fill: float | None = None, mode: str = "bilinear"
    ) -> None:
        self.max_degrees = check_number(self, "max_degrees", max_degrees, at_least=0)
        self.fill = check_fill(self, fill)
        self.mode = check_mode(self, mode)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = len(x)
        degrees = rng.uniform(-self.max_degrees, self.max_degrees, n)
        no_shift = np.zeros((n, 2))
        return affine_transform(
            x, degrees, np.ones(n), no_shift, background(x, self.fill), self.mode
        )


@augmentations.register("scale")
class Scale(Augmentation):
    """Zoom each image about its centre by a random factor uniform in
    [min_scale, max_scale] (> 1 enlarges the content).

    Args:
        min_scale, max_scale: the factor's range, 0 < min_scale <= max_scale.
        fill: value of pixels from outside the image; None for the batch minimum.
        mode: resampling, ``"bilinear"`` or ``"nearest"``.
    """

    def __init__(
        self,
        min_scale: float = 0.9,
        max_scale: float = 1.1,
        fill: float | None = None,
        mode: str = "bilinear",
    ) -> None:
        self.min_scale, self.max_scale = check_scale_range(self, min_scale, max_scale)
        self.fill = check_fill(self, fill)
        self.mode = check_mode(self, mode)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = len(x)
        scales = rng.uniform(self.min_scale, self.max_scale, n)
        return affine_transform(
            x, np.zeros(n), scales, np.zeros((n, 2)), background(x, self.fill), self.mode
        )


@augmentations.register("affine")
class Affine(Augmentation):
    """Rotate, zoom and shift each image in one resampling pass (sharper than chaining
    ``rotate``, ``scale`` and ``shift``, and cheaper).

    Per image: an angle uniform in [-max_degrees, max_degrees] (counter-clockwise), a zoom
    uniform in [min_scale, max_scale], and a shift down and right, each uniform in
    [-max_pixels, max_pixels] (fractional pixels).

    Args:
        max_degrees: largest angle in degrees, >= 0.
        max_pixels: largest shift in pixels, >= 0.
        min_scale, max_scale: the zoom's range, 0 < min_scale <= max_scale.
        fill: value of pixels from outside the image; None for the batch minimum.
        mode: resampling, ``"bilinear"`` or ``"nearest"``.
    """

    def __init__(
        self,
        max_degrees: float = 10.0,
        max_pixels: float = 2.0,
        min_scale: float = 0.9,
        max_scale: float = 1.1,
        fill: float | None = None,
        mode: str = "bilinear",
    ) -> None:
        self.max_degrees = check_number(self, "max_degrees", max_degrees, at_least=0)
        self.max_pixels = check_number(self, "max_pixels", max_pixels, at_least=0)
        self.min_scale, self.max_scale = check_scale_range(self, min_scale, max_scale)
        self.fill = check_fill(self, fill)
        self.mode = check_mode(self, mode)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = len(x)
        degrees = rng.uniform(-self.max_degrees, self.max_degrees, n)
        scales = rng.uniform(self.min_scale, self.max_scale, n)
        shifts = rng.uniform(-self.max_pixels, self.max_pixels, (n, 2))
        return affine_transform(x, degrees, scales, shifts, background(x, self.fill), self.mode)


@augmentations.register("elastic")
class Elastic(Augmentation):
    """Elastic distortion (Simard et al., 2003): every pixel moves by a random displacement
    field, uniform in [-alpha, alpha] pixels per pixel, then smoothed by a gaussian of
    ``sigma`` pixels (separably, one axis at a time), so neighbours move together.

    Args:
        alpha: displacement scale in pixels, >= 0 (0 leaves images unchanged). After
            smoothing, displacements have a standard deviation of about
            ``alpha / (6 sigma)`` pixels (0.4 with the defaults).
        sigma: smoothness in pixels, > 0: larger is smoother (and smaller).
        fill: value of pixels from outside the image; None for the batch minimum.
        mode: resampling, ``"bilinear"`` or ``"nearest"``.
    """

    def __init__(
        self,
        alpha: float = 8.0,
        sigma: float = 3.0,
        fill: float | None = None,
        mode: str = "bilinear",
    ) -> None:
        self.alpha = check_number(self, "alpha", alpha, at_least=0)
        self.sigma = check_number(self, "sigma", sigma, above=0)
        self.fill = check_fill(self, fill)
        self.mode = check_mode(self, mode)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n, _, h, w = x.shape
        # Raw fields uniform on 256 levels, (k + 0.5) / 256: drawn as bytes, 2.5x faster than
        # float32 uniforms and, once smoothed, indistinguishable from them.
        noise = scratch("noise", (2, n, h, w))
        np.multiply(
            rng.integers(0, 256, noise.shape, dtype=np.uint8), np.float32(1 / 256), out=noise
        )
        noise += np.float32(0.5 / 256)
        rows, cols = elastic_grid(noise, self.alpha, self.sigma)
        return warp(x, rows, cols, background(x, self.fill), self.mode, overwrite_coords=True)
