"""``ssl-bench pack``: a data set's decoded images at one size, and split files, in one
file that a run reads with ``--data-root PACK`` where the original images are not."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ssl_bench.cli.flags import (
    RUN_FLAGS,
    Parser,
    add_dataset_options,
    add_flags,
    collect_options,
    dataset_and_plugins,
)
from ssl_bench.config.resolve import resolve_config
from ssl_bench.config.run_config import RunConfig
from ssl_bench.core.errors import UserError

#: Run settings that decide what a pack holds (the rest do not touch the pixels).
PACK_SETTINGS = {"data_root", "image_size", "pretrained", "weights", "skip_bad_rows",
                 "skip_bad_images", "cache_dir", "workers"}
PACK_FLAGS = [f for f in RUN_FLAGS if f[1] in PACK_SETTINGS]
MIB = 2**20


def _parser(dataset: str) -> Parser:
    parser = Parser(prog="ssl-bench pack", description=(
        "Pack a data set's decoded images at one image size (lossless PNG), its ids, "
        "labels and groups, and split files into one file. A run on another machine "
        "reads it with --data-root PACK (and --split PACK#NAME): the same split, the "
        "same data fingerprint, no image files needed."))
    parser.add_argument("--dataset", default=RunConfig.dataset, help="data set name")
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE")
    parser.add_argument("--output", "-o", required=True, help="pack file to write "
                        "(e.g. isic-64px.sslpack)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file")
    parser.add_argument("--split", action="append", default=[], metavar="FILE",
                        help="a split file of this data set to carry (repeatable; a run "
                        "names it as --split PACK#FILENAME)")
    parser.add_argument("--max-mib", type=float, metavar="MIB",
                        help="refuse a pack larger than this (a device that takes 64 MiB)")
    add_flags(parser, PACK_FLAGS)
    add_dataset_options(parser, dataset)
    return parser


def command_pack(argv: Sequence[str]) -> int:
    """Load, decode (through the image cache), check the splits, write, report."""
    from rich.console import Console

    dataset = dataset_and_plugins("ssl-bench pack", argv)
    args = _parser(dataset).parse_args(argv)
    output = Path(args.output)
    if output.exists() and not args.overwrite:
        raise UserError(f"{output} exists; pass --overwrite to replace it")
    if args.max_mib is not None and args.max_mib <= 0:
        raise UserError(f"--max-mib must be positive, got {args.max_mib:g}")
    values = {k: v for k, v in vars(args).items()
              if v is not None and ":" not in k and k in PACK_SETTINGS | {"dataset"}}
    values["dataset_options"] = collect_options(args, "dataset")
    config = resolve_config({}, values)
    from ssl_bench.core.provenance import code_digest, git_commit, package_versions
    from ssl_bench.data.cache import load_images, with_content
    from ssl_bench.data.packs import write_pack
    from ssl_bench.data.splits import check_split, load_split
    from ssl_bench.training.prepare import input_channels, load_dataset

    console = Console(stderr=True)
    started = time.perf_counter()
    dataset = load_dataset(config)  # (coerces and records the data set's options)
    if dataset.files is None:
        raise UserError(f"data set {dataset.name!r} is held in memory (no image files); it "
                        "needs no pack")
    channels = input_channels(config, dataset)
    cached = load_images(dataset, config.image_size, channels,
                         Path(config.cache_dir) if config.cache_dir else None,
                         skip_bad=config.skip_bad_images, workers=config.workers or None,
                         console=console, quiet=not console.is_terminal)
    assert cached.content is not None
    dataset, images = with_content(dataset, cached.content), np.asarray(cached.array)
    if cached.bad:  # --skip-bad-images: left out of the pack (its fingerprint is its own)
        bad = {b.id for b in cached.bad}
        keep = np.array([i for i, image_id in enumerate(dataset.ids) if image_id not in bad],
                        dtype=np.int64)
        dataset, images = dataset.subset(keep), images[keep]
        console.print(f"left {len(bad)} bad image(s) out of the pack", highlight=False)
    for split in args.split:
        check_split(load_split(split), dataset.without_content())
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress("[bold]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=console,
                  disable=not console.is_terminal) as progress:
        task = progress.add_task(f"packing {dataset.name} as PNG", total=len(dataset))
        path = write_pack(output, dataset, images, options=config.dataset_options,
                          splits=args.split,
                          made_by={"versions": package_versions(), "git": git_commit(),
                                   "code": code_digest()},
                          advance=lambda n: progress.advance(task, n))
    size = path.stat().st_size
    if args.max_mib is not None and size > args.max_mib * MIB:
        path.unlink()
        raise UserError(f"the pack would be {size / MIB:.3g} MiB, over --max-mib "
                        f"{args.max_mib:g}; nothing was written (pack at a smaller "
                        "--image-size, or a subset of the data)")
    print(f"wrote {path}: {len(dataset):,} {dataset.name} images at {config.image_size} px, "
          f"{channels} channel(s), {size / MIB:.1f} MiB ({size / images.nbytes:.0%} of the "
          f"decoded {images.nbytes / MIB:.1f} MiB), {len(args.split)} split file(s), data "
          f"fingerprint {dataset.fingerprint()}, in {time.perf_counter() - started:.1f} s")
    return 0
