"""Training speed of every registered method, the split of a step, and the data path.

For each method: ms per step and training images/s at one backbone, image size and batch
(defaults: the isic2018-mini CPU protocol), the median over repeats after warm-up, and
the ratio to ``supervised`` at the same total batch size, all measured in this one run
(machines are noisy: compare ratios, not absolute numbers across runs). Then the split of
one step into phases (data, perturbation, student forward, teacher forward, loss terms,
backward, optimizer, EMA) and the data path: decode-and-resize versus the decoded-image
cache. Prints tables and writes JSON.

    python benchmarks/speed.py                       # CPU protocol on isic2018-mini
    python benchmarks/speed.py --backbone densenet121 --size 224 --device cuda --json gpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from ssl_bench.config.resolve import resolve_config
from ssl_bench.data.images import ArrayImages, DecodingImages
from ssl_bench.plugins.registry import list_methods
from ssl_bench.training.benchmarking import (
    PHASES,
    data_path_throughput,
    interleaved_step_times,
    median_seconds,
    phase_split,
)
from ssl_bench.training.prepare import prepare
from ssl_bench.training.trainer import Trainer

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
#: Targets (issues 5 and 10): step-time ratio to supervised at the same total batch size.
RATIO_TARGETS = {"mt": 1.40, "srcmt": 1.40, "pi": 2.10, "fixmatch": 1.90}
#: Issue 10: the strong augmentation may take at most this share of a FixMatch step.
STRONG_SHARE_TARGET = 0.15
#: Issue 11: a step at most this many times the floor its forward passes imply, and the
#: method's own bookkeeping (loss terms besides the forwards) at most this share.
FLOOR_TARGET = 1.15
BOOKKEEPING_TARGET = 0.05


def _machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def add_floors(results: dict[str, dict]) -> None:
    """Each method's floor: what its forward passes cost at supervised's per-image rates.

    From supervised's phase split: per trained image (forward + backward) and per
    forward-only image; plus supervised's fixed costs (data, optimiser) and what the
    method's views and teacher imply (its own view making and EMA). ``floor_ratio`` =
    step (phase-split total) / floor (target <= 1.15; supervised's is 1 plus its own loss
    terms); ``bookkeeping`` = the loss terms' share of the step (thresholds, banks,
    relations; target <= 5%).
    """
    sup = results["supervised"]
    phases, trained = sup["phases_ms"], sup["forward_images"]["trained"]
    per_trained = (phases["student_forward"] + phases["backward"]) / trained
    per_forward = phases["student_forward"] / trained
    fixed = sum(phases[p] for p in ("data", "optimizer"))
    for record in results.values():
        images, own = record["forward_images"], record["phases_ms"]
        floor = (fixed + own["perturb"] + own["ema"] + images["trained"] * per_trained
                 + images["forward_only"] * per_forward)
        record["floor_ms"] = floor
        # both from the phase split (one kind of measurement): its step total / the floor
        record["floor_ratio"] = sum(record["phases_ms"].values()) / floor
        record["bookkeeping_share"] = (record["phases_ms"]["loss_terms"]
                                       / sum(record["phases_ms"].values()))


def augmentation_costs(size: int, images: int, channels: int,
                       device: torch.device) -> dict[str, float]:
    """Median ms of each registered augmentation on ``images`` random images."""
    from ssl_bench.data.augmentations import create_augmentation, list_augmentations

    generator = torch.Generator(device=device).manual_seed(0)
    batch = torch.rand(images, channels, size, size, device=device)
    costs = {}
    for name in list_augmentations():
        augment = create_augmentation(name)
        costs[name] = 1000 * median_seconds(lambda a=augment: a(batch, generator), repeats=20,
                                            warmup=2, device=device)
    return costs


def evaluation_costs(trainer: Trainer, batch_sizes: tuple[int, ...],
                     images: int = 512) -> dict[int, float]:
    """Milliseconds per image of scoring the validation part, per evaluation batch size:
    what each evaluation costs a run besides its training steps."""
    rows = trainer.p.parts["val"][:images]
    costs = {}
    for size in batch_sizes:
        trainer.evaluator.config.eval_batch_size = size
        seconds = median_seconds(lambda: trainer.evaluator.predict(trainer.student, rows), 3)
        costs[size] = 1000 * seconds / len(rows)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="isic")
    parser.add_argument("--data-root", default=str(SHARED / "isic2018-mini"))
    parser.add_argument("--methods", default=",".join(list_methods()))
    parser.add_argument("--backbone", default="resnet10t")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--pretrained", action="store_true",
                        help="the packaged ImageNet weights (see `ssl-bench list --weights`)")
    parser.add_argument("--frozen-groups", type=int, default=0,
                        help="freeze the backbone's first N layer groups (partial fine-tuning)")
    parser.add_argument("--channels-last", default="true", choices=("true", "false"),
                        help="channels-last memory format of models and views")
    parser.add_argument("--eval-batch-sizes", default="256,64",
                        help="evaluation batch sizes whose cost per image is measured")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: torch's default); 1 = one job of --jobs 2")
    parser.add_argument("--batch-size", type=int, default=48)
    parser.add_argument("--labeled-batch-size", type=int, default=12)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per method and round")
    parser.add_argument("--rounds", type=int, default=6,
                        help="rounds cycling through the methods (spreads machine noise)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", default="true", choices=("true", "false"))
    parser.add_argument("--compile", action="store_true", help="torch.compile the models")
    parser.add_argument("--json", type=Path, help="write all measurements here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    console = Console()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if "supervised" not in methods:
        methods.insert(0, "supervised")
    base = dict(dataset=args.dataset, data_root=args.data_root, backbone=args.backbone,
                image_size=args.size, batch_size=args.batch_size, pretrained=args.pretrained,
                frozen_groups=args.frozen_groups, channels_last=args.channels_last == "true",
                labeled_batch_size=args.labeled_batch_size, iterations=10_000, labeled=0.2,
                device=args.device, amp=args.amp == "true", compile=args.compile)
    trainers = {}
    for method in methods:
        prepared = prepare(resolve_config({}, {**base, "method": method}), quiet=True)
        trainers[method] = Trainer(prepared)
    seconds = interleaved_step_times(trainers, args.rounds, args.steps, args.warmup)
    results: dict[str, dict] = {}
    for method in methods:
        images: dict[str, float] = {}
        results[method] = {"ms_per_step": 1000 * seconds[method],
                           "images_per_s": args.batch_size / seconds[method],
                           "phases_ms": phase_split(trainers[method], args.steps * 2, images),
                           "forward_images": images}
    add_floors(results)
    device = prepared.device
    supervised_ms = results["supervised"]["ms_per_step"]
    frozen = f", first {args.frozen_groups} layer groups frozen" if args.frozen_groups else ""
    title = (f"{args.backbone}{' (pretrained)' if args.pretrained else ''}{frozen} at "
             f"{args.size}px, batch {args.batch_size} "
             f"({args.labeled_batch_size} labeled for SSL methods) on {args.dataset}; "
             f"{_machine(device)}")
    table = Table(title=f"training speed: {title}")
    for column in ("method", "ms/step", "images/s", "x supervised", "target", "images fwd",
                   "x floor", "bookkeeping", "ok"):
        table.add_column(column, justify="right" if column != "method" else "left")
    for method, record in results.items():
        ratio = record["ms_per_step"] / supervised_ms
        record["ratio_to_supervised"] = ratio
        target = RATIO_TARGETS.get(method)
        images = record["forward_images"]
        ok = (target is None or ratio <= target) and record["floor_ratio"] <= FLOOR_TARGET \
            and record["bookkeeping_share"] <= BOOKKEEPING_TARGET
        table.add_row(method, f"{record['ms_per_step']:.1f}", f"{record['images_per_s']:.0f}",
                      f"{ratio:.2f}", "" if target is None else f"<= {target:.2f}",
                      f"{images['trained']:.0f}+{images['forward_only']:.0f}",
                      f"{record['floor_ratio']:.2f}",
                      f"{100 * record['bookkeeping_share']:.1f}%", "yes" if ok else "NO")
    console.print(table)
    console.print(f"images fwd: per step, through forwards with gradients + without; x floor: "
                  f"step / (supervised's per-image forward/backward cost x those images + "
                  f"its data and optimiser costs + the method's own views and EMA), target "
                  f"<= {FLOOR_TARGET}; "
                  f"bookkeeping: loss terms' share, target <= {100 * BOOKKEEPING_TARGET:.0f}%",
                  highlight=False)
    if "mt" in results and "srcmt" in results:
        over = results["srcmt"]["ms_per_step"] / results["mt"]["ms_per_step"] - 1
        console.print(f"relation loss: srcmt is {100 * over:+.1f}% over mt (target <= +3%)")
    augmentation = augmentation_costs(args.size, args.batch_size - args.labeled_batch_size,
                                      prepared.in_chans, prepared.device)
    console.print(f"augmentation of {args.batch_size - args.labeled_batch_size} images at "
                  f"{args.size}px: " + ", ".join(f"{name} {ms:.2f} ms"
                                                 for name, ms in augmentation.items()),
                  highlight=False)
    if "fixmatch" in results:
        share = augmentation["strong"] / results["fixmatch"]["ms_per_step"]
        results["fixmatch"]["strong_augmentation_share"] = share
        console.print(f"strong augmentation: {100 * share:.1f}% of a fixmatch step (target "
                      f"<= {100 * STRONG_SHARE_TARGET:.0f}%)", highlight=False)

    split = Table(title="split of one step, ms (share of the step)")
    split.add_column("phase")
    for method in results:
        split.add_column(method, justify="right")
    for phase in PHASES:
        cells = []
        for record in results.values():
            total = sum(record["phases_ms"].values())
            value = record["phases_ms"][phase]
            cells.append(f"{value:.1f} ({100 * value / total:.1f}%)" if value else "-")
        split.add_row(phase, *cells)
    console.print(split)
    for record in results.values():
        total = sum(record["phases_ms"].values())
        record["data_share"] = record["phases_ms"]["data"] / total
        record["ema_share"] = record["phases_ms"]["ema"] / total

    data: dict[str, float] = {}
    if prepared.dataset.files is not None:
        cached = prepared.images if isinstance(prepared.images, ArrayImages) else None
        if cached is not None:
            decoding = DecodingImages(prepared.dataset.files, args.size, prepared.in_chans)
            data = data_path_throughput(cached, decoding, len(prepared.dataset),
                                        args.batch_size, repeats=max(5, args.steps))
            path = Table(title="data path: one training batch")
            for column in ("decode + resize, images/s", "cache, images/s", "ratio"):
                path.add_column(column, justify="right")
            path.add_row(f"{data['decode_images_per_s']:,.0f}",
                         f"{data['cache_images_per_s']:,.0f}", f"{data['ratio']:.1f}x")
            console.print(path)
    evaluation = evaluation_costs(trainers["supervised"], batch_sizes=tuple(
        int(size) for size in args.eval_batch_sizes.split(",")))
    console.print("evaluation (one model, clean view, no gradients): " + ", ".join(
        f"batch {size}: {ms:.2f} ms/image" for size, ms in evaluation.items()), highlight=False)
    if args.json:
        args.json.write_text(json.dumps({"setup": {**base, "machine": _machine(device),
                                                   "device": str(device)},
                                         "methods": results, "data_path": data,
                                         "augmentation_ms": augmentation,
                                         "evaluation_ms_per_image": evaluation}, indent=2))
        console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
