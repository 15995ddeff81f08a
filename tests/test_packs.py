"""Data packs (issue 32, item 4): a data set's decoded images and splits in one file that a
run reads instead of the image files, with the same split, fingerprint and results."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_FLAGS
from fixtures import refused_in_one_line, write_chestxray14, write_isic
from PIL import Image

from ssl_bench.cli.main import main
from ssl_bench.data.cache import load_images, with_content
from ssl_bench.data.packs import pack_info, read_pack
from ssl_bench.data.splits import make_split
from ssl_bench.plugins.options import coerce_options
from ssl_bench.plugins.registry import create_dataset, dataset_option_specs
from ssl_bench.training.contract import run_outcome

WRITERS = {"isic": lambda root: write_isic(root, n_per_class=4, size=24),
           "chestxray14": lambda root: write_chestxray14(root, n_patients=8, size=24)}


def _pack(tmp_path: Path, name: str, *extra: str, size: int = 16) -> tuple[Path, Path]:
    root = WRITERS[name](tmp_path / name).root
    pack = tmp_path / f"{name}.sslpack"
    assert main(["pack", "--dataset", name, "--data-root", str(root), "--image-size",
                 str(size), "--cache-dir", str(tmp_path / "cache"), "-o", str(pack),
                 *extra]) == 0
    return root, pack


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_a_pack_gives_back_the_data_set_its_pixels_and_its_splits(tmp_path, name):
    root, pack = _pack(tmp_path, name)
    original = create_dataset(name, root=root)
    cached = load_images(original, 16, original.channels, tmp_path / "cache", quiet=True)
    original = with_content(original, cached.content)
    packed, options = read_pack(pack)
    assert options == coerce_options(dataset_option_specs(name), {}, name)
    assert packed.name == original.name
    assert packed.ids == original.ids and packed.class_names == original.class_names
    assert packed.labels.dtype == original.labels.dtype
    np.testing.assert_array_equal(packed.labels, original.labels)
    assert packed.groups.dtype == object and list(packed.groups) == list(original.groups)
    assert packed.fingerprint() == original.fingerprint()  # the files' content travels
    np.testing.assert_array_equal(packed.load(16, original.channels), cached.array)
    for seed in (0, 1):
        made = [make_split(d.without_content(), seed, 1.0, (0.6, 0.2, 0.2), grouped=True)
                for d in (original, packed)]
        assert made[0].to_dict() == made[1].to_dict()
    info = pack_info(pack)
    assert (info.dataset, info.images, info.image_size, info.splits) == (
        name, len(original), 16, ())


def test_a_run_on_the_pack_equals_a_run_on_the_files(tmp_path):
    root, pack = _pack(tmp_path, "isic")
    runs = {}
    for where, data_root in (("files", root), ("pack", pack)):
        runs[where] = tmp_path / where
        assert main(["run", "--method", "mt", "--dataset", "isic", "--data-root",
                     str(data_root), *TINY_FLAGS, "--labeled", "0.3", "--cache-dir",
                     str(tmp_path / "cache"), "-o", str(runs[where]), "--quiet"]) == 0
    assert run_outcome(runs["files"]) == run_outcome(runs["pack"])  # metrics and history
    configs = [json.loads((runs[w] / "config.json").read_text()) for w in ("files", "pack")]
    assert configs[0]["dataset"]["fingerprint"] == configs[1]["dataset"]["fingerprint"]
    assert configs[1]["dataset"]["images"]["mode"] == "data pack"
    assert (runs["files"] / "split.json").read_text() == (runs["pack"] / "split.json").read_text()


def test_a_split_file_travels_in_the_pack(tmp_path):
    root = write_isic(tmp_path / "isic", n_per_class=6, size=24).root
    split = tmp_path / "seed3.json"
    assert main(["split", "--dataset", "isic", "--data-root", str(root), "--seed", "3",
                 "--labeled", "0.5", "-o", str(split)]) == 0
    pack = tmp_path / "isic.sslpack"
    assert main(["pack", "--dataset", "isic", "--data-root", str(root), "--image-size", "16",
                 "--cache-dir", str(tmp_path / "cache"), "--split", str(split), "-o",
                 str(pack)]) == 0
    assert pack_info(pack).splits == ("seed3.json",)
    out = tmp_path / "run"
    assert main(["run", "--method", "supervised", "--dataset", "isic", "--data-root",
                 str(pack), *TINY_FLAGS, "--split", f"{pack}#seed3.json", "-o",
                 str(out), "--quiet"]) == 0
    assert json.loads((out / "split.json").read_text())["labeled"] == json.loads(
        split.read_text())["labeled"]


def _replace_member(pack: Path, member: str, data: bytes) -> None:
    with zipfile.ZipFile(pack) as archive:
        items = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(pack, "w") as archive:
        for info, content in items:
            archive.writestr(info, data if info.filename == member else content)


def test_bad_packs_and_mismatched_runs_are_one_line_errors(tmp_path, capsys):
    root, pack = _pack(tmp_path, "isic")
    run = ["run", "--method", "supervised", "--data-root", str(pack), *TINY_FLAGS,
           "-o", str(tmp_path / "r"), "--quiet"]
    refused_in_one_line(capsys, [*run, "--dataset", "isic", "--image-size", "32"],
                        f"--data-root {pack} is a pack of isic at 16 px", "needs 32 px",
                        "--image-size 32")
    refused_in_one_line(capsys, [*run, "--dataset", "chestxray14"],
                        "is a pack of data set 'isic', not 'chestxray14'")
    refused_in_one_line(capsys, [*run, "--dataset", "isic", "--split", f"{pack}#x.json"],
                        "carries no split file 'x.json'")
    refused_in_one_line(capsys, ["pack", "--dataset", "isic", "--data-root", str(root),
                                 "--image-size", "16", "-o", str(pack)],
                        "exists; pass --overwrite")
    big = tmp_path / "big.sslpack"
    refused_in_one_line(capsys, ["pack", "--dataset", "isic", "--data-root", str(root),
                                 "--image-size", "16", "--cache-dir", str(tmp_path / "cache"),
                                 "--max-mib", "0.001", "-o", str(big)],
                        "over --max-mib 0.001", "nothing was written")
    assert not big.exists() and not list(tmp_path.glob("big.sslpack*"))
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buffer, format="PNG")  # a valid image, other pixels
    _replace_member(pack, "images/000000.png", buffer.getvalue())
    refused_in_one_line(capsys, [*run, "--dataset", "isic"],
                        "do not match the checksum it was written with")
    refused_in_one_line(capsys, ["pack", "--dataset", "digits", "--image-size", "16", "-o",
                                 str(tmp_path / "digits.sslpack")],
                        "data set 'digits' is held in memory", "needs no pack")
