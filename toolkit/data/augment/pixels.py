"""Pixel-value augmentations: Gaussian noise and cutout (a filled square per image).
Batches are (N, C, H, W); each draws from the generator it is given."""

from __future__ import annotations

import math

import numpy as np

from toolkit.data.augment.transforms import (
    Augmentation,
    background,
    check_fill,
    check_number,
)
from toolkit.registry import augmentations


@augmentations.register("noise")
class Noise(Augmentation):
    """Add gaussian noise with standard deviation ``std`` (in the normalised input units)
    to every pixel.

    Args:
        std: standard deviation, >= 0 (0 leaves images unchanged).
    """

    def __init__(self, std: float = 0.1) -> None:
        self.std = check_number(self, "std", std, at_least=0)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        noise = standard_normal(rng, x.shape)
        noise *= np.float32(self.std)
        noise += x
        return noise


def standard_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal float32 samples of ``shape`` by the Box-Muller transform of float32
    uniforms: 2-3x faster than ``rng.standard_normal(dtype=np.float32)``; tails end at
    about 5.8 standard deviations (the float32 uniforms' resolution)."""
    size = math.prod(shape)
    half = (size + 1) // 2
    uniform = rng.random(2 * half, dtype=np.float32)
    radius, angle = uniform[:half], uniform[half:]
    np.subtract(np.float32(1), radius, out=radius)  # (0, 1]: the log stays finite
    np.log(radius, out=radius)
    radius *= np.float32(-2)
    np.sqrt(radius, out=radius)
    angle *= np.float32(2 * np.pi)
    out = np.empty(2 * half, dtype=np.float32)
    np.cos(angle, out=out[:half])
    np.sin(angle, out=out[half:])
    out[:half] *= radius
    out[half:] *= radius
    return out[:size].reshape(shape)


@augmentations.register("cutout")
class Cutout(Augmentation):
    """Cutout (DeVries & Taylor, 2017): fill one ``size`` x ``size`` square per image, at a
    random centre anywhere in the image (so squares near a border are clipped), in all
    channels.

    Args:
        size: side of the square in pixels, >= 0 (0 leaves images unchanged).
        fill: value of the square; None for the batch minimum (black, for normalised MNIST).
    """

    def __init__(self, size: int = 8, fill: float | None = None) -> None:
        self.size = check_number(self, "size", size, at_least=0, integer=True)
        self.fill = check_fill(self, fill)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n, _, h, w = x.shape
        top = rng.integers(0, h, n)[:, None] - self.size // 2
        left = rng.integers(0, w, n)[:, None] - self.size // 2
        in_rows = np.arange(h) - top  # (N, H): row offset into the square
        in_cols = np.arange(w) - left
        in_rows = (in_rows >= 0) & (in_rows < self.size)
        in_cols = (in_cols >= 0) & (in_cols < self.size)
        square = in_rows[:, None, :, None] & in_cols[:, None, None, :]  # (N, 1, H, W)
        return np.where(square, np.float32(background(x, self.fill)), x)
