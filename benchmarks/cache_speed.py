"""Decoded-image cache versus decoding every step, measured in one run.

Measures on a real data set (default ``../shared/data/isic2018-mini``):
1. the time to build the cache (cold, in a fresh temporary cache folder) and to open it
   again (warm);
2. data-path throughput: images/s of taking a training batch from the cache versus
   decoding and resizing the batch's files;
3. training throughput: images/s of whole training steps (``srcmt``, CPU preset) with the
   cache versus decoding every step.

Prints a table with the ratios and writes JSON (``--json``). Example::

    python benchmarks/cache_speed.py --data-root ../shared/data/isic2018-mini --size 64
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from ssl_bench.config.resolve import resolve_config
from ssl_bench.data.cache import load_images
from ssl_bench.data.images import ArrayImages, DecodingImages
from ssl_bench.training.benchmarking import data_path_throughput, median_seconds
from ssl_bench.training.prepare import load_dataset, prepare
from ssl_bench.training.trainer import Trainer

DEFAULT_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "isic2018-mini"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="isic")
    parser.add_argument("--data-root", default=str(DEFAULT_ROOT))
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=48)
    parser.add_argument("--method", default="srcmt")
    parser.add_argument("--backbone", default="resnet10t")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per mode")
    parser.add_argument("--repeats", type=int, default=20, help="timed batch fetches")
    parser.add_argument("--json", type=Path, help="write the measurements here")
    args = parser.parse_args()
    console = Console()
    results: dict[str, float | int | str] = {
        "dataset": args.dataset, "size": args.size, "batch_size": args.batch_size,
        "torch_threads": torch.get_num_threads(),
    }
    base = dict(dataset=args.dataset, data_root=args.data_root, image_size=args.size,
                batch_size=args.batch_size, method=args.method, backbone=args.backbone,
                iterations=1000, labeled=0.2)
    with tempfile.TemporaryDirectory(prefix="ssl-bench-cache-") as cache_dir:
        config = resolve_config({}, {**base, "cache_dir": cache_dir})
        dataset = load_dataset(config)
        started = time.perf_counter()
        built = load_images(dataset, args.size, dataset.channels, Path(cache_dir), quiet=True)
        results["cache_build_s"] = time.perf_counter() - started
        results["images"] = len(dataset)
        started = time.perf_counter()
        warm = load_images(dataset, args.size, dataset.channels, Path(cache_dir), quiet=True)
        results["cache_open_s"] = time.perf_counter() - started
        assert built.built and not warm.built
        results["cache_mib"] = built.path.stat().st_size / 2**20

        # Data path alone: one training batch of random rows.
        fetch = data_path_throughput(
            ArrayImages(warm.array),
            DecodingImages(dataset.files, args.size, dataset.channels, workers=2),
            len(dataset), args.batch_size, args.repeats)
        results["fetch_cache_img_s"] = fetch["cache_images_per_s"]
        results["fetch_decode_img_s"] = fetch["decode_images_per_s"]

        # Whole training steps, same model and batches, cache vs decoding.
        for mode, use_cache in (("cache", True), ("decode", False)):
            trainer = Trainer(prepare(resolve_config({}, {**base, "cache_dir": cache_dir,
                                                          "image_cache": use_cache}),
                                      quiet=True))
            seconds = median_seconds(trainer.train_step, args.steps, warmup=1)
            results[f"train_{mode}_img_s"] = args.batch_size / seconds
            results[f"train_{mode}_ms_per_step"] = 1000 * seconds

    table = Table(title=f"{args.dataset} at {args.size}px, batch {args.batch_size} "
                  f"({results['images']} images, {results['torch_threads']} torch threads)")
    table.add_column("measurement")
    table.add_column("cache", justify="right")
    table.add_column("decode every step", justify="right")
    table.add_column("ratio", justify="right")
    table.add_row("cache build (cold) / open (warm), s", f"{results['cache_build_s']:.2f} / "
                  f"{results['cache_open_s']:.4f}", "-", "-")
    for label, key in (("batch fetch, images/s", "fetch"), ("training step, images/s", "train")):
        fast, slow = results[f"{key}_cache_img_s"], results[f"{key}_decode_img_s"]
        table.add_row(label, f"{fast:,.0f}", f"{slow:,.0f}", f"{fast / slow:.1f}x")
    table.add_row("training step, ms", f"{results['train_cache_ms_per_step']:.0f}",
                  f"{results['train_decode_ms_per_step']:.0f}", "")
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
