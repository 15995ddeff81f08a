"""The decoded-image cache and image decoding."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ssl_bench.core.errors import UserError
from ssl_bench.data.cache import load_images
from ssl_bench.data.datasets.base import ImageDataset
from ssl_bench.data.images import ArrayImages, DecodingImages, decode_image


def _write_images(folder: Path, n: int = 12) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        pixels = rng.integers(0, 256, (20 + i, 30, 3), dtype=np.uint8)
        mode, suffix = [("RGB", ".jpg"), ("L", ".png"), ("RGBA", ".png"), ("RGB", ".png")][i % 4]
        image = Image.fromarray(pixels).convert(mode)
        path = folder / f"img_{i:03d}{suffix}"
        image.save(path)
        paths.append(path)
    return paths


def _dataset(paths: list[Path], name: str = "fixture") -> ImageDataset:
    n = len(paths)
    return ImageDataset(
        name=name, ids=[p.stem for p in paths], labels=np.arange(n) % 3,
        class_names=["a", "b", "c"], kind="single", channels=3, files=paths,
        sources=[f"labels.csv row {i + 2}" for i in range(n)],
    )


@pytest.mark.parametrize("channels", [1, 3])
def test_decode_modes_and_sizes(tmp_path, channels):
    for path in _write_images(tmp_path, 4):
        out = decode_image(path, 16, channels)
        assert out.shape == (16, 16, channels) and out.dtype == np.uint8


def test_cache_is_built_once_then_memory_mapped(tmp_path):
    paths = _write_images(tmp_path / "img")
    dataset = _dataset(paths)
    first = load_images(dataset, 16, 3, tmp_path / "cache", quiet=True)
    assert first.built and first.path is not None and first.path.suffix == ".npy"
    for row, path in enumerate(paths):
        np.testing.assert_array_equal(first.array[row], decode_image(path, 16, 3))
    manifest = json.loads(first.path.with_suffix(".json").read_text())
    assert manifest["shape"] == [12, 16, 16, 3] and manifest["bad"] == []
    second = load_images(dataset, 16, 3, tmp_path / "cache", quiet=True)
    assert not second.built and isinstance(second.array, np.memmap)
    np.testing.assert_array_equal(np.asarray(second.array), np.asarray(first.array))
    other = load_images(dataset, 8, 1, tmp_path / "cache", quiet=True)
    assert other.built and other.path != first.path and other.array.shape == (12, 8, 8, 1)


def test_a_cache_whose_key_or_size_does_not_match_is_rebuilt(tmp_path):
    dataset = _dataset(_write_images(tmp_path / "img"))
    built = load_images(dataset, 16, 3, tmp_path / "cache", quiet=True)
    manifest = built.path.with_suffix(".json")
    record = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**record, "key": "something else"}))
    assert load_images(dataset, 16, 3, tmp_path / "cache", quiet=True).built
    np.save(built.path, np.zeros((3, 16, 16, 3), np.uint8))  # truncated array
    assert load_images(dataset, 16, 3, tmp_path / "cache", quiet=True).built
    changed = _dataset(dataset.files)
    changed.labels = (changed.labels + 1) % 3  # another data set version: another key
    assert load_images(changed, 16, 3, tmp_path / "cache", quiet=True).path != built.path


def test_a_cache_whose_pixels_were_overwritten_is_rebuilt_with_a_warning(tmp_path):
    """Header and manifest intact, pixel bytes changed: the checksum catches it."""
    import io

    from rich.console import Console

    from ssl_bench.data.cache import file_checksum

    dataset = _dataset(_write_images(tmp_path / "img"))
    built = load_images(dataset, 16, 3, tmp_path / "cache", quiet=True)
    original = np.array(built.array)
    manifest = json.loads(built.path.with_suffix(".json").read_text())
    assert manifest["checksum"] == {"xxh3_64": file_checksum(built.path)}
    corrupt = np.load(built.path, mmap_mode="r+")
    corrupt[:] = 0  # overwrite the pixel data only; the .npy header stays valid
    corrupt.flush()
    del corrupt
    assert np.load(built.path).shape == original.shape  # still looks like a good cache
    log = io.StringIO()
    again = load_images(dataset, 16, 3, tmp_path / "cache",
                        console=Console(file=log, width=300))
    assert again.built, "a corrupted cache must be rebuilt, not used"
    assert "does not match its checksum" in log.getvalue()
    np.testing.assert_array_equal(np.asarray(again.array), original)
    # A cache from before checksums (no checksum in its manifest) is rebuilt too.
    path = again.path.with_suffix(".json")
    record = json.loads(path.read_text())
    del record["checksum"]
    path.write_text(json.dumps(record))
    log = io.StringIO()
    assert load_images(dataset, 16, 3, tmp_path / "cache",
                       console=Console(file=log, width=300)).built
    assert "has no checksum" in log.getvalue()
    assert not load_images(dataset, 16, 3, tmp_path / "cache", quiet=True).built


def test_an_interrupted_build_leaves_no_cache_that_looks_complete(tmp_path, monkeypatch):
    dataset = _dataset(_write_images(tmp_path / "img"))
    import ssl_bench.data.cache as cache_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_module, "_decode_into", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_images(dataset, 16, 3, tmp_path / "cache", quiet=True)
    assert list((tmp_path / "cache").iterdir()) == []
    monkeypatch.undo()
    assert load_images(dataset, 16, 3, tmp_path / "cache", quiet=True).built


@pytest.mark.parametrize("problem", ["missing", "corrupt"])
def test_bad_images_name_the_file_and_row(tmp_path, problem):
    paths = _write_images(tmp_path / "img")
    if problem == "missing":
        paths[5].unlink()
    else:
        paths[5].write_bytes(b"not an image at all")
    dataset = _dataset(paths)
    with pytest.raises(UserError) as info:
        load_images(dataset, 16, 3, tmp_path / "cache", quiet=True)
    message = str(info.value)
    assert str(paths[5]) in message and "labels.csv row 7" in message
    assert ("missing file" if problem == "missing" else "unreadable image") in message
    assert "--skip-bad-images" in message
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
    skipped = load_images(dataset, 16, 3, tmp_path / "cache", quiet=True, skip_bad=True)
    assert [b.id for b in skipped.bad] == [paths[5].stem]
    assert not skipped.array[5].any()
    again = load_images(dataset, 16, 3, tmp_path / "cache", quiet=True, skip_bad=True)
    assert not again.built and [b.id for b in again.bad] == [paths[5].stem]
    with pytest.raises(UserError, match="row 7"):
        load_images(dataset, 16, 3, tmp_path / "cache", quiet=True)


def test_decoding_every_step_gives_the_cached_pixels(tmp_path):
    paths = _write_images(tmp_path / "img")
    cached = ArrayImages(load_images(_dataset(paths), 16, 3, tmp_path / "c", quiet=True).array)
    decoding = DecodingImages(paths, 16, 3)
    rows = np.array([3, 0, 7, 7])
    np.testing.assert_array_equal(cached.take(rows).numpy(), decoding.take(rows).numpy())


def test_in_memory_datasets_bypass_the_cache(tmp_path):
    from ssl_bench.plugins.registry import create_dataset

    result = load_images(create_dataset("digits"), 12, 1, tmp_path / "cache", quiet=True)
    assert result.path is None and result.array.shape == (1797, 12, 12, 1)
    assert not (tmp_path / "cache").exists()
