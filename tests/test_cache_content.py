"""The image cache and the data fingerprint follow what the files hold (issue 28, items 1
and 12): other pixels under the same names, a repaired image, a FIFO named by a CSV row."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_FLAGS
from fixtures import corrupt_image, write_csv_dataset, write_isic
from PIL import Image

from ssl_bench.cli.main import main
from ssl_bench.data.cache import load_images
from ssl_bench.data.datasets.base import ImageDataset
from ssl_bench.data.images import decode_image
from ssl_bench.training.contract import check_config
from ssl_bench.training.prepare import prepare

ROOT = Path(__file__).resolve().parents[1]
#: A run that names a FIFO must end long before this (it hung for over 10 minutes).
HANG_GUARD_S = 120
CSV_OPTIONS = {"csv": "labels.csv", "label_column": "label", "group_column": "patient"}


def _blacken(files: list[Path]) -> None:
    """Overwrite every image with a black one of the same name (format from the suffix)."""
    for path in files:
        with Image.open(path) as image:
            size, mode = image.size, image.mode
        Image.new(mode, size, 0).save(path)


def _copy(fixture_root: Path, to: Path) -> Path:
    shutil.copytree(fixture_root, to)
    return to


def _prepare(root: Path, cache: Path, **overrides):
    settings = dict(dataset="isic", data_root=str(root), cache_dir=str(cache),
                    backbone="test_resnet", image_size=16, labeled=0.5)
    return prepare(check_config(**{**settings, **overrides}), quiet=True)


def _run(tmp_path: Path, *argv: str) -> int:
    return main(["run", "--cache-dir", str(tmp_path / "cache"), *TINY_FLAGS, *argv])


def test_other_pixels_under_the_same_names_are_decoded_again_end_to_end(tmp_path, capsys):
    """(a) A black copy of an ISIC folder, same --cache-dir: no reuse, another fingerprint."""
    real = write_isic(tmp_path / "isic", n_per_class=8, size=24).root
    black = _copy(real, tmp_path / "isic-black")
    _blacken(sorted((black / "ISIC2018_Task3_Training_Input").glob("*.jpg")))
    common = ["--method", "supervised", "--dataset", "isic", "--labeled", "0.5"]
    assert _run(tmp_path, *common, "--data-root", str(real), "--output",
                str(tmp_path / "a")) == 0
    capsys.readouterr()
    assert _run(tmp_path, *common, "--data-root", str(black), "--output",
                str(tmp_path / "b")) == 0
    assert "using the decoded-image cache" not in capsys.readouterr().err
    a, b = (json.loads((tmp_path / run / "config.json").read_text())["dataset"]
            for run in ("a", "b"))
    assert b["images"]["built_now"] is True and a["images"]["path"] != b["images"]["path"]
    assert a["fingerprint"] != b["fingerprint"]
    assert a["split_fingerprint"] == b["split_fingerprint"]  # same ids and labels
    capsys.readouterr()
    assert _run(tmp_path, *common, "--data-root", str(black), "--output",
                str(tmp_path / "c")) == 0  # unchanged files: the cache is used
    assert "using the decoded-image cache" in capsys.readouterr().err


def test_other_pixels_are_decoded_again_through_prepare(tmp_path):
    """(a) The pixels a run trains on are the files' current ones."""
    real = write_isic(tmp_path / "isic", n_per_class=8, size=24).root
    black = _copy(real, tmp_path / "isic-black")
    _blacken(sorted((black / "ISIC2018_Task3_Training_Input").glob("*.jpg")))
    first = _prepare(real, tmp_path / "cache")
    second = _prepare(black, tmp_path / "cache")
    assert second.cache["built_now"] is True
    assert np.asarray(first.images.array).any() and not np.asarray(second.images.array).any()
    assert first.dataset.fingerprint() != second.dataset.fingerprint()
    assert first.split.fingerprint == second.split.fingerprint


def test_a_csv_data_set_with_other_pixels_is_decoded_again(tmp_path):
    """(b) The same for the bring-your-own CSV data set."""
    real = write_csv_dataset(tmp_path / "csv", n=40, size=16).root
    black = _copy(real, tmp_path / "csv-black")
    _blacken(sorted((black / "imgs").glob("*.png")))
    runs = [_prepare(root, tmp_path / "cache", dataset="csv", dataset_options=CSV_OPTIONS)
            for root in (real, black)]
    assert runs[1].cache["built_now"] is True and runs[0].cache["path"] != runs[1].cache["path"]
    assert not np.asarray(runs[1].images.array).any()
    assert runs[0].dataset.fingerprint() != runs[1].dataset.fingerprint()
    again = _prepare(black, tmp_path / "cache", dataset="csv", dataset_options=CSV_OPTIONS)
    assert again.cache["built_now"] is False
    assert again.dataset.fingerprint() == runs[1].dataset.fingerprint()


def test_decoding_every_step_records_the_content_fingerprint_too(tmp_path):
    """(a, b) --image-cache false: the fingerprint follows the files as well."""
    real = write_csv_dataset(tmp_path / "csv", n=40, size=16).root
    black = _copy(real, tmp_path / "csv-black")
    _blacken(sorted((black / "imgs").glob("*.png")))
    prints = [_prepare(root, tmp_path / "cache", dataset="csv", dataset_options=CSV_OPTIONS,
                       image_cache=False).dataset.fingerprint() for root in (real, black)]
    cached = _prepare(real, tmp_path / "cache", dataset="csv", dataset_options=CSV_OPTIONS)
    assert prints[0] != prints[1] and prints[0] == cached.dataset.fingerprint()


def _bmp_dataset(folder: Path, n: int = 6) -> ImageDataset:
    """BMP files: their size depends on the image's dimensions only, not its pixels."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    files = []
    for i in range(n):
        path = folder / f"img_{i}.bmp"
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(path)
        files.append(path)
    return ImageDataset(name="bmp", ids=[p.stem for p in files], labels=np.arange(n) % 2,
                        class_names=["a", "b"], kind="single", channels=3, files=files,
                        sources=[f"list.csv row {i + 2}" for i in range(n)])


def test_same_size_and_mtime_but_other_bytes_are_detected(tmp_path):
    """(c) Only a digest of the bytes tells this change apart: size and mtime are equal."""
    dataset = _bmp_dataset(tmp_path / "img")
    first = load_images(dataset, 8, 3, tmp_path / "cache", quiet=True)
    victim = dataset.files[2]
    before = victim.stat()
    Image.fromarray(np.full((12, 12, 3), 7, np.uint8)).save(victim)
    os.utime(victim, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = victim.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    second = load_images(dataset, 8, 3, tmp_path / "cache", quiet=True)
    assert second.built and second.path != first.path
    np.testing.assert_array_equal(second.array[2], decode_image(victim, 8, 3))
    assert first.content.digest != second.content.digest


def test_a_repaired_image_is_used_after_skip_bad_images(tmp_path):
    """(d) Skipped as unreadable, then fixed: the next run decodes it and trains on it."""
    fixture = write_isic(tmp_path / "isic", n_per_class=8, size=24)
    victim = fixture.ids[5]
    original = fixture.file_of(victim).read_bytes()
    corrupt_image(fixture.file_of(victim))
    skipped = _prepare(fixture.root, tmp_path / "cache", skip_bad_images=True)
    assert [b.id for b in skipped.bad_images] == [victim]
    assert victim not in {*skipped.split.train, *skipped.split.val, *skipped.split.test}
    fixture.file_of(victim).write_bytes(original)  # "fix the files"
    repaired = _prepare(fixture.root, tmp_path / "cache", skip_bad_images=True)
    assert repaired.bad_images == [] and repaired.cache["built_now"] is True
    assert victim in {*repaired.split.train, *repaired.split.val, *repaired.split.test}
    row = repaired.dataset.rows([victim])[0]
    np.testing.assert_array_equal(np.asarray(repaired.images.array[row]),
                                  decode_image(fixture.file_of(victim), 16, 3))
    assert _prepare(fixture.root, tmp_path / "cache").bad_images == []  # no flag needed now
    assert skipped.dataset.fingerprint() != repaired.dataset.fingerprint()


def test_a_missing_image_that_appears_is_used(tmp_path):
    """(d) The same for a file that was missing when the cache was built."""
    fixture = write_isic(tmp_path / "isic", n_per_class=8, size=24)
    victim = fixture.ids[3]
    moved = fixture.file_of(victim).rename(tmp_path / "away.jpg")
    assert [b.reason for b in _prepare(fixture.root, tmp_path / "cache",
                                       skip_bad_images=True).bad_images] == ["missing file"]
    moved.rename(fixture.file_of(victim))
    assert _prepare(fixture.root, tmp_path / "cache", skip_bad_images=True).bad_images == []


def _fifo_csv(tmp_path: Path) -> tuple[Path, str, int]:
    """A CSV data set whose row for ``imgs/img_04.png`` names a FIFO; (root, id, row)."""
    fixture = write_csv_dataset(tmp_path / "csv", n=40, size=16)
    victim = fixture.ids[4]
    fixture.file_of(victim).unlink()
    os.mkfifo(fixture.file_of(victim))
    return fixture.root, victim, fixture.row_of(victim)


def _cli(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``ssl-bench run`` in a child process, killed if it hangs (as it did on a FIFO)."""
    command = [sys.executable, "-m", "ssl_bench", "run", "--cache-dir", str(tmp_path / "c"),
               "--quiet", *TINY_FLAGS, *argv]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    try:
        return subprocess.run(command, capture_output=True, text=True, env=env,
                              timeout=HANG_GUARD_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"ssl-bench run hung on a FIFO (killed after {HANG_GUARD_S} s)")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
@pytest.mark.parametrize("image_cache", ["true", "false"])
def test_a_csv_row_naming_a_fifo_is_a_one_line_error(tmp_path, image_cache):
    """(e) Refused at once, naming the file and its row; nothing is written."""
    root, victim, row = _fifo_csv(tmp_path)
    out = tmp_path / "run"
    result = _cli(tmp_path, "--dataset", "csv", "--data-root", str(root), "--csv",
                  "labels.csv", "--label-column", "label", "--group-column", "patient",
                  "--image-cache", image_cache, "--output", str(out))
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    error = next(line for line in lines if "FIFO" in line)
    assert victim in error and f"row {row}" in error and "--skip-bad-images" in error
    assert "Traceback" not in result.stderr and not out.exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_skip_bad_images_leaves_a_fifo_out(tmp_path):
    """(e) With --skip-bad-images the FIFO is reported and the run trains without it."""
    root, victim, _ = _fifo_csv(tmp_path)
    out = tmp_path / "run"
    result = _cli(tmp_path, "--dataset", "csv", "--data-root", str(root), "--csv",
                  "labels.csv", "--label-column", "label", "--group-column", "patient",
                  "--method", "supervised", "--labeled", "0.5", "--skip-bad-images",
                  "--output", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((out / "skipped_images.json").read_text())
    assert [entry["id"] for entry in report["images"]] == [victim]
    assert "FIFO" in report["images"][0]["reason"]


def test_ctrl_c_while_decoding_stops_after_the_running_chunks(tmp_path, monkeypatch):
    """(e, SIGINT) An interrupt cancels the chunks not yet started instead of decoding
    every remaining image first."""
    import ssl_bench.data.images as images_module

    path = tmp_path / "one.png"
    Image.new("RGB", (8, 8), 99).save(path)
    n = 6 * 64  # six chunks of CHUNK images, one worker
    dataset = ImageDataset(name="same", ids=[f"i{i}" for i in range(n)], labels=np.zeros(n),
                           class_names=["a", "b"], kind="single", channels=3,
                           files=[path] * n)
    opened = []
    real_open = images_module.Image.open

    def interrupted(*args, **kwargs):
        opened.append(1)
        if len(opened) == 1:
            raise KeyboardInterrupt
        return real_open(*args, **kwargs)

    monkeypatch.setattr(images_module.Image, "open", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_images(dataset, 8, 3, tmp_path / "cache", quiet=True, workers=1)
    assert len(opened) <= 2 * 64, f"{len(opened)} of {n} images decoded after Ctrl-C"
