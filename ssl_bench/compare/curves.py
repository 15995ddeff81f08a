"""Validation curves of every run: the selection metric against the training step.

One PNG per data set x settings group x labeled amount; per method the mean over seeds
at each evaluation step, with a band of +- one SD (over the seeds evaluated at that
step). Each run contributes the curve of the model it is reported by (``--model
reported``: its ``selected_model``), read from its ``history.csv``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ssl_bench.compare.plots import STYLE, _figure, _prepare_dir, _safe_name, _save, method_styles
from ssl_bench.compare.runs import labeled_order
from ssl_bench.compare.summary import method_order
from ssl_bench.runs.run_dir import HISTORY


def run_curve(path: str | Path, model: str, metric: str) -> pd.Series | None:
    """``val_<model>_<metric>`` of one run by step (None: no such column or file)."""
    history = Path(path) / HISTORY
    if not history.is_file():
        return None
    frame = pd.read_csv(history)
    column = f"val_{model}_{metric}"
    if column not in frame or "step" not in frame:
        return None
    return frame.set_index("step")[column].dropna()


def validation_curves(df: pd.DataFrame, metric: str, model: str) -> pd.DataFrame:
    """One row per (run, step): dataset, settings, labeled_tag, method, seed, step, value."""
    rows = df[df["model"] == model].drop_duplicates("path")
    parts = []
    for _, run in rows.iterrows():
        used = run["selected_model"] if model in ("reported", "best") else model
        curve = run_curve(run["path"], str(used), metric)
        if curve is None or curve.empty:
            continue
        parts.append(pd.DataFrame({
            "dataset": run["dataset"], "settings": run["settings"],
            "labeled_tag": run["labeled_tag"], "method": run["method"], "seed": run["seed"],
            "step": curve.index.to_numpy(), "value": curve.to_numpy(dtype=float)}))
    columns = ["dataset", "settings", "labeled_tag", "method", "seed", "step", "value"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def plot_validation_curves(df: pd.DataFrame, out_dir: str | Path, metric: str = "auc",
                           model: str = "reported", baseline: str = "") -> list[Path]:
    """Mean +- SD validation curves per method; one PNG per group and labeled amount."""
    from matplotlib import style

    curves = validation_curves(df, metric, model)
    out_dir = _prepare_dir(out_dir)
    paths = []
    keys = ["dataset", "settings", "labeled_tag"]
    groups = sorted(curves.groupby(keys, sort=False),
                    key=lambda item: (item[0][0], item[0][1], labeled_order(item[0][2])))
    for (dataset, settings, tag), group in groups:
        with style.context(STYLE):
            paths.append(_plot_group(group, out_dir, dataset, settings, tag, metric, model,
                                     baseline))
    return paths


def _plot_group(group: pd.DataFrame, out_dir: Path, dataset: str, settings: str, tag: str,
                metric: str, model: str, baseline: str) -> Path:
    figure = _figure(6.0, 3.4)
    axes = figure.add_subplot()
    methods = method_order(group["method"], baseline)
    styles = method_styles(methods)
    for method in methods:
        by_step = group[group["method"] == method].groupby("step")["value"]
        mean, sd = by_step.mean(), by_step.std(ddof=1).fillna(0.0)
        seeds = int(group[group["method"] == method]["seed"].nunique())
        steps = mean.index.to_numpy(dtype=float)
        colour = styles[method]["color"]
        axes.plot(steps, mean.to_numpy(), color=colour, label=f"{method} (n={seeds})")
        axes.fill_between(steps, np.clip(mean - sd, 0, 1), np.clip(mean + sd, 0, 1),
                          color=colour, alpha=0.18, linewidth=0)
    axes.set_xlabel("training step")
    axes.set_ylabel(f"validation {metric} ({model} model)")
    axes.set_title(f"{dataset}, labeled {tag}: validation {metric} during training")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    figure.text(0.0, 0.0, f"mean ± SD over seeds; settings {settings}", ha="left", va="top",
                fontsize="x-small", color="0.35")
    name = f"{dataset}_{settings}_labeled={tag}_val_{metric}_{model}_curves"
    return _save(figure, out_dir / f"{_safe_name(name)}.png")
