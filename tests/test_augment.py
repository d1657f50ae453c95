"""Data augmentation: every registered augmentation keeps shapes and dtypes, leaves its
input alone, is seeded, and does what its name says; pipelines are built from config specs."""

import numpy as np
import pytest
from omegaconf import OmegaConf

from toolkit.data.augment import (
    Augmenter,
    Cutout,
    Rotate,
    Scale,
    Shift,
    affine_transform,
    build_augmenter,
    shift_images,
    warp,
)
from toolkit.registry import ConfigError, augmentations

NAMES = augmentations.names()
BUILTINS = ["affine", "cutout", "elastic", "noise", "rotate", "scale", "shift"]


def batch(
    n: int = 6, channels: int = 1, size: int = 28, width: int | None = None, seed: int = 0
) -> np.ndarray:
    """Random float32 images (n, channels, size, width or size), in normalised units."""
    shape = (n, channels, size, width or size)
    return np.random.default_rng(seed).normal(0, 1, shape).astype(np.float32)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_builtins_are_registered():
    assert set(BUILTINS) <= set(NAMES)


# ---- the contract every augmentation keeps ----


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("channels", "height", "width"), [(1, 28, 28), (3, 20, 31)])
def test_shape_and_dtype_are_kept_and_input_is_untouched(name, channels, height, width):
    x = batch(channels=channels, size=height, width=width)
    before = x.copy()
    out = augmentations.build(name)(x, rng())
    assert out.shape == x.shape and out.dtype == np.float32
    assert not np.shares_memory(out, x)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_result_other_seed_different(name):
    x, augment = batch(), augmentations.build(name)
    np.testing.assert_array_equal(augment(x, rng(1)), augment(x, rng(1)))
    assert not np.array_equal(augment(x, rng(1)), augment(x, rng(2)))


@pytest.mark.parametrize("name", NAMES)
def test_each_image_gets_its_own_parameters(name):
    x = np.repeat(batch(n=1), 4, axis=0)  # four copies of one image
    out = augmentations.build(name)(x, rng())
    assert len({out[i].tobytes() for i in range(4)}) > 1


@pytest.mark.parametrize("name", NAMES)
def test_float64_input_gives_float32_and_empty_batches_work(name):
    augment = augmentations.build(name)
    assert augment(batch().astype(np.float64), rng()).dtype == np.float32
    assert augment(batch()[:0], rng()).shape == (0, 1, 28, 28)


@pytest.mark.parametrize(
    ("name", "identity"),
    [
        ("shift", {"max_pixels": 0}),
        ("rotate", {"max_degrees": 0}),
        ("scale", {"min_scale": 1, "max_scale": 1}),
        ("affine", {"max_degrees": 0, "max_pixels": 0, "min_scale": 1, "max_scale": 1}),
        ("elastic", {"alpha": 0}),
        ("noise", {"std": 0}),
        ("cutout", {"size": 0}),
    ],
)
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_identity_settings_return_the_input_exactly(name, identity, mode):
    if "mode" in augmentations.hyperparameters(name):
        identity = {**identity, "mode": mode}
    x = batch(channels=3)
    np.testing.assert_array_equal(augmentations.build(name, **identity)(x, rng()), x)


def test_images_are_not_images_is_a_config_error():
    with pytest.raises(ConfigError, match=r"\(N, C, H, W\).*\(64, 784\)"):
        Shift()(np.zeros((64, 784), np.float32), rng())


# ---- what each augmentation does ----


def dot_image(row: int, col: int, size: int = 9) -> np.ndarray:
    """One image (1, 1, size, size): background -1 with a single bright pixel of 1."""
    x = np.full((1, 1, size, size), -1.0, np.float32)
    x[0, 0, row, col] = 1.0
    return x


def test_shift_images_moves_content_down_and_right_by_whole_pixels():
    out = shift_images(dot_image(4, 4), np.array([[2, -3]]), fill=-1.0)
    assert out[0, 0, 6, 1] == 1.0 and (out == 1.0).sum() == 1
    assert (out[0, 0] == -1.0).sum() == 80


def test_shift_moves_a_dot_by_at_most_max_pixels_and_fills_with_background():
    x = np.repeat(dot_image(4, 4), 50, axis=0)
    out = Shift(max_pixels=2)(x, rng())
    assert set(np.unique(out)) == {-1.0, 1.0}  # exact: no interpolation, background fill
    _, _, rows, cols = np.nonzero(out == 1.0)
    assert len(rows) == 50  # the dot survives in every image
    assert set(rows - 4) == set(cols - 4) == {-2, -1, 0, 1, 2}  # all offsets, no others


def test_shift_fills_uncovered_border_with_the_given_value():
    x = np.zeros((20, 1, 5, 5), np.float32)
    out = Shift(max_pixels=1, fill=7.0)(x, rng())
    moved = np.abs(out).sum(axis=(1, 2, 3)) > 0
    assert moved.any() and set(np.unique(out)) <= {0.0, 7.0}


def asymmetric_images(n: int = 3, size: int = 8) -> np.ndarray:
    """Random images whose rotations by 90 degrees all differ from them."""
    return batch(n=n, channels=2, size=size)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_rotating_by_90_degrees_is_rot90_counter_clockwise(mode):
    x = asymmetric_images()
    n = len(x)
    out = affine_transform(x, np.full(n, 90.0), np.ones(n), np.zeros((n, 2)), 0.0, mode)
    np.testing.assert_allclose(out, np.rot90(x, k=1, axes=(2, 3)), atol=1e-5)
    back = affine_transform(x, np.full(n, -90.0), np.ones(n), np.zeros((n, 2)), 0.0, mode)
    np.testing.assert_allclose(back, np.rot90(x, k=-1, axes=(2, 3)), atol=1e-5)


def test_affine_shift_by_whole_pixels_matches_the_fast_path():
    x = asymmetric_images()
    shifts = np.array([[1, 2], [-2, 0], [0, -1]])
    out = affine_transform(x, np.zeros(3), np.ones(3), shifts, -1.0)
    np.testing.assert_allclose(out, shift_images(x, shifts, -1.0), atol=1e-6)


def test_half_pixel_shift_averages_neighbours():
    x = np.zeros((1, 1, 1, 4), np.float32)
    x[..., 1] = 2.0
    out = affine_transform(x, np.zeros(1), np.ones(1), np.array([[0.0, 0.5]]), 0.0)
    np.testing.assert_allclose(out[0, 0, 0], [0.0, 1.0, 1.0, 0.0])


def test_zooming_by_two_enlarges_about_the_centre():
    x = np.zeros((1, 1, 10, 10), np.float32)
    x[0, 0, 3:7, 3:7] = 1.0  # a 4x4 square in the middle
    out = affine_transform(x, np.zeros(1), np.full(1, 2.0), np.zeros((1, 2)), 0.0, "nearest")
    rows, cols = np.nonzero(out[0, 0] == 1.0)
    assert rows.min() + rows.max() == cols.min() + cols.max() == 9  # still centred
    assert rows.max() - rows.min() + 1 == cols.max() - cols.min() + 1 == 8  # twice as wide
    assert (out[0, 0] == 1.0).sum() == 64


def test_warp_reads_fill_outside_the_image_and_blends_at_the_border():
    x = np.ones((1, 1, 3, 3), np.float32)
    rows = np.array([[[-0.5, 1.0, 10.0]]], np.float32)
    cols = np.array([[[1.0, -50.0, 1.0]]], np.float32)
    np.testing.assert_allclose(warp(x, rows, cols, fill=-1.0)[0, 0, 0], [0.0, -1.0, -1.0])


def test_warp_leaves_its_coordinates_alone_unless_asked():
    x = batch(n=2, size=5)
    rows = np.random.default_rng(0).uniform(-2, 6, (2, 5, 5)).astype(np.float32)
    cols = rows[:, ::-1].copy()
    kept = rows.copy(), cols.copy()
    first = warp(x, rows, cols, 0.0)
    np.testing.assert_array_equal(rows, kept[0])
    np.testing.assert_array_equal(cols, kept[1])
    np.testing.assert_array_equal(warp(x, rows, cols, 0.0, overwrite_coords=True), first)


def dot_position(images: np.ndarray) -> np.ndarray:
    """Centroid (row, col) of the brightness above the background, per image (N, 2)."""
    weight = images[:, 0] - images.min()
    rows, cols = np.indices(weight.shape[1:])
    total = weight.sum(axis=(1, 2))
    return np.stack([(weight * rows).sum((1, 2)), (weight * cols).sum((1, 2))], 1) / total[:, None]


def test_rotate_turns_each_image_by_its_own_angle_within_max_degrees():
    x = np.repeat(dot_image(10, 18, size=21), 100, axis=0)  # 8 px right of the centre
    row, col = (dot_position(Rotate(max_degrees=30)(x, rng())) - 10).T
    angles = np.degrees(np.arctan2(-row, col))  # counter-clockwise, as displayed
    assert np.abs(angles).max() <= 30.5 and np.abs(angles).max() > 25
    assert (angles > 5).any() and (angles < -5).any()
    np.testing.assert_allclose(np.hypot(row, col), 8, atol=0.2)  # rotated about the centre


def test_scale_moves_content_radially_within_the_scale_range():
    x = np.repeat(dot_image(10, 18, size=21), 100, axis=0)
    row, col = (dot_position(Scale(min_scale=0.8, max_scale=1.2)(x, rng())) - 10).T
    np.testing.assert_allclose(row, 0, atol=1e-4)
    # From 8 px off-centre to 8 * [0.8, 1.2]; a resampled single pixel's centroid is only
    # accurate to about half a pixel.
    assert 0.8 * 8 - 0.5 <= col.min() < 7 and 9 < col.max() <= 1.2 * 8 + 0.5


@pytest.mark.parametrize("name", ["rotate", "scale", "affine", "elastic"])
def test_resampling_fills_with_the_batch_minimum_by_default(name):
    x = np.full((4, 1, 12, 12), -0.42, np.float32)
    x[:, :, 4:8, 4:8] = 2.8
    out = augmentations.build(name)(x, rng())
    assert out.min() >= -0.42 - 1e-6  # fill=None: the batch minimum, nothing darker
    np.testing.assert_allclose(out[:, :, 0, 0], -0.42, atol=1e-6)  # corners stay background


def test_elastic_distorts_smoothly():
    x = np.zeros((1, 1, 28, 28), np.float32)
    x[0, 0, :, 14] = 1.0  # a vertical line
    out = augmentations.build("elastic", alpha=34.0, sigma=4.0)(x, rng())
    assert not np.array_equal(out, x)
    # Smooth fields bend the line without tearing it: every row still has ink near col 14.
    ink = out[0, 0] > 0.1
    assert ink.any(axis=1).all()
    assert np.abs(np.nonzero(ink)[1] - 14).max() <= 6


def test_noise_has_the_requested_standard_deviation():
    x = np.zeros((64, 1, 28, 28), np.float32)
    out = augmentations.build("noise", std=0.5)(x, rng())
    assert abs(out.std() - 0.5) < 0.01 and abs(out.mean()) < 0.01


def test_cutout_fills_exactly_one_clipped_size_by_size_square_per_image():
    size, n = 5, 200
    x = np.ones((n, 2, 12, 12), np.float32)
    out = Cutout(size=size, fill=0.0)(x, rng())
    assert set(np.unique(out)) == {0.0, 1.0}
    np.testing.assert_array_equal(out[:, 0], out[:, 1])  # the same square in every channel
    for image in out[:, 0] == 0.0:
        rows, cols = np.nonzero(image)
        top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        assert image.sum() == (bottom - top) * (right - left)  # a filled rectangle
        for low, high in ((top, bottom), (left, right)):
            touches_border = low == 0 or high == 12
            assert high - low == size or (touches_border and high - low < size)
    sides = {(image.any(axis=1).sum()) for image in out[:, 0] == 0.0}
    assert size in sides and min(sides) < size  # interior squares and clipped ones both occur


def test_cutout_default_fill_is_the_batch_minimum():
    x = batch()
    out = Cutout(size=4)(x, rng())
    changed = out != x
    assert changed.any() and np.all(out[changed] == x.min())


# ---- the pipeline ----


def test_augmenter_applies_steps_in_order():
    x = batch()
    steps = [Shift(max_pixels=2), Cutout(size=4)]
    generator = rng(3)
    by_hand = steps[1](steps[0](x, generator), generator)
    np.testing.assert_array_equal(Augmenter(steps)(x, rng(3)), by_hand)


def test_augmenter_p_0_changes_nothing_and_p_1_changes_every_sample():
    x = batch(n=32)
    untouched = Augmenter([("noise", {"std": 0.1})], p=0.0)(x, rng())
    np.testing.assert_array_equal(untouched, x)
    assert not np.shares_memory(untouched, x)
    everything = Augmenter([("noise", {"std": 0.1})], p=1.0)(x, rng())
    assert (everything != x).any(axis=(1, 2, 3)).all()


def test_augmenter_p_augments_about_that_fraction_of_samples():
    x = batch(n=1000, size=4)
    before = x.copy()
    out = Augmenter([("noise", {})], p=0.3)(x, rng())
    changed = (out != x).any(axis=(1, 2, 3))
    assert 0.25 < changed.mean() < 0.35
    np.testing.assert_array_equal(out[~changed], x[~changed])
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize(
    "spec",
    [
        ["shift", "rotate"],
        {"shift": {"max_pixels": 3}, "rotate": {"max_degrees": 15}},
        {"shift": {"max_pixels": 3}, "rotate": None},
    ],
)
def test_build_augmenter_accepts_names_and_mappings(spec):
    augmenter = build_augmenter(spec, p=0.5)
    assert [type(step).__name__ for step in augmenter.steps] == ["Shift", "Rotate"]
    assert augmenter.p == 0.5
    if isinstance(spec, dict):
        assert augmenter.steps[0].max_pixels == 3
    assert augmenter(batch(), rng()).shape == batch().shape


def test_build_augmenter_accepts_hydra_containers():
    spec = OmegaConf.create({"shift": {"max_pixels": 3}, "noise": None})
    augmenter = build_augmenter(spec)
    assert [type(step).__name__ for step in augmenter.steps] == ["Shift", "Noise"]
    assert augmenter.steps[0].max_pixels == 3
    assert len(build_augmenter(OmegaConf.create(["shift", "cutout"])).steps) == 2


def test_build_augmenter_single_name_and_nothing():
    assert [type(s).__name__ for s in build_augmenter("elastic").steps] == ["Elastic"]
    for nothing in (None, [], {}, ""):
        assert build_augmenter(nothing) is None


def test_build_augmenter_rejects_unknown_names_with_a_close_match():
    with pytest.raises(ConfigError, match=r"unknown augmentation 'rotat' \(steps=rotat\)"
                       r"; did you mean: rotate\?") as err:  # fmt: skip
        build_augmenter(["shift", "rotat"])
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"shift": {"max_pixel": 2}}, r"augmentation 'shift': .*max_pixel.*max_pixels, fill"),
        ({"shift": 3}, r"build_augmenter: spec\.shift must be a mapping of hyperparameters"),
        ([1, 2], r"build_augmenter: spec must be a list of augmentation names or a mapping"),
    ],
)
def test_build_augmenter_rejects_malformed_specs(spec, message):
    with pytest.raises(ConfigError, match=message):
        build_augmenter(spec)


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("rotate", {"max_degrees": -5}, "Rotate: max_degrees must be >= 0; got -5"),
        ("shift", {"max_pixels": -1}, "Shift: max_pixels must be >= 0; got -1"),
        ("shift", {"max_pixels": 1.5}, "Shift: max_pixels must be an integer; got 1.5"),
        ("cutout", {"size": -8}, "Cutout: size must be >= 0; got -8"),
        ("noise", {"std": -0.1}, "Noise: std must be >= 0; got -0.1"),
        ("noise", {"std": "big"}, "Noise: std must be a finite number; got 'big'"),
        ("elastic", {"sigma": 0}, "Elastic: sigma must be > 0; got 0"),
        ("elastic", {"alpha": float("nan")}, "Elastic: alpha must be a finite number"),
        ("scale", {"min_scale": 0}, "Scale: min_scale must be > 0; got 0"),
        (
            "scale",
            {"min_scale": 1.2, "max_scale": 1.1},
            "Scale: min_scale must be <= max_scale; got 1.2 > 1.1",
        ),
        ("affine", {"max_pixels": -2}, "Affine: max_pixels must be >= 0; got -2"),
        ("rotate", {"mode": "cubic"}, "Rotate: mode must be one of: bilinear, nearest"),
        ("rotate", {"fill": "black"}, "Rotate: fill must be a finite number"),
    ],
)
def test_bad_hyperparameters_raise_one_line_config_errors(name, kwargs, message):
    with pytest.raises(ConfigError) as err:
        augmentations.build(name, **kwargs)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_bad_probability_is_a_config_error(p):
    with pytest.raises(ConfigError, match=rf"Augmenter: p must be .*; got {p}"):
        build_augmenter(["shift"], p=p)
