"""Reliability diagrams: how often a method is right against how sure it says it is.

One PNG per data set x settings group x labeled amount, one line per method. Each run
records the reliability bins of its test evaluation in ``metrics.json`` (the model the
view names, at its best-validation step; :mod:`ssl_bench.training.calibration`); a
method's line pools the bins of its seeds (counts added, means weighted by counts), and
the legend gives its ECE as mean ± SD over seeds. Below it, the share of test
predictions in each bin. The ``last`` view has no bins (``history.csv`` keeps scalars
only), and runs made before calibration was recorded have none either: both are skipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ssl_bench.compare.groups import describe_differences
from ssl_bench.compare.plots import STYLE, _figure, _prepare_dir, _safe_name, _save, method_styles
from ssl_bench.compare.runs import labeled_order
from ssl_bench.compare.summary import DEFAULT_BASELINE, method_order
from ssl_bench.runs.run_dir import METRICS


def model_section(metrics: dict[str, Any], model: str) -> dict[str, Any] | None:
    """The record of ``model`` (student, teacher, best, reported) in ``metrics.json``;
    runs that predate ``reported`` report ``best``."""
    section = metrics.get(model)
    if section is None and model == "reported":
        section = metrics.get("best")
    return section if isinstance(section, dict) else None


def run_bins(path: str | Path, model: str) -> dict[str, Any] | None:
    """The test reliability bins of one run's ``model``; None where it has none."""
    try:
        metrics = json.loads((Path(path) / METRICS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    section = model_section(metrics, model) if isinstance(metrics, dict) else None
    bins = ((section or {}).get("test") or {}).get("reliability")
    return bins if isinstance(bins, dict) and "count" in bins else None


def pooled(bins: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Bins of several runs added up: count, mean confidence and observed frequency
    (NaN in a bin no run filled)."""
    count = np.sum([np.asarray(b["count"], dtype=float) for b in bins], axis=0)

    def weighted(key: str) -> np.ndarray:
        total = np.sum([np.nan_to_num(np.asarray(b[key], dtype=float)) *
                        np.asarray(b["count"], dtype=float) for b in bins], axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / count, np.nan)

    return {"count": count, "confidence": weighted("confidence"),
            "observed": weighted("observed")}


def plot_reliability(df: pd.DataFrame, out_dir: str | Path, model: str = "reported",
                     baseline: str | None = None) -> list[Path]:
    """Reliability diagrams of the ``model`` view (see the module docstring)."""
    from matplotlib import style

    if model == "last":
        return []
    out_dir = _prepare_dir(out_dir)
    differences = describe_differences(df)
    paths = []
    chosen = df[df["model"] == model]
    for (dataset, settings, tag), runs in chosen.groupby(
            ["dataset", "settings", "labeled_tag"], sort=True):
        lines = {}
        for method in method_order(runs["method"], baseline or DEFAULT_BASELINE):
            mine = runs[runs["method"] == method]
            bins = [b for b in (run_bins(p, model) for p in mine["path"]) if b is not None]
            if bins:
                lines[method] = (pooled(bins), mine["ece"] if "ece" in mine else None)
        if lines:
            with style.context(STYLE):
                paths.append(_diagram(lines, out_dir, str(dataset), str(settings), str(tag),
                                      model, differences.get(settings, "")))
    return sorted(paths, key=lambda p: labeled_order(p.stem.rpartition("=")[2]))


def _legend_label(method: str, ece: pd.Series | None, runs: int) -> str:
    if ece is None or ece.notna().sum() == 0:
        return f"{method} (n={runs})"
    values = ece.dropna()
    spread = f" ± {values.std(ddof=1):.3f}" if len(values) > 1 else ""
    return f"{method}: ECE {values.mean():.3f}{spread} (n={len(values)})"


def _diagram(lines: dict[str, tuple[dict[str, np.ndarray], pd.Series | None]], out_dir: Path,
             dataset: str, settings: str, tag: str, model: str, note: str) -> Path:
    figure = _figure(6.4, 5.2)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    styles = method_styles(list(lines))
    top.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=0.8,
             label="perfectly calibrated")
    bins = len(next(iter(lines.values()))[0]["count"])
    centres = (np.arange(bins) + 0.5) / bins
    width = 0.8 / bins / len(lines)
    for i, (method, (pool, ece)) in enumerate(lines.items()):
        filled = pool["count"] > 0
        top.plot(pool["confidence"][filled], pool["observed"][filled], marker="o",
                 markersize=3, color=styles[method]["color"],
                 label=_legend_label(method, ece, int(len(ece)) if ece is not None else 0))
        offset = (i - (len(lines) - 1) / 2) * width
        bottom.bar(centres + offset, pool["count"] / pool["count"].sum(), width,
                   color=styles[method]["color"])
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("observed frequency")
    top.set_title(f"{dataset}: reliability of the {model} model on test, labeled {tag}")
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize="small")
    bottom.set_xlabel("predicted probability (single-label: top-label confidence; "
                      "multi-label: every finding pooled)", fontsize="small")
    bottom.set_ylabel("share")
    figure.text(0.0, -0.02, f"{bins} equal-width bins; seeds pooled; settings {settings}"
                + (f" ({note})" if note else ""), fontsize="x-small", color="0.35")
    name = f"{dataset}_{settings}_{model}_reliability_labeled={tag}"
    return _save(figure, out_dir / f"{_safe_name(name)}.png")
