"""Photos as datasets: an ImageFolder tree becomes cached uint8 arrays, resized and
centre-cropped like torchvision's Resize + CenterCrop and normalised per channel; the
torchvision photo datasets fail offline with one line; crops and flips are vectorised."""

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from toolkit.data import build_augmenter, load_dataset
from toolkit.data.augment.photo import crop_and_resize, crop_boxes
from toolkit.data.photos import IMAGENET_NORMALIZATION, load_photo, renormalize
from toolkit.registry import ConfigError


def write_photo(path: Path, colour: tuple[int, int, int], size=(40, 30)) -> None:
    """A photo of one colour with a white square in its centre."""
    pixels = np.zeros((size[1], size[0], 3), np.uint8) + np.array(colour, np.uint8)
    h, w = size[1] // 2, size[0] // 2
    pixels[h - 3 : h + 3, w - 3 : w + 3] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """cat/ (red photos) and dog/ (blue photos), 10 each, PNG and JPEG, several sizes."""
    monkeypatch.setenv("TOOLKIT_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "pets"
    for i in range(10):
        write_photo(root / "cat" / f"{i}.png", (200, 0, 0), (40 + i, 30))
        write_photo(root / "dog" / f"{i}.jpg", (0, 0, 200), (30, 36 + i))
    return root


def test_an_image_folder_is_a_cached_stratified_dataset(folder, tmp_path):
    data = load_dataset("image_folder", root=str(folder), image_size=16, normalize="none")
    assert data.class_names == ["cat", "dog"] and data.num_classes == 2
    assert data.x_train.shape == (16, 3, 16, 16) and data.x_test.shape == (4, 3, 16, 16)
    assert np.bincount(data.y_test).tolist() == [2, 2]  # 20% of each class
    red = data.x_train[data.y_train == 0]
    assert (red[:, 0, 0, 0] > 0.7).all() and (red[:, 2, 0, 0] < 0.1).all()
    assert (
        data.x_train[:, :, 8, 8] > 0.8
    ).all()  # the centre crop keeps the white square (JPEG: ~0.85)
    entries = list((tmp_path / "cache").glob("image_folder-pets-*.npz"))
    assert len(entries) == 1
    before = entries[0].stat().st_mtime_ns
    again = load_dataset("image_folder", root=str(folder), image_size=16, normalize="none")
    np.testing.assert_array_equal(again.x_train, data.x_train)
    assert entries[0].stat().st_mtime_ns == before  # served from the cache


def test_train_and_test_folders_are_used_as_given(tmp_path, monkeypatch):
    monkeypatch.setenv("TOOLKIT_CACHE_DIR", str(tmp_path / "cache"))
    for part, n in (("train", 3), ("val", 2)):
        for name, colour in (("a", (255, 0, 0)), ("b", (0, 255, 0))):
            for i in range(n):
                write_photo(tmp_path / "d" / part / name / f"{i}.png", colour)
    data = load_dataset("image_folder", root=str(tmp_path / "d"), image_size=8)
    assert len(data.y_train) == 6 and len(data.y_test) == 4


def test_photos_are_normalised_per_channel_with_imagenet_statistics(folder):
    raw = load_dataset("image_folder", root=str(folder), image_size=16, normalize="none")
    data = load_dataset("image_folder", root=str(folder), image_size=16)
    assert data.normalization == IMAGENET_NORMALIZATION
    mean, std = (np.array(v, np.float32)[:, None, None] for v in IMAGENET_NORMALIZATION)
    np.testing.assert_allclose(data.x_train, (raw.x_train - mean) / std, rtol=1e-5, atol=1e-5)
    back = renormalize(data.x_train, IMAGENET_NORMALIZATION, None)
    np.testing.assert_allclose(back, raw.x_train, atol=1e-5)


def test_resize_and_centre_crop_match_torchvision(tmp_path):
    transforms = pytest.importorskip("torchvision.transforms")
    rng = np.random.default_rng(0)
    path = tmp_path / "noise.png"
    Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(path)
    ours = load_photo(path, 32, 37)
    pipeline = transforms.Compose([transforms.Resize(37), transforms.CenterCrop(32)])
    theirs = np.asarray(pipeline(Image.open(path).convert("RGB"))).transpose(2, 0, 1)
    assert ours.shape == theirs.shape == (3, 32, 32)
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1  # PIL rounding


@pytest.mark.parametrize(
    "layout,message",
    [
        ({"cat": 2}, "1 class folder"),
        ({"cat": 2, "dog": 0}, r"dog holds no images"),
    ],
)
def test_bad_image_folders_are_one_line_errors(tmp_path, monkeypatch, layout, message):
    monkeypatch.setenv("TOOLKIT_CACHE_DIR", str(tmp_path / "cache"))
    for name, count in layout.items():
        (tmp_path / "d" / name).mkdir(parents=True)
        for i in range(count):
            write_photo(tmp_path / "d" / name / f"{i}.png", (1, 2, 3))
    with pytest.raises(ConfigError, match=message):
        load_dataset("image_folder", root=str(tmp_path / "d"))


def test_missing_root_and_broken_photos_are_named(folder):
    with pytest.raises(ConfigError, match="image_folder: root is not set"):
        load_dataset("image_folder")
    with pytest.raises(ConfigError, match="no such folder"):
        load_dataset("image_folder", root=str(folder / "nowhere"))
    (folder / "dog" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ConfigError, match=r"cannot read image .*broken\.jpg"):
        load_dataset("image_folder", root=str(folder))
    with pytest.raises(ConfigError, match="resize=8 is smaller than image_size=16"):
        load_dataset("image_folder", root=str(folder), image_size=16, resize=8)


@pytest.mark.parametrize(
    "name,folder", [("oxford_pet", "oxford-iiit-pet"), ("flowers102", "flowers-102")]
)
def test_photo_datasets_offline_fail_fast_with_one_line(tmp_path, monkeypatch, name, folder):
    pytest.importorskip("torchvision")
    monkeypatch.setenv("TOOLKIT_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(ConfigError) as err:
        load_dataset(name, root=str(tmp_path), download=False)
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / folder) in message
    assert "download=False" in message and "TOOLKIT_DATA_DIR" in message
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_oxford_pet_target_is_checked():
    with pytest.raises(ConfigError, match="binary, category"):
        load_dataset("oxford_pet", target="breed")


def test_random_resized_crops_follow_their_boxes():
    rng = np.random.default_rng(0)
    boxes = crop_boxes(500, (32, 24), (0.08, 1.0), (3 / 4, 4 / 3), rng)
    top, left, height, width = boxes.T
    assert (top >= 0).all() and (top + height <= 32).all()
    assert (left >= 0).all() and (left + width <= 24).all()
    area = height * width / (32 * 24)
    assert area.min() < 0.2 and area.max() > 0.8
    # a box of the whole image is the identity; a half box is a 2x zoom of its pixels
    x = rng.normal(size=(2, 3, 8, 8)).astype(np.float32)
    whole = np.array([[0, 0, 8, 8], [0, 0, 8, 8]], float)
    np.testing.assert_allclose(crop_and_resize(x, whole), x, atol=1e-6)
    half = np.array([[0, 0, 4, 4], [4, 4, 4, 4]], float)
    zoomed = crop_and_resize(x, half, mode="nearest")
    np.testing.assert_array_equal(zoomed[1, :, ::2, ::2], x[1, :, 4:, 4:])


def test_flips_mirror_a_random_half_and_the_pipeline_is_seeded():
    x = np.random.default_rng(1).normal(size=(400, 3, 6, 6)).astype(np.float32)
    flipped = build_augmenter({"hflip": {"p": 0.5}})(x, np.random.default_rng(0))
    mirrored = (flipped == x[:, :, :, ::-1]).all(axis=(1, 2, 3))
    same = (flipped == x).all(axis=(1, 2, 3))
    assert (mirrored ^ same).all() and 150 < mirrored.sum() < 250
    augment = build_augmenter(["random_resized_crop", "hflip"])
    first = augment(x, np.random.default_rng(7))
    np.testing.assert_array_equal(first, augment(x, np.random.default_rng(7)))
    assert first.shape == x.shape and not np.allclose(first, x)
    with pytest.raises(ConfigError, match="steps.random_resized_crop.min_scale must be <="):
        build_augmenter({"random_resized_crop": {"min_scale": 0.9, "max_scale": 0.5}})


def test_photos_load_without_torch(folder, tmp_path):
    """An image folder needs Pillow only: loading one never imports torch."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom toolkit.data import load_dataset\n"
        f"load_dataset('image_folder', root={str(folder)!r}, image_size=8)\n"
        "print('torch' in sys.modules)\n"
    )
    env = {**os.environ, "TOOLKIT_CACHE_DIR": str(tmp_path / "cache2")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
