"""The in-memory dataset every loader returns, and the image preprocessing it shares with
deployed models.

Images are NCHW float32: raw uint8 pixels are scaled by 1/255 and, when the dataset is
normalised, standardised with one scalar ``(mean, std)`` pair for all channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from toolkit.registry import ConfigError

CHANNEL_COUNTS = (1, 3, 4)  # grayscale, RGB, RGBA: how a channel axis is recognised


@dataclass
class Dataset:
    """Train and test arrays of one dataset, ready for a model.

    Attributes:
        name: what the data is (``"MNIST"``, ``"xor"``...).
        task: ``"classification"`` or ``"regression"``.
        x_train, x_test: float32 inputs; images (N, C, H, W) scaled (and normalised),
            tabular (N, F).
        y_train, y_test: int64 class indices (N,) for classification; float32 targets
            (N, T) for regression.
        num_classes: number of classes (classification), else ``None``.
        class_names: one name per class index, when known.
        normalization: ``(mean, std)`` applied after scaling raw uint8 pixels by 1/255;
            ``None`` for non-image data or when not normalised. Pass it to
            :func:`preprocess_images` to prepare new raw images the same way.
    """

    name: str
    task: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int | None = None
    class_names: list[str] | None = None
    normalization: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.task not in ("classification", "regression"):
            raise ValueError(
                f"Dataset.task must be 'classification' or 'regression', not {self.task!r}"
            )
        for part, x, y in (
            ("train", self.x_train, self.y_train),
            ("test", self.x_test, self.y_test),
        ):
            if len(x) != len(y):
                raise ValueError(
                    f"{self.name}: x_{part} has {len(x)} samples but y_{part} {len(y)}"
                )

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one input: (C, H, W) for images, (F,) for tabular data."""
        return tuple(self.x_train.shape[1:])

    @property
    def num_outputs(self) -> int:
        """Width of the model's output: the class count, or the target width T."""
        return self.num_classes if self.num_classes is not None else int(self.y_train.shape[1])


def images_to_nchw(images: np.ndarray) -> np.ndarray:
    """A view (or contiguous copy) of a batch of images in (N, C, H, W) layout.

    Accepted layouts:
        (N, H, W): grayscale, becomes (N, 1, H, W);
        (N, C, H, W) with C in 1, 3, 4: returned as is (channels-first wins when both
            axis 1 and axis 3 could be channels, e.g. (N, 3, 4, 4));
        (N, H, W, C) with C in 1, 3, 4: transposed to channels-first.
    """
    if images.ndim == 3:
        return images[:, None, :, :]
    if images.ndim == 4:
        if images.shape[1] in CHANNEL_COUNTS:
            return images
        if images.shape[3] in CHANNEL_COUNTS:
            return np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    raise ConfigError(
        f"cannot read images of shape {images.shape}; expected (N, H, W), (N, C, H, W) or "
        f"(N, H, W, C) with C in {CHANNEL_COUNTS}"
    )


def preprocess_images(
    raw_uint8: np.ndarray, normalization: tuple[float, float] | None
) -> np.ndarray:
    """Turn raw pixels into a model's input: float32 (N, C, H, W).

    Args:
        raw_uint8: pixel values on the raw 0..255 scale (uint8, or any real dtype holding
            such values), in one of the layouts :func:`images_to_nchw` accepts: (N, H, W)
            grayscale becomes (N, 1, H, W); (N, H, W, C) is transposed to (N, C, H, W).
        normalization: ``(mean, std)`` of the pixels after scaling by 1/255 (the
            ``Dataset.normalization`` the model was trained with), each a scalar or one
            value per channel, or ``None`` to only scale.

    Returns:
        contiguous float32 (N, C, H, W): ``(raw / 255 - mean) / std``, or ``raw / 255``.
    """
    images = images_to_nchw(np.asarray(raw_uint8))
    mean, std = normalization if normalization is not None else (0.0, 1.0)
    # scalars, or one value per channel (photos: ImageNet's per-channel statistics)
    mean = np.asarray(mean, dtype=np.float64).reshape(-1, 1, 1)
    std = np.asarray(std, dtype=np.float64).reshape(-1, 1, 1)
    out = np.empty(images.shape, dtype=np.float32)
    np.multiply(images, (1.0 / (255.0 * std)).astype(np.float32), out=out, casting="unsafe")
    if mean.any():
        out -= (mean / std).astype(np.float32)
    return out
