"""The on-disk array cache: atomic writes, round trips, keys, damaged entries."""

import numpy as np

from toolkit.data.cache import cache_key, cache_path, fingerprint, load_arrays, save_arrays


def test_arrays_round_trip_with_their_dtypes(tmp_path):
    arrays = {
        "x": np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
        "y": np.array([3, 7], dtype=np.int64),
        "names": np.array(["zero", "one"], dtype=str),
    }
    path = tmp_path / "sub" / "entry.npz"
    save_arrays(path, arrays)
    loaded = load_arrays(path)
    assert loaded.keys() == arrays.keys()
    for name, array in arrays.items():
        assert loaded[name].dtype == array.dtype
        np.testing.assert_array_equal(loaded[name], array)
    assert [p.name for p in path.parent.iterdir()] == ["entry.npz"]  # temp file moved away


def test_missing_and_damaged_entries_read_as_absent(tmp_path):
    assert load_arrays(tmp_path / "absent.npz") is None
    damaged = tmp_path / "damaged.npz"
    save_arrays(damaged, {"x": np.zeros(1000)})
    damaged.write_bytes(damaged.read_bytes()[:100])
    assert load_arrays(damaged) is None


def test_cache_path_uses_the_cache_dir_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv("TOOLKIT_CACHE_DIR", str(tmp_path))
    assert cache_path("MNIST", "abc") == tmp_path / "MNIST-abc.npz"


def test_cache_key_depends_on_root_and_file_stats(tmp_path):
    folder = tmp_path / "MNIST"
    folder.mkdir()
    (folder / "a").write_bytes(b"12")
    stats = fingerprint(folder)
    assert stats == [("a", 2, (folder / "a").stat().st_mtime_ns)]
    key = cache_key(dataset_class="MNIST", root="/x", files=stats)
    assert key == cache_key(dataset_class="MNIST", root="/x", files=stats)
    assert key != cache_key(dataset_class="MNIST", root="/y", files=stats)
    assert key != cache_key(dataset_class="KMNIST", root="/x", files=stats)
    (folder / "a").write_bytes(b"123")
    assert key != cache_key(dataset_class="MNIST", root="/x", files=fingerprint(folder))


def test_fingerprint_of_a_missing_folder_is_empty(tmp_path):
    assert fingerprint(tmp_path / "nothing") == []
