"""Has every run converged within its budget? Judged on validation data and training loss only.

A protocol's budget is enough when, for every method and labeled amount,

* the best **validation** step of the reported model is not in the last 10% of training
  (``--late``): a best step at the very end means the curve was still rising, and
* the labeled (supervised) loss has flattened: over the last 20% of training it fell by
  less than 10% of its total fall since the first evaluation (``--window``, ``--flat``).

Reads ``history.csv`` and the selected step from ``metrics.json``; never a test metric.
Prints one line per method x labeled amount (worst seed) and, with ``--curves``, the mean
validation AUC per evaluation step (the better of student and teacher, as ``best``
selects). Exit status 1 when a group has not converged. Example::

    python benchmarks/convergence.py results/pretrained-pilot --curves
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table


@dataclass
class RunCheck:
    label: str  # the name compare gives the run (baselines apart)
    labeled: str
    seed: int
    steps: int
    best_step: int
    remaining_fall: float  # fall of the labeled loss over the last window / total fall
    val_curve: list[tuple[int, float]]

    @property
    def best_fraction(self) -> float:
        return self.best_step / self.steps


def _number(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def _window_mean(rows: list[dict[str, str]], low: int, high: int, key: str) -> float:
    values = [_number(r[key]) for r in rows if low < int(r["step"]) <= high]
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values) if values else math.nan


def _label(folder: Path, metrics: dict) -> str:
    """The name compare gives the run: the two supervised baselines stay apart
    (``supervised`` and ``supervised-labeled-batch`` converge on different budgets)."""
    from ssl_bench.compare.runs import run_label
    from ssl_bench.runs.run_dir import CONFIG

    config = folder / CONFIG
    document = json.loads(config.read_text(encoding="utf-8")) if config.exists() else {}
    return run_label(document, metrics)


def check_run(folder: Path, window: float) -> RunCheck:
    """Best-step position and how much of its fall the labeled loss has left to do."""
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    with open(folder / "history.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise SystemExit(f"{folder / 'history.csv'}: no evaluations recorded")
    steps = int(metrics["steps"])
    reported = metrics.get("reported") or metrics["best"]
    span = max(1, round(steps * window))
    first = _number(rows[0]["loss_supervised"])
    last = _window_mean(rows, steps - span, steps, "loss_supervised")
    before = _window_mean(rows, steps - 2 * span, steps - span, "loss_supervised")
    total = first - last
    remaining = (before - last) / total if total > 0 else 0.0
    curve = []
    for row in rows:
        values = [_number(row.get(f"val_{model}_auc")) for model in ("student", "teacher")]
        values = [v for v in values if not math.isnan(v)]
        if values:
            curve.append((int(row["step"]), max(values)))
    return RunCheck(_label(folder, metrics), str(metrics["labeled"]), int(metrics["seed"]),
                    steps, int(reported["best_step"]), remaining, curve)


def find_runs(folders: list[Path]) -> list[Path]:
    found = sorted({p.parent for folder in folders for p in folder.rglob("metrics.json")})
    if not found:
        raise SystemExit(f"no finished run (metrics.json) under {', '.join(map(str, folders))}")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--late", type=float, default=0.9,
                        help="a best step after this fraction of training is too late")
    parser.add_argument("--window", type=float, default=0.2,
                        help="fraction of training whose loss fall is compared")
    parser.add_argument("--flat", type=float, default=0.1,
                        help="flattened: the last window's fall below this share of the total")
    parser.add_argument("--curves", action="store_true",
                        help="also print the mean validation AUC per evaluation step")
    args = parser.parse_args()
    groups: dict[tuple[str, str], list[RunCheck]] = defaultdict(list)
    for folder in find_runs(args.folders):
        check = check_run(folder, args.window)
        groups[(check.label, check.labeled)].append(check)
    console = Console()
    if not console.is_terminal:  # a log or a pipe has no width to keep to: lose no cell
        console = Console(width=120)
    table = Table(title="convergence (validation and training loss only)")
    for name in ("method", "labeled", "seeds", "best step / steps (per seed)",
                 "loss fall left (worst)", "verdict"):
        table.add_column(name, no_wrap=name == "method")  # a name is read whole
    failed = 0
    for (method, labeled), checks in sorted(groups.items()):
        checks.sort(key=lambda c: c.seed)
        late = [c for c in checks if c.best_fraction > args.late]
        worst = max(c.remaining_fall for c in checks)
        problems = ([f"best step late in {len(late)} seed(s)"] if late else []) + (
            ["loss still falling"] if worst >= args.flat else [])
        failed += bool(problems)
        table.add_row(method, labeled, str(len(checks)),
                      " ".join(f"{c.best_step}/{c.steps}" for c in checks), f"{worst:.1%}",
                      "; ".join(problems) or "converged")
    console.print(table)
    if args.curves:
        curves = Table(title="mean validation AUC (better of student and teacher) per step")
        steps = sorted({s for checks in groups.values() for c in checks for s, _ in c.val_curve})
        curves.add_column("method")
        curves.add_column("labeled")
        for step in steps:
            curves.add_column(str(step), justify="right")
        for (method, labeled), checks in sorted(groups.items()):
            cells = []
            for step in steps:
                values = [v for c in checks for s, v in c.val_curve if s == step]
                cells.append(f"{sum(values) / len(values):.3f}" if values else "")
            curves.add_row(method, labeled, *cells)
        console.print(curves)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
