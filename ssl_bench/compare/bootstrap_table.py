"""The bootstrap table of a comparison: every cell's interval over test images, and each
method against the baseline (and each pair) by a paired bootstrap.

Read from the runs' ``predictions.csv.gz`` (:mod:`ssl_bench.runs.predictions`), each checked
against its digest and, before use, against the run's recorded metric: the probabilities
must give back the number ``metrics.json`` holds, or the run is left out with a warning.
Runs without saved predictions (made before they were saved) and the ``last`` view
(no probabilities kept at the last step) have no bootstrap. Definitions:
:mod:`ssl_bench.compare.bootstrap`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ssl_bench.compare.bootstrap import RESAMPLES, Scored, bootstrap_interval
from ssl_bench.compare.reliability import model_section
from ssl_bench.compare.runs import labeled_order
from ssl_bench.compare.statistics import holm
from ssl_bench.compare.summary import DEFAULT_BASELINE, method_order
from ssl_bench.compare.weighted_metrics import weighted_metric
from ssl_bench.core.errors import UserError
from ssl_bench.runs.predictions import PROBS, read_predictions
from ssl_bench.runs.run_dir import METRICS

COLUMNS = ("dataset", "settings", "labeled_tag", "method", "versus", "n_seeds", "estimate",
           "ci_low", "ci_high", "interval", "p_value", "p_holm")
FOOTNOTE = ("bootstrap over test images ({resamples} resamples, seeded; a cell: BCa interval, "
            "percentile where BCa is undefined; a difference: percentile interval and its "
            "p): the trained models held fixed, the test images drawn with "
            "replacement -- how much the result depends on the test images. The paired "
            "t-tests over seeds answer another question: how much it depends on the training "
            "seed, the test images held fixed. Differences pair runs by seed and by image; "
            "p two-sided from the bootstrap distribution, Holm-adjusted in each cell")


def _scored(path: str, model: str, selected: str, metric: str, recorded: float,
            warnings: list[str]) -> Scored | None:
    """One run's test predictions for ``metric``, or None (with a warning where they
    exist but cannot be used)."""
    metrics = json.loads((Path(path) / METRICS).read_text(encoding="utf-8"))
    record = metrics.get("predictions")
    if not isinstance(record, dict):
        return None
    try:
        arrays = read_predictions(path, record)
    except UserError as exc:
        warnings.append(f"bootstrap skips a run: {exc}")
        return None
    probs = arrays.get(PROBS + selected)
    if probs is None or model_section(metrics, model) is None:
        return None
    kind = "multi" if arrays["targets"].ndim == 2 else "single"
    function = weighted_metric(metric, probs, arrays["targets"], kind,
                               [str(c) for c in arrays["classes"]])
    if function is None:
        return None
    import numpy as np

    again = float(function(np.ones((1, len(probs))))[0])
    if not (math.isclose(again, recorded, rel_tol=0, abs_tol=1e-6)
            or (math.isnan(again) and math.isnan(recorded))):
        warnings.append(f"bootstrap skips a run: {path}/{record.get('file')}: its {selected} "
                        f"probabilities give {metric} {again:.6f}, {METRICS} records "
                        f"{recorded:.6f}")
        return None
    return Scored(tuple(str(i) for i in arrays["ids"]), function)


def _row(where: dict[str, Any], method: str, versus: str, seeds: list[list[Scored]],
         resamples: int) -> dict[str, Any]:
    interval = bootstrap_interval(seeds, (1.0,) if not versus else (1.0, -1.0), resamples)
    return {**where, "method": method, "versus": versus, "n_seeds": len(seeds),
            "estimate": interval.estimate, "ci_low": interval.low, "ci_high": interval.high,
            "interval": interval.method, "p_value": interval.p_value, "p_holm": None}


def bootstrap_table(df: pd.DataFrame, metric: str, model: str = "reported",
                    baseline: str | None = None,
                    pairs: Sequence[tuple[str, str]] | None = None,
                    resamples: int = RESAMPLES) -> tuple[pd.DataFrame, list[str]]:
    """Rows of :data:`COLUMNS` (``versus`` empty: the cell's own interval) and warnings;
    an empty table where no run saved predictions or ``resamples`` is 0."""
    warnings: list[str] = []
    rows: list[dict[str, Any]] = []
    if resamples <= 0 or model == "last" or metric not in df.columns:
        return pd.DataFrame(columns=COLUMNS), warnings
    baseline = baseline or DEFAULT_BASELINE
    chosen = df[(df["model"] == model) & df[metric].notna()]
    for (dataset, settings, tag), cell in chosen.groupby(
            ["dataset", "settings", "labeled_tag"], sort=True):
        where = {"dataset": dataset, "settings": settings, "labeled_tag": tag}
        scored: dict[str, dict[int, Scored]] = {}
        for _, run in cell.iterrows():
            found = _scored(run["path"], model, run["selected_model"], metric,
                            float(run[metric]), warnings)
            if found is not None:
                scored.setdefault(run["method"], {})[int(run["seed"])] = found
        methods = [m for m in method_order(cell["method"], baseline) if m in scored]
        for method in methods:
            rows.append(_row(where, method, "", [[s] for s in scored[method].values()],
                             resamples))
        wanted = [(m, baseline) for m in methods if m != baseline and baseline in scored]
        wanted += [pair for pair in (pairs or []) if all(m in scored for m in pair)
                   and tuple(pair) not in wanted]  # (a pair may repeat the baseline's test)
        family = []
        for first, second in wanted:
            common = sorted(set(scored[first]) & set(scored[second]))
            seeds = [[scored[first][s], scored[second][s]] for s in common
                     if scored[first][s].ids == scored[second][s].ids]
            if seeds:
                family.append(_row(where, first, second, seeds, resamples))
        for row, adjusted in zip(family, holm([r["p_value"] for r in family]), strict=True):
            row["p_holm"] = adjusted
        rows += family
    table = pd.DataFrame(rows, columns=COLUMNS)
    if not table.empty:
        table["_order"] = table["labeled_tag"].map(labeled_order)
        table = table.sort_values(["dataset", "settings", "_order"], kind="stable").drop(
            columns="_order").reset_index(drop=True)
    table.attrs.update({"metric": metric, "model": model, "resamples": resamples})
    return table, warnings


def bootstrap_cells(table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and text cells of the bootstrap table (markdown, HTML and the console)."""
    metric, model = table.attrs.get("metric", "metric"), table.attrs.get("model", "model")
    header = ["dataset", "settings", "labeled", "method", f"{metric} ({model}) or difference",
              "seeds", "95% bootstrap CI", "p", "p Holm"]
    body = []
    for _, row in table.iterrows():
        what = row["method"] if not row["versus"] else f"{row['method']} - {row['versus']}"
        number = f"{row['estimate']:+.4f}" if row["versus"] else f"{row['estimate']:.4f}"
        body.append([str(row["dataset"]), str(row["settings"]), str(row["labeled_tag"]), what,
                     number, str(int(row["n_seeds"])),
                     f"[{row['ci_low']:.4f}, {row['ci_high']:.4f}]",
                     "" if pd.isna(row["p_value"]) else f"{row['p_value']:.3g}",
                     "" if pd.isna(row["p_holm"]) else f"{row['p_holm']:.3g}"])
    return header, body


def bootstrap_note(table: pd.DataFrame) -> str:
    """The footnote under every bootstrap table."""
    return FOOTNOTE.format(resamples=table.attrs.get("resamples", RESAMPLES))


def print_bootstrap(table: pd.DataFrame, console: Any) -> None:
    """The bootstrap table as a rich table with its footnote (nothing when empty)."""
    from rich.markup import escape
    from rich.table import Table

    if table.empty:
        return
    header, body = bootstrap_cells(table)
    shown = Table(title="bootstrap over test images")
    for i, name in enumerate(header):
        shown.add_column(escape(name), justify="left" if i in (0, 1, 3) else "right")
    for cells in body:
        shown.add_row(*[escape(c) for c in cells])
    console.print(shown)
    console.print(escape(bootstrap_note(table)), highlight=False, soft_wrap=True)


def bootstrap_markdown(table: pd.DataFrame) -> str:
    """The bootstrap table in markdown with its footnote ("" when empty)."""
    if table.empty:
        return ""
    header, body = bootstrap_cells(table)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in body]
    return "\n**Bootstrap over test images**\n\n" + "\n".join(lines) + \
        f"\n\n- {bootstrap_note(table)}\n"
