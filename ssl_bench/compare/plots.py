"""PNG plots of a comparison: test metric against labeled amount, per-class AUC bars.

Made to go into a paper: matplotlib's ``seaborn-v0_8-paper`` style, error bars that say
what they are (SD over seeds, or a 95% t-interval of the mean: ``--error-bars``) and
never leave [0, 1], methods dodged at each labeled amount on a log axis, legends beside
the axes, y-ranges that show the differences, and the settings hash in a footnote
rather than the title.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ssl_bench.compare.groups import describe_differences
from ssl_bench.compare.runs import MODELS, available_metrics, labeled_order
from ssl_bench.compare.summary import DEFAULT_BASELINE, method_order, summarize
from ssl_bench.core.atomic import atomic_write_bytes
from ssl_bench.core.errors import UserError
from ssl_bench.data.labeled import labeled_tag, parse_labeled

#: matplotlib style of every plot (sizes and fonts come from it, not from this code).
STYLE = "seaborn-v0_8-paper"
#: What ``--error-bars`` may ask for, and how a plot's footnote names it.
ERROR_BARS: dict[str, str] = {"sd": "error bars: SD over seeds",
                              "ci95": "error bars: 95% t-interval of the mean over seeds"}


def _figure(width: float, height: float) -> Any:
    # The object-oriented API renders with Agg without touching pyplot's global backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=150, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return atomic_write_bytes(path, buffer.getvalue())


def error_half_widths(std: np.ndarray, n: np.ndarray, kind: str) -> np.ndarray:
    """Half-widths of the error bars: the SD, or the 95% t-interval ``t * SD / sqrt(n)``
    (0 where fewer than two seeds make either undefined)."""
    if kind not in ERROR_BARS:
        raise UserError(f"--error-bars must be one of {', '.join(ERROR_BARS)}, got {kind!r}")
    std = np.nan_to_num(np.asarray(std, dtype=float), nan=0.0)
    n = np.asarray(n, dtype=float)
    if kind == "sd":
        return np.where(n > 1, std, 0.0)
    from scipy.stats import t

    with np.errstate(invalid="ignore", divide="ignore"):
        width = t.ppf(0.975, np.maximum(n - 1, 1)) * std / np.sqrt(n)
    return np.where(n > 1, width, 0.0)


def clipped_errors(mean: np.ndarray, half: np.ndarray) -> np.ndarray:
    """``[lower, upper]`` error lengths that keep the bars inside [0, 1]."""
    mean = np.asarray(mean, dtype=float)
    lower = np.minimum(half, np.clip(mean, 0.0, 1.0))
    upper = np.minimum(half, np.clip(1.0 - mean, 0.0, 1.0))
    return np.vstack([lower, upper])


def _footnote(figure: Any, settings: str, note: str, error_bars: str) -> None:
    parts = [ERROR_BARS[error_bars], f"settings {settings}" + (f" ({note})" if note else "")]
    figure.text(0.0, 0.0, "; ".join(parts), ha="left", va="top", fontsize="x-small",
                color="0.35", wrap=True)


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


def _dodge(count: int, spread: float = 0.035) -> np.ndarray:
    """Multiplicative x offsets (on a log axis) that set ``count`` methods side by side."""
    if count <= 1:
        return np.ones(max(count, 1))
    return 10 ** np.linspace(-spread, spread, count)


def plot_learning_curves(df: pd.DataFrame, out_dir: str | Path, metric: str = "auc",
                         model: str = "reported", baseline: str | None = None,
                         summary: pd.DataFrame | None = None,
                         error_bars: str = "sd") -> list[Path]:
    """``metric`` against the labeled amount (log axis), one line per method, methods
    dodged at each amount; error bars per ``error_bars`` (see :data:`ERROR_BARS`).

    One PNG per data set x settings group (and a separate one for labeled *counts* when
    a group mixes fractions and counts).
    """
    from matplotlib import style

    error_half_widths(np.zeros(0), np.zeros(0), error_bars)  # an unknown kind fails first
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
            with style.context(STYLE):
                paths.append(_curve(part, summary, out_dir, dataset, settings, metric, model,
                                    counts, error_bars))
    return paths


def _curve(part: pd.DataFrame, summary: pd.DataFrame, out_dir: Path, dataset: str,
           settings: str, metric: str, model: str, counts: bool, error_bars: str) -> Path:
    figure = _figure(6.0, 3.6)
    axes = figure.add_subplot()
    methods = method_order(part["method"], summary.attrs.get("baseline", ""))
    styles = method_styles(methods)
    for method, factor in zip(methods, _dodge(len(methods)), strict=True):
        rows = part[part["method"] == method]
        rows = rows.iloc[sorted(range(len(rows)),
                                key=lambda i: labeled_order(rows["labeled_tag"].iloc[i]))]
        x = rows["labeled_tag"].astype(float).to_numpy() * factor
        y = rows["mean"].astype(float).to_numpy()
        half = error_half_widths(rows["std"].to_numpy(), rows["n"].to_numpy(), error_bars)
        axes.errorbar(x, y, yerr=clipped_errors(y, half), capsize=2.5, label=method,
                      **styles[method])
    ticks = sorted(set(part["labeled_tag"]), key=labeled_order)
    axes.set_xscale("log")
    axes.set_xticks([float(t) for t in ticks], ticks)
    axes.minorticks_off()
    axes.set_xlabel("labeled images (count, log scale)" if counts
                    else "labeled fraction of the training images (log scale)")
    axes.set_ylabel(f"test {metric} ({model} model)")
    axes.set_title(f"{dataset}: test {metric} by labeled amount")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    _footnote(figure, settings, part["settings_note"].iloc[0], error_bars)
    name = f"{dataset}_{settings}_{metric}_{model}_curve{'_counts' if counts else ''}"
    return _save(figure, out_dir / f"{_safe_name(name)}.png")


def _classes(df: pd.DataFrame, dataset: str, group: pd.DataFrame) -> list[str]:
    known = df.attrs.get("classes", {}).get(dataset)
    if known:
        return [c for c in known if f"auc_{c}" in group.columns]
    metrics = set(available_metrics(df))
    return [c[4:] for c in group.columns
            if c.startswith("auc_") and c in metrics and group[c].notna().any()]


def plot_per_class(df: pd.DataFrame, out_dir: str | Path, model: str = "reported",
                   fraction: str | float | int | None = None,
                   baseline: str | None = None, error_bars: str = "sd") -> list[Path]:
    """Grouped bars of per-class test AUC per method, one PNG per data set x settings
    group x labeled amount (``fraction``: only that one).

    The y-axis starts below the lowest bar (not at 0) so differences show; error bars per
    ``error_bars``, clipped to [0, 1]; a class a method could not be scored on is marked.
    """
    from matplotlib import style

    if model not in MODELS:
        raise UserError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    error_half_widths(np.zeros(0), np.zeros(0), error_bars)
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
        for tag in tags if wanted is None else [t for t in tags if t == wanted]:
            runs = group[group["labeled_tag"] == tag]
            with style.context(STYLE):
                paths.append(_bars(runs, classes, out_dir, dataset, settings, tag, model,
                                   baseline, differences.get(settings, ""), error_bars))
    if wanted is not None and not paths:
        available = ", ".join(sorted(seen_tags, key=labeled_order)) or "none"
        raise UserError(f"no {model} runs with per-class AUC at labeled={wanted}; "
                        f"labeled amounts present: {available}")
    return paths


def _bars(runs: pd.DataFrame, classes: list[str], out_dir: Path, dataset: str, settings: str,
          tag: str, model: str, baseline: str, note: str, error_bars: str) -> Path:
    methods = method_order(runs["method"], baseline)
    styles = method_styles(methods)
    figure = _figure(min(14.0, max(6.0, 0.11 * len(classes) * len(methods) + 2.5)), 3.6)
    axes = figure.add_subplot()
    width = 0.8 / len(methods)
    positions = np.arange(len(classes), dtype=float)
    lows, highs = [], []
    undefined: list[tuple[float, np.ndarray]] = []  # (offset, classes without a value)
    for i, method in enumerate(methods):
        per_seed = runs[runs["method"] == method].groupby("seed")[
            [f"auc_{c}" for c in classes]].mean()
        means = per_seed.mean(skipna=True).to_numpy(dtype=float)
        stds = per_seed.std(ddof=1, skipna=True).to_numpy(dtype=float)
        half = error_half_widths(stds, per_seed.notna().sum().to_numpy(), error_bars)
        errors = clipped_errors(np.nan_to_num(means, nan=0.0), half)
        offset = (i - (len(methods) - 1) / 2) * width
        defined = ~np.isnan(means)
        axes.bar((positions + offset)[defined], means[defined], width,
                 yerr=errors[:, defined], capsize=1.5, label=f"{method} (n={len(per_seed)})",
                 color=styles[method]["color"], error_kw={"elinewidth": 0.8, "ecolor": "0.2"})
        if defined.any():
            lows.append(float(np.min(means[defined] - errors[0, defined])))
            highs.append(float(np.max(means[defined] + errors[1, defined])))
        undefined.append((offset, ~defined))
    nowhere = np.logical_and.reduce([mask for _, mask in undefined])
    for offset, mask in undefined:  # one method without a value: its own mark
        for position in positions[mask & ~nowhere]:
            axes.text(position + offset, 0.01, "n/a", rotation=90, ha="center", va="bottom",
                      fontsize="xx-small", transform=axes.get_xaxis_transform())
    for position in positions[nowhere]:  # no method: the class had no test positive
        axes.text(position, 0.5, "not measurable on the test part", rotation=90,
                  ha="center", va="center", fontsize="x-small",
                  transform=axes.get_xaxis_transform())
    low = max(0.0, min(lows, default=0.5) - 0.05)
    axes.set_ylim(np.floor(low * 20) / 20, min(1.0, max(highs, default=1.0) + 0.02))
    axes.set_xticks(positions, classes, rotation=45 if len(classes) > 8 else 0,
                    ha="right" if len(classes) > 8 else "center")
    axes.set_xlabel("class")
    axes.set_ylabel(f"test AUC ({model} model)")
    axes.set_title(f"{dataset}: per-class test AUC, labeled {tag}")
    if axes.get_ylim()[0] < 0.5:
        axes.axhline(0.5, color="0.5", linewidth=0.8, linestyle="--")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    _footnote(figure, settings, note, error_bars)
    name = f"{dataset}_{settings}_{model}_per_class_labeled={tag}"
    return _save(figure, out_dir / f"{_safe_name(name)}.png")
