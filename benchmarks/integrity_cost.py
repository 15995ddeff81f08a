"""What the integrity checks cost, measured in one run (issue 9).

1. Image cache: opening the decoded-image cache (the xxh3 checksum of the whole array
   included) versus the checksum alone, on a real data set (default
   ``../shared/data/isic2018-mini``, 5,984 images) at each ``--sizes``.
2. Checkpoints: the xxh3-128 content digest of a real resume checkpoint (student,
   teacher, optimiser, best-validation copies) versus ``torch.save`` of it, and
   ``load_verified`` versus a plain ``torch.load``, for each ``--backbones``.
3. Divergence checks: one parameter/gradient check (run every 10 steps) versus one
   training step.

Prints tables and writes JSON (``--json``). Example::

    python benchmarks/integrity_cost.py --sizes 64 224 --backbones resnet10t densenet121
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from ssl_bench.config.resolve import resolve_config
from ssl_bench.data.cache import default_cache_dir, file_checksum, load_images
from ssl_bench.runs.integrity import content_digest, load_verified, with_digest
from ssl_bench.training.benchmarking import median_seconds
from ssl_bench.training.prepare import load_dataset, prepare
from ssl_bench.training.trainer import Trainer

DEFAULT_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "isic2018-mini"


def cache_costs(data_root: str, sizes: list[int], cache_dir: Path,
                repeats: int) -> list[dict[str, Any]]:
    return [_cache_cost(data_root, size, cache_dir, repeats) for size in sizes]


def _cache_cost(data_root: str, size: int, cache_dir: Path, repeats: int) -> dict[str, Any]:
    config = resolve_config({}, {"dataset": "isic", "data_root": data_root,
                                 "image_size": size, "cache_dir": str(cache_dir)})
    dataset = load_dataset(config)
    cached = load_images(dataset, size, 3, cache_dir, quiet=True)  # built if missing
    path = cached.path
    assert path is not None
    mib = path.stat().st_size / 2**20
    open_s = median_seconds(lambda: load_images(dataset, size, 3, cache_dir, quiet=True),
                            repeats)
    checksum_s = median_seconds(lambda: file_checksum(path), repeats)
    return {"images": len(dataset), "size": size, "MiB": round(mib, 1),
            "open_ms": round(open_s * 1e3, 1), "checksum_ms": round(checksum_s * 1e3, 1),
            "checksum_GiB_per_s": round(mib / 1024 / checksum_s, 2)}


def checkpoint_costs(backbone: str, size: int, repeats: int) -> dict[str, Any]:
    config = resolve_config({}, {"dataset": "digits", "backbone": backbone, "image_size": size,
                                 "method": "srcmt", "iterations": 2, "eval_every": 1,
                                 "batch_size": 48, "labeled_batch_size": 12})
    trainer = Trainer(prepare(config, quiet=True))
    trainer.fit(stop_after=1)  # one step and one evaluation: best-validation copies exist
    state = trainer.state_dict()
    buffer = io.BytesIO()
    torch.save(with_digest(state), buffer)
    mib = buffer.tell() / 2**20
    digest_s = median_seconds(lambda: content_digest(state), repeats)
    save_s = median_seconds(lambda: torch.save(state, io.BytesIO()), repeats)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "checkpoint.pt"
        path.write_bytes(buffer.getvalue())
        load_s = median_seconds(lambda: torch.load(path, weights_only=False), repeats)
        verified_s = median_seconds(lambda: load_verified(path), repeats)
    step_s = median_seconds(trainer.train_step, repeats=5)
    check_s = median_seconds(
        lambda: trainer.monitor.check_parameters(trainer.step, trainer.student), repeats)
    return {"backbone": backbone, "size": size, "checkpoint_MiB": round(mib, 1),
            "digest_ms": round(digest_s * 1e3, 1), "torch_save_ms": round(save_s * 1e3, 1),
            "torch_load_ms": round(load_s * 1e3, 1),
            "load_verified_ms": round(verified_s * 1e3, 1),
            "train_step_ms": round(step_s * 1e3, 1),
            "divergence_check_ms": round(check_s * 1e3, 2),
            "divergence_check_per_step_pct": round(100 * check_s / 10 / step_s, 2)}


def _table(title: str, rows: list[dict[str, Any]], transpose: bool = False) -> Table:
    table = Table(title=title)
    if transpose:  # one column per row (wide records stay readable)
        table.add_column("")
        for row in rows:
            table.add_column(str(next(iter(row.values()))), justify="right")
        for key in list(rows[0])[1:]:
            table.add_row(key, *(str(row[key]) for row in rows))
        return table
    for key in rows[0]:
        table.add_column(key, justify="right")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(DEFAULT_ROOT))
    parser.add_argument("--sizes", type=int, nargs="+", default=[64])
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir(),
                        help="cache folder (an existing cache is reused, else built)")
    parser.add_argument("--backbones", nargs="+", default=["resnet10t", "densenet121"])
    parser.add_argument("--backbone-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path, help="write the measurements here")
    args = parser.parse_args()
    console = Console()
    results = {"torch_threads": torch.get_num_threads(),
               "cache": cache_costs(args.data_root, args.sizes, args.cache_dir, args.repeats),
               "checkpoints": [checkpoint_costs(b, args.backbone_size, args.repeats)
                               for b in args.backbones]}
    console.print(_table("image cache: open (checksum included) vs checksum alone",
                         results["cache"]))
    console.print(_table("checkpoints and divergence checks", results["checkpoints"],
                         transpose=True))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
