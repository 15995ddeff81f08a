"""What keying the image cache on file content costs, measured in one run (issue 28).

Every run now reads every image file once (``ssl_bench.data.cache.file_content``: a stat, then
the xxh3-64 digest of the bytes of each regular file) to build the cache key and the data
fingerprint. On a real data set (default ``../shared/data/isic2018-mini``, 5,984 JPEGs)
this measures:

1. the content digest: the first pass (the page cache as this machine had it) and the
   median of ``--repeats`` warm passes, with the default workers and with one; a stat of
   every file alone (what a size/mtime stamp would cost) and the ids/labels fingerprint;
2. decoding into the cache at each ``--sizes`` (a fresh temporary cache folder; the
   first ``--limit`` images only, if given) and opening that cache again (warm: content
   digest plus the array's own checksum, which is all a warm open read before), so the
   digest can be read against both.

The page cache is not dropped (that needs root and disturbs other work), so a cold disk
read is not measured: on a cold disk the digest reads the files at disk speed, as the
first decode does. Prints a table and writes JSON (``--json``). Example::

    python benchmarks/cache_key_cost.py --sizes 32 224
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from ssl_bench.config.resolve import resolve_config
from ssl_bench.data.cache import default_workers, file_checksum, file_content, load_images
from ssl_bench.data.datasets.base import ImageDataset
from ssl_bench.training.benchmarking import median_seconds
from ssl_bench.training.prepare import load_dataset

DEFAULT_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "isic2018-mini"


def _dataset(data_root: str, limit: int | None) -> ImageDataset:
    """The isic data set at ``data_root``, its first ``limit`` images if given."""
    dataset = load_dataset(resolve_config({}, {"dataset": "isic", "data_root": data_root}))
    if limit is None or limit >= len(dataset):
        return dataset
    return replace(dataset.subset(np.arange(limit)), predefined={})


def digest_costs(dataset: ImageDataset, repeats: int) -> dict[str, Any]:
    """Seconds of the content digest (first, warm; default and one worker), stats alone
    and the ids/labels fingerprint, and the bytes read."""
    files = dataset.files or []
    started = time.perf_counter()
    first = file_content(dataset)
    first_s = time.perf_counter() - started
    mib = sum(s.size for s in first.stamps if s is not None) / 2**20
    warm_s = median_seconds(lambda: file_content(dataset), repeats, warmup=0)
    one_s = median_seconds(lambda: file_content(dataset, workers=1), repeats, warmup=0)
    stat_s = median_seconds(lambda: [os.stat(path) for path in files], repeats, warmup=0)
    labels_s = median_seconds(dataset.label_fingerprint, repeats, warmup=0)
    return {"images": len(files), "MiB": round(mib, 1), "workers": default_workers(),
            "first_s": round(first_s, 3), "warm_s": round(warm_s, 3),
            "warm_1_worker_s": round(one_s, 3), "stat_only_s": round(stat_s, 4),
            "labels_fingerprint_s": round(labels_s, 4),
            "warm_MiB_per_s": round(mib / warm_s, 0)}


def decode_costs(dataset: ImageDataset, size: int, repeats: int) -> dict[str, Any]:
    """Seconds to decode ``dataset`` into a fresh cache at ``size`` px and to open it again."""
    with tempfile.TemporaryDirectory(prefix="ssl-bench-key-cost-") as folder:
        started = time.perf_counter()
        built = load_images(dataset, size, 3, Path(folder), quiet=True)
        total_s = time.perf_counter() - started
        assert built.built and built.content is not None and built.path is not None
        mib = built.path.stat().st_size / 2**20
        open_s = median_seconds(lambda: load_images(dataset, size, 3, Path(folder),
                                                    quiet=True), repeats, warmup=0)
        path = built.path
        checksum_s = median_seconds(lambda: file_checksum(path), repeats, warmup=0)
    return {"size": size, "images": len(dataset), "cache_MiB": round(mib, 1),
            "decode_s": round(built.seconds, 2), "build_total_s": round(total_s, 2),
            "digest_in_build_s": round(built.content.seconds, 3),
            "warm_open_s": round(open_s, 3), "array_checksum_s": round(checksum_s, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(DEFAULT_ROOT))
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 224])
    parser.add_argument("--limit", type=int, help="decode only the first N images")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the measurements here")
    args = parser.parse_args()
    console = Console(width=130)
    dataset = _dataset(args.data_root, None)
    digest = digest_costs(dataset, args.repeats)
    decoded = [decode_costs(_dataset(args.data_root, args.limit), size, args.repeats)
               for size in args.sizes]

    table = Table(title=f"content digest of {digest['images']:,} isic files "
                  f"({digest['MiB']} MiB, {digest['workers']} workers; page cache warm)")
    table.add_column("measurement")
    table.add_column("seconds", justify="right")
    for label, key in (("content digest, first pass", "first_s"),
                       ("content digest, warm (median)", "warm_s"),
                       ("content digest, warm, 1 worker", "warm_1_worker_s"),
                       ("stat of every file only", "stat_only_s"),
                       ("ids/labels fingerprint", "labels_fingerprint_s")):
        table.add_row(label, f"{digest[key]:.4f}")
    console.print(table)
    table = Table(title="decoding into the cache versus the digest")
    for column in ("size", "images", "cache MiB", "decode s", "digest s (in build)",
                   "digest / decode", "array checksum s", "warm open s"):
        table.add_column(column, justify="right")
    for row in decoded:
        table.add_row(str(row["size"]), f"{row['images']:,}", f"{row['cache_MiB']}",
                      f"{row['decode_s']:.2f}", f"{row['digest_in_build_s']:.3f}",
                      f"{100 * row['digest_in_build_s'] / row['decode_s']:.1f}%",
                      f"{row['array_checksum_s']:.3f}", f"{row['warm_open_s']:.3f}")
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps({"digest": digest, "decode": decoded}, indent=2) + "\n")
        console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
