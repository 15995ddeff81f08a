"""PNG plots of a comparison: test metric against labeled amount, per-class AUC bars."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..atomic import atomic_write_bytes
from ..errors import UserError
from ..labeled import labeled_tag, parse_labeled
from .groups import describe_differences
from .runs import MODELS, available_metrics, labeled_order
from .summary import DEFAULT_BASELINE, method_order, summarize


def _figure(width: float, height: float) -> Any:
    # The object-oriented API renders with Agg without touching pyplot's global backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return atomic_write_bytes(path, buffer.getvalue())


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "-", text).strip("-") or "x"


def _prepare_dir(out_dir: str | Path) -> Path:
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"plot folder {out_dir} exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")


def method_styles(methods: list[str]) -> dict[str, dict[str, Any]]:
    """One distinct colour and marker per method, the same in every plot of a comparison
    (tab10 up to ten methods, tab20 beyond: the default cycle repeats after ten)."""
    from matplotlib import colormaps

    palette = colormaps["tab10" if len(methods) <= 10 else "tab20"]
    # tab20 comes in dark/light pairs: the ten dark ones first, so neighbours differ in hue
    order = list(range(0, palette.N, 2)) + list(range(1, palette.N, 2)) if palette.N == 20 \
        else list(range(palette.N))
    return {method: {"color": palette(order[i % len(order)]),
                     "marker": MARKERS[i % len(MARKERS)]} for i, method in enumerate(methods)}


def plot_learning_curves(df: pd.DataFrame, out_dir: str | Path, metric: str = "auc",
                         model: str = "reported", baseline: str | None = None,
                         summary: pd.DataFrame | None = None) -> list[Path]:
    """``metric`` against the labeled amount, one line per method (error bars: std).

    One PNG per data set x settings group (and a separate one for labeled *counts* when
    a group mixes fractions and counts).
    """
    if summary is None:  # compare_command passes the one it printed
        summary = summarize(df, metric=metric, model=model, baseline=baseline, pairs=[])
    out_dir = _prepare_dir(out_dir)
    paths = []
    for (dataset, settings), group in summary.groupby(["dataset", "settings"], sort=True):
        group = group[group["n"] > 0]
        is_count = group["labeled_tag"].map(lambda t: labeled_order(t)[0] == 1)
        for counts, part in ((False, group[~is_count]), (True, group[is_count])):
            if part.empty:
                continue
            figure = _figure(6.4 if part["method"].nunique() <= 6 else 8.0, 4.8)
            axes = figure.add_subplot()
            methods = method_order(part["method"], summary.attrs.get("baseline", ""))
            styles = method_styles(methods)
            for method in methods:
                rows = part[part["method"] == method]
                order = sorted(range(len(rows)),
                               key=lambda i: labeled_order(rows["labeled_tag"].iloc[i]))
                rows = rows.iloc[order]
                x = rows["labeled_tag"].astype(float).to_numpy()
                y = rows["mean"].astype(float).to_numpy()
                err = rows["std"].astype(float).fillna(0.0).to_numpy()
                axes.errorbar(x, y, yerr=err, capsize=3, label=method, **styles[method])
            ticks = sorted(set(part["labeled_tag"]), key=labeled_order)
            axes.set_xticks([float(t) for t in ticks], ticks)
            axes.set_xlabel("labeled images (count)" if counts else "labeled fraction")
            axes.set_ylabel(f"test {metric} ({model})")
            title = f"{dataset}: {metric} vs labeled amount (settings {settings})"
            note = part["settings_note"].iloc[0]
            axes.set_title(title + (f"\n{note}" if note else ""), fontsize=9)
            axes.grid(alpha=0.3)
            axes.legend(fontsize=8, ncol=1 if len(methods) <= 6 else 2)
            name = f"{dataset}_{settings}_{metric}_{model}_curve{'_counts' if counts else ''}"
            paths.append(_save(figure, out_dir / f"{_safe_name(name)}.png"))
    return paths


def _classes(df: pd.DataFrame, dataset: str, group: pd.DataFrame) -> list[str]:
    known = df.attrs.get("classes", {}).get(dataset)
    if known:
        return [c for c in known if f"auc_{c}" in group.columns]
    metrics = set(available_metrics(df))
    return [c[4:] for c in group.columns
            if c.startswith("auc_") and c in metrics and group[c].notna().any()]


def plot_per_class(df: pd.DataFrame, out_dir: str | Path, model: str = "reported",
                   fraction: str | float | int | None = None,
                   baseline: str | None = None) -> list[Path]:
    """Grouped bars of per-class test AUC per method at one labeled amount (error: std).

    ``fraction`` defaults to the largest labeled fraction of each data set x settings
    group (the largest count when a group has no fractions). One PNG per group.
    """
    if model not in MODELS:
        raise UserError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    wanted = None if fraction is None else labeled_tag(parse_labeled(fraction))
    chosen = df[df["model"] == model]
    out_dir = _prepare_dir(out_dir)
    paths = []
    seen_tags: set[str] = set()
    baseline = baseline or DEFAULT_BASELINE
    differences = describe_differences(df)
    for (dataset, settings), group in chosen.groupby(["dataset", "settings"], sort=True):
        classes = _classes(df, dataset, group)
        if not classes:
            continue
        tags = sorted(set(group["labeled_tag"]), key=labeled_order)
        seen_tags.update(tags)
        if wanted is None:
            fractions = [t for t in tags if labeled_order(t)[0] == 0]
            tag = (fractions or tags)[-1]
        elif wanted in tags:
            tag = wanted
        else:
            continue
        runs = group[group["labeled_tag"] == tag]
        methods = method_order(runs["method"], baseline)
        styles = method_styles(methods)
        figure = _figure(min(16.0, max(6.4, 0.12 * len(classes) * len(methods) + 2)), 4.8)
        axes = figure.add_subplot()
        width = 0.8 / len(methods)
        positions = np.arange(len(classes), dtype=float)
        for i, method in enumerate(methods):
            per_seed = runs[runs["method"] == method].groupby("seed")[
                [f"auc_{c}" for c in classes]].mean()
            means = per_seed.mean(skipna=True).to_numpy(dtype=float)
            stds = per_seed.std(ddof=1, skipna=True).to_numpy(dtype=float)
            stds = np.nan_to_num(stds, nan=0.0)
            offset = (i - (len(methods) - 1) / 2) * width
            axes.bar(positions + offset, np.nan_to_num(means, nan=0.0), width, yerr=stds,
                     capsize=2, label=f"{method} (n={len(per_seed)})",
                     color=styles[method]["color"])
            for position in positions[np.isnan(means)]:
                axes.text(position + offset, 0.02, "n/a", rotation=90, ha="center",
                          va="bottom", fontsize=7)
        axes.set_xticks(positions, classes, rotation=45, ha="right", fontsize=8)
        axes.set_ylim(0, 1.05)
        axes.set_ylabel(f"test AUC ({model})")
        title = f"{dataset}: per-class AUC at labeled={tag} (settings {settings})"
        diffs = differences.get(settings, "")
        axes.set_title(title + (f"\n{diffs}" if diffs else ""), fontsize=9)
        axes.axhline(0.5, color="grey", linewidth=0.8, linestyle="--")
        axes.legend(fontsize=7, ncol=1 if len(methods) <= 6 else 3)
        name = f"{dataset}_{settings}_{model}_per_class_labeled={tag}"
        paths.append(_save(figure, out_dir / f"{_safe_name(name)}.png"))
    if wanted is not None and not paths:
        available = ", ".join(sorted(seen_tags, key=labeled_order)) or "none"
        raise UserError(f"no {model} runs with per-class AUC at labeled={wanted}; "
                        f"labeled amounts present: {available}")
    return paths
