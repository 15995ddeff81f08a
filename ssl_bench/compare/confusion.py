"""Confusion matrices of the test predictions, per method, seeds pooled.

From each run's ``predictions.csv.gz`` (the network the view names, at its best step):

* single-label: one ``K x K`` matrix per method of argmax predictions against labels,
  counts added over seeds, drawn row-normalised (each row: the share of a true class
  predicted as each class; its diagonal is the per-class sensitivity) with the counts
  written in; one PNG per data set x settings group x labeled amount, methods side by side;
* multi-label: per finding, TP / FP / FN / TN at probability 0.5, added over seeds (a
  table: a multi-label run has no argmax).

Runs without saved predictions, and the ``last`` view, have none.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ssl_bench.compare.plots import STYLE, _figure, _prepare_dir, _safe_name, _save
from ssl_bench.compare.reliability import model_section
from ssl_bench.compare.runs import labeled_order
from ssl_bench.compare.summary import DEFAULT_BASELINE, method_order
from ssl_bench.core.errors import UserError
from ssl_bench.runs.predictions import PROBS, read_predictions
from ssl_bench.runs.run_dir import METRICS

#: The probability above which a multi-label finding counts as predicted.
THRESHOLD = 0.5


def run_confusion(path: str, model: str, selected: str) -> tuple[np.ndarray, list[str], str] | None:
    """(counts, class names, kind) of one run: ``K x K`` (single) or ``K x 4`` TP, FP,
    FN, TN (multi); None without usable predictions."""
    try:
        metrics = json.loads((Path(path) / METRICS).read_text(encoding="utf-8"))
        record = metrics.get("predictions")
        if not isinstance(record, dict) or model_section(metrics, model) is None:
            return None
        arrays = read_predictions(path, record)
    except (OSError, ValueError, UserError):
        return None
    probs, targets = arrays.get(PROBS + selected), arrays["targets"]
    if probs is None:
        return None
    classes = [str(c) for c in arrays["classes"]]
    k = len(classes)
    if targets.ndim == 1:
        counts = np.zeros((k, k), dtype=np.int64)
        np.add.at(counts, (targets.astype(np.int64), probs.argmax(axis=1)), 1)
        return counts, classes, "single"
    shown = probs > THRESHOLD
    truth = targets == 1
    counts = np.stack([(shown & truth).sum(0), (shown & ~truth).sum(0),
                       (~shown & truth).sum(0), (~shown & ~truth).sum(0)], axis=1)
    return counts.astype(np.int64), classes, "multi"


def pooled_confusions(df: pd.DataFrame, model: str, baseline: str | None = None,
                      ) -> list[tuple[dict[str, str], dict[str, np.ndarray], list[str], str]]:
    """Per data set x settings x labeled amount: (where, method -> pooled counts,
    classes, kind), in labeled order."""
    out = []
    if model == "last":
        return out
    chosen = df[df["model"] == model]
    for (dataset, settings, tag), cell in chosen.groupby(
            ["dataset", "settings", "labeled_tag"], sort=True):
        counts: dict[str, np.ndarray] = {}
        classes: list[str] = []
        kind = ""
        for method in method_order(cell["method"], baseline or DEFAULT_BASELINE):
            for _, run in cell[cell["method"] == method].iterrows():
                found = run_confusion(run["path"], model, run["selected_model"])
                if found is None:
                    continue
                matrix, classes, kind = found
                counts[method] = counts.get(method, 0) + matrix
        if counts:
            out.append(({"dataset": str(dataset), "settings": str(settings), "labeled": str(tag)},
                        counts, classes, kind))
    return sorted(out, key=lambda item: (item[0]["dataset"], item[0]["settings"],
                                         labeled_order(item[0]["labeled"])))


def plot_confusions(cell: tuple[dict[str, str], dict[str, np.ndarray], list[str], str],
                    out_dir: str | Path, model: str) -> Path:
    """One PNG of a single-label cell's matrices, one panel per method."""
    from matplotlib import style

    where, counts, classes, _ = cell
    out_dir = _prepare_dir(out_dir)
    with style.context(STYLE):
        size = max(2.6, 0.42 * len(classes) + 1.2)
        figure = _figure(size * len(counts) + 0.6, size + 0.5)
        panels = figure.subplots(1, len(counts), squeeze=False)[0]
        for axes, (method, matrix) in zip(panels, counts.items(), strict=True):
            rows = matrix.sum(axis=1, keepdims=True)
            share = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
            image = axes.imshow(share, vmin=0, vmax=1, cmap="Blues")
            for (i, j), value in np.ndenumerate(matrix):
                axes.text(j, i, str(value), ha="center", va="center", fontsize="xx-small",
                          color="white" if share[i, j] > 0.6 else "black")
            ticks = np.arange(len(classes))
            axes.set_xticks(ticks, classes, rotation=90, fontsize="x-small")
            axes.set_yticks(ticks, classes, fontsize="x-small")
            axes.set_title(f"{method} (n={int(matrix.sum())})", fontsize="small")
            axes.set_xlabel("predicted", fontsize="small")
        panels[0].set_ylabel("true class", fontsize="small")
        figure.colorbar(image, ax=list(panels), shrink=0.8, label="share of the true class")
        figure.suptitle(f"{where['dataset']}: test confusion matrices ({model} model, seeds "
                        f"pooled), labeled {where['labeled']}", fontsize="small")
        name = (f"{where['dataset']}_{where['settings']}_{model}_confusion_"
                f"labeled={where['labeled']}")
        return _save(figure, out_dir / f"{_safe_name(name)}.png")


def multi_label_cells(cell: tuple[dict[str, str], dict[str, np.ndarray], list[str], str],
                      ) -> tuple[list[str], list[list[str]]]:
    """Header and cells of a multi-label cell's table: per finding, each method's
    TP / FP / FN / TN at :data:`THRESHOLD`."""
    _, counts, classes, _ = cell
    header = ["finding", *[f"{method}: TP / FP / FN / TN" for method in counts]]
    body = [[name, *[" / ".join(str(v) for v in matrix[j]) for matrix in counts.values()]]
            for j, name in enumerate(classes)]
    return header, body


def describe(cell: tuple[dict[str, str], Any, Any, Any]) -> str:
    where = cell[0]
    return f"{where['dataset']}, settings {where['settings']}, labeled {where['labeled']}"
