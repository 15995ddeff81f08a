"""One run on two processes (torchrun, DDP) against the same run on one process.

For each method, trains the same configuration twice on the built-in digits data: once
as ``ssl-bench run`` and once as ``torchrun --standalone --nproc_per_node 2 -m ssl_bench
run`` (gloo on CPU, each process half of the global batch), with the randomness that
differs between the two removed (no augmentation, no dropout; a backbone without batch
norm, whose statistics would be per process). Prints the largest differences in the
logged losses (the relation loss included), the validation and test metrics and the
final weights (``best.pt``), which only float rounding should separate.

    python benchmarks/ddp_vs_single.py                       # supervised, pi, mt, srcmt
    python benchmarks/ddp_vs_single.py --methods srcmt --iterations 20
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

SETTINGS = ["--dataset", "digits", "--backbone", "test_convnext", "--image-size", "32",
            "--batch-size", "16", "--labeled-batch-size", "4", "--labeled", "0.1",
            "--drop-rate", "0", "--rotation", "0", "--translate", "0", "--hflip", "false",
            "--noise-std", "0", "--quiet"]


def _run(argv: list[str], processes: int) -> None:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                 "--nproc_per_node", str(processes), "-m", "ssl_bench"]
                if processes > 1 else [sys.executable, "-m", "ssl_bench"])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*launcher, "run", *argv], capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"{' '.join(launcher)} failed:\n{done.stderr[-3000:]}")


def _history(folder: Path) -> list[dict[str, float]]:
    rows = []
    with open(folder / "history.csv") as handle:
        for row in csv.DictReader(handle):
            numbers = {}
            for key, value in row.items():
                if key == "seconds" or not value:
                    continue
                try:
                    numbers[key] = float(value)
                except ValueError:
                    pass
            rows.append(numbers)
    return rows


def _largest(a: list[dict[str, float]], b: list[dict[str, float]], prefix: str) -> float:
    return max((abs(x[k] - y[k]) for x, y in zip(a, b, strict=True) for k in x
                if k.startswith(prefix)), default=0.0)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    saved = torch.load(path, map_location="cpu", weights_only=False)
    return {f"{model}.{name}": tensor.double()
            for model in ("student", "teacher") if saved.get(model) is not None
            for name, tensor in saved[model].items() if tensor.dtype.is_floating_point}


def compare(method: str, iterations: int, folder: Path) -> dict[str, float]:
    argv = [*SETTINGS, "--method", method, "--iterations", str(iterations),
            "--eval-every", str(max(iterations // 3, 1))]
    _run([*argv, "--output", str(folder / "one")], 1)
    _run([*argv, "--output", str(folder / "two")], 2)
    one, two = _history(folder / "one"), _history(folder / "two")
    w1, w2 = _weights(folder / "one" / "best.pt"), _weights(folder / "two" / "best.pt")
    m1 = json.loads((folder / "one" / "metrics.json").read_text())
    m2 = json.loads((folder / "two" / "metrics.json").read_text())
    test = max(abs(m1[model]["test"][k] - m2[model]["test"][k])
               for model in ("student", "teacher") if model in m1
               for k, v in m1[model]["test"].items() if isinstance(v, float))
    return {"loss": _largest(one, two, "loss_"), "val": _largest(one, two, "val_"),
            "test": test, "weights": max(float((w1[k] - w2[k]).abs().max()) for k in w1),
            "relation": _largest(one, two, "loss_relation")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default="supervised,pi,mt,srcmt")
    parser.add_argument("--iterations", type=int, default=30)
    args = parser.parse_args()
    table = Table(title=f"two processes (DDP, gloo) vs one, {args.iterations} steps, digits; "
                        "largest absolute differences")
    for column in ("method", "losses", "relation loss", "validation metrics",
                   "test metrics", "weights"):
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods.split(","):
            d = compare(method, args.iterations, Path(tmp) / method)
            table.add_row(method, *(f"{d[k]:.1e}" for k in ("loss", "relation", "val", "test",
                                                             "weights")))
    Console().print(table)


if __name__ == "__main__":
    main()
