"""One labeled amount of two sweeps side by side, paired by seed: what a new protocol changed.

For every method both sweeps ran at ``--labeled``, prints the test metric of the chosen
view in each (mean ± sd over the seeds both have), the paired difference new − old (mean,
95% t-interval, paired t-test p), and each sweep's gain over every baseline that both
sweeps ran (paired by seed within the sweep), so that one sees whether a *conclusion*
changed, not only a number. It also says, per seed, whether the two sweeps tested on the
same images and trained on the same labeled images (``split.json``), the labeled images
each saw, and the processors their ``config.json`` record (floating point differs between
processor kinds, so a run does not repeat exactly on another). Example::

    python benchmarks/old_vs_new.py results/isic2018-mini-pretrained \\
        results/isic2018-mini-reference-20pct-tuned-64px --labeled 0.2 --output old-vs-new.md

Nothing here selects anything: both sweeps' reported models were fixed before they ran.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from ssl_bench.compare.arguments import VIEWS
from ssl_bench.compare.code_versions import processor
from ssl_bench.compare.runs import load_runs
from ssl_bench.compare.views import view_frame

#: The baselines whose gains are compared (each where both sweeps ran it).
BASELINES = ("supervised", "supervised-labeled-batch")


@dataclass(frozen=True)
class Paired:
    """Mean of paired differences over ``n`` seeds, its 95% t-interval and t-test p."""

    n: int
    mean: float
    low: float
    high: float
    p: float

    def text(self) -> str:
        if self.n == 0:
            return "no common seeds"
        if self.n == 1 or math.isnan(self.low):
            return f"{self.mean:+.4f} (n={self.n})"
        return (f"{self.mean:+.4f} [{self.low:+.4f}, {self.high:+.4f}] "
                f"(p {self.p:.2g}, n={self.n})")


def paired(after: dict[int, float], before: dict[int, float]) -> Paired:
    """``after − before`` over the seeds both hold: mean, 95% t-interval, paired t-test."""
    seeds = sorted(set(after) & set(before))
    diff = np.array([after[s] - before[s] for s in seeds], dtype=float)
    if len(diff) == 0:
        return Paired(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(diff.mean())
    if len(diff) < 2:
        return Paired(1, mean, math.nan, math.nan, math.nan)
    sem = float(diff.std(ddof=1) / math.sqrt(len(diff)))
    half = float(stats.t.ppf(0.975, len(diff) - 1)) * sem
    p = float(stats.ttest_rel(
        [after[s] for s in seeds], [before[s] for s in seeds]).pvalue) if sem > 0 else math.nan
    return Paired(len(diff), mean, mean - half, mean + half, p)


def mean_sd(values: dict[int, float], seeds: list[int]) -> str:
    data = np.array([values[s] for s in seeds], dtype=float)
    if len(data) == 0:
        return "-"
    sd = f" ± {data.std(ddof=1):.4f}" if len(data) > 1 else ""
    return f"{data.mean():.4f}{sd}"


def _per_seed(folders: list[Path], labeled: float, metric: str, model: str):
    """``{method: {seed: value}}``, ``{method: {seed: run folder}}``, and load warnings.

    Several folders make one sweep (e.g. a sweep's methods and a cell re-run with a longer
    maximum); a method and seed found twice is an error, never a silent choice."""
    folder = ", ".join(map(str, folders))
    df, warnings = load_runs(list(folders))
    if df.empty:
        raise SystemExit(f"error: no finished runs below {folder}")
    df, _ = view_frame(df, model)  # the teacher view shows the student of teacherless methods
    if metric not in df.columns:
        raise SystemExit(f"error: --metric {metric}: {folder} has no test metric of that name")
    rows = df[(df["model"] == model) & np.isclose(df["labeled"].astype(float), labeled)]
    if rows.empty:
        raise SystemExit(f"error: {folder} has no run at --labeled {labeled} (model {model})")
    twice = rows[rows.duplicated(["method", "seed"], keep=False)]
    if not twice.empty:
        first = twice.iloc[0]
        where = " and ".join(twice[(twice["method"] == first["method"])
                                   & (twice["seed"] == first["seed"])]["path"])
        raise SystemExit(f"error: {first['method']} seed {first['seed']} is in two runs, "
                         f"{where}: pass the folders of one run per method and seed")
    values: dict[str, dict[int, float]] = {}
    paths: dict[str, dict[int, Path]] = {}
    for row in rows.itertuples():
        values.setdefault(row.method, {})[int(row.seed)] = float(getattr(row, metric))
        paths.setdefault(row.method, {})[int(row.seed)] = Path(row.path)
    return values, paths, warnings, rows


def _split_parts(run: Path) -> tuple[frozenset[str], frozenset[str]]:
    record = json.loads((run / "split.json").read_text())
    return frozenset(record["test"]), frozenset(record["labeled"])


def _processors(paths: dict[str, dict[int, Path]]) -> str:
    counts = Counter(processor(json.loads((p / "config.json").read_text()))
                     for seeds in paths.values() for p in seeds.values())
    return ", ".join(f"{name} ({n} runs at this labeled amount)"
                     for name, n in counts.most_common())


def report(old: Path | list[Path], new: Path | list[Path], labeled: float, metric: str,
           model: str) -> str:
    """The markdown comparison (tables and provenance lines) of ``old`` and ``new`` (a
    folder or the folders that make one sweep)."""
    old = [old] if isinstance(old, Path) else list(old)
    new = [new] if isinstance(new, Path) else list(new)
    old_values, old_paths, _, old_rows = _per_seed(old, labeled, metric, model)
    new_values, new_paths, _, new_rows = _per_seed(new, labeled, metric, model)
    old_shown, new_shown = (", ".join(f"`{f}`" for f in folders) for folders in (old, new))
    methods = [m for m in new_values if m in old_values]
    if not methods:
        raise SystemExit(f"error: {old_shown} and {new_shown} share no method at "
                         f"--labeled {labeled}")
    baselines = [b for b in BASELINES if b in old_values and b in new_values]
    lines = [f"{metric} ({model} model) at {labeled:g} labeled, test split; old: {old_shown}, "
             f"new: {new_shown}", "",
             "| method | seeds | old | new | new − old | "
             + " | ".join(f"gain vs {b}: old | gain vs {b}: new" for b in baselines) + " |",
             "|---" * (5 + 2 * len(baselines)) + "|"]
    for method in methods:
        seeds = sorted(set(old_values[method]) & set(new_values[method]))
        cells = [method, ",".join(map(str, seeds)), mean_sd(old_values[method], seeds),
                 mean_sd(new_values[method], seeds),
                 paired(new_values[method], old_values[method]).text()]
        for base in baselines:
            for values in (old_values, new_values):
                cells.append("" if method == base else
                             paired(values[method], values[base]).text())
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *_provenance(old_paths, new_paths, old_rows, new_rows)]
    return "\n".join(lines) + "\n"


def _provenance(old_paths, new_paths, old_rows, new_rows) -> list[str]:
    same_test, same_labeled, pairs = 0, 0, 0
    for method in set(old_paths) & set(new_paths):
        for seed in set(old_paths[method]) & set(new_paths[method]):
            old_test, old_lab = _split_parts(old_paths[method][seed])
            new_test, new_lab = _split_parts(new_paths[method][seed])
            pairs += 1
            same_test += old_test == new_test
            same_labeled += old_lab == new_lab
    seen = {name: rows.groupby("method")["labeled_seen"].median().to_dict()
            for name, rows in (("old", old_rows), ("new", new_rows))}
    exposure = "; ".join(
        f"{method} {seen['old'][method]:,.0f} → {seen['new'][method]:,.0f}"
        for method in sorted(set(seen["old"]) & set(seen["new"])))
    return [
        f"- same test images in {same_test} of {pairs} paired runs, same labeled images "
        f"in {same_labeled} of {pairs} (`split.json`)",
        f"- labeled images seen (median over seeds), old → new: {exposure}",
        f"- processors: old {_processors(old_paths)}; new {_processors(new_paths)}",
        "- new − old and each gain: mean of the paired differences over the seeds both "
        "hold, 95% t-interval, paired t-test p (no multiple-comparison correction)",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path, help="folder of the earlier sweep's runs")
    parser.add_argument("new", type=Path, nargs="+",
                        help="folder(s) of the later sweep's runs (one run per method and seed)")
    parser.add_argument("--labeled", type=float, required=True, help="labeled amount")
    parser.add_argument("--metric", default="auc", help="test metric (default auc)")
    parser.add_argument("--model", default="reported",
                        choices=VIEWS, help="robustness view (default: reported, the model "
                        "each run reports at its best validation step)")
    parser.add_argument("--output", type=Path, help="also write the markdown here")
    args = parser.parse_args(argv)
    for folder in (args.old, *args.new):
        if not folder.is_dir():
            parser.error(f"{folder} is not a folder")
    text = report(args.old, args.new, args.labeled, args.metric, args.model)
    print(text, end="")
    if args.output:
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
