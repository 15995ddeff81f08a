"""``ssl-bench report``: one self-contained HTML page a person reads.

The same data as ``compare`` -- the comparison table with its paired tests and notes,
the learning-curve and per-class plots -- plus the validation curves of every run
(mean +- SD bands per method) and, per settings group, the settings every run shares and
the provenance of its runs (commits, library versions, data and split fingerprints,
devices). Figures are PNGs embedded as ``data:`` URIs, so the file can be mailed or
attached to a lab notebook; a few lines of script only record, on the page itself,
whether every figure decoded (what the headless-browser check reads).
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ssl_bench.compare.arguments import BOOTSTRAP_RESAMPLES
from ssl_bench.compare.bootstrap_table import bootstrap_cells, bootstrap_note, bootstrap_table
from ssl_bench.compare.claims import across_views, claims_cells, claims_note, levels_cells
from ssl_bench.compare.command import load_summary
from ssl_bench.compare.confusion import (
    THRESHOLD,
    describe,
    multi_label_cells,
    plot_confusions,
    pooled_confusions,
)
from ssl_bench.compare.curves import plot_validation_curves
from ssl_bench.compare.plots import plot_learning_curves, plot_per_class
from ssl_bench.compare.reliability import plot_reliability
from ssl_bench.compare.tables import method_cells, notes, pair_cells
from ssl_bench.compare.views import summarize_views
from ssl_bench.core.atomic import atomic_write_text
from ssl_bench.core.errors import UserError
from ssl_bench.runs.run_dir import CONFIG

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 72em;
       padding: 0 1em; color: #1b1b1b; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.88em; }
th, td { border: 1px solid #d4d4d4; padding: 0.25em 0.55em; text-align: left; }
th { background: #f1f1f1; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; }
figcaption, .note { color: #555; font-size: 0.88em; }
details { margin: 0.6em 0; } code { font-size: 0.92em; }
"""

#: Sets ``data-figures`` (``"<loaded>/<total>"``) and ``data-errors`` on <body> once the
#: page has loaded: what a headless browser's dumped DOM shows.
CHECK_SCRIPT = """
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(String(e.message || e)));
window.addEventListener("load", () => {
  const images = [...document.images];
  const loaded = images.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.figures = loaded + "/" + images.length;
  document.body.dataset.errors = String(window.__errors.length);
});
"""


def _table(header: Sequence[str], body: Sequence[Sequence[str]],
           numbers: bool = False) -> str:
    """An HTML table; ``numbers``: right-align cells that start with a number."""
    def cell(text: str, tag: str) -> str:
        numeric = numbers and tag == "td" and text[:1] != "" and text[:1] in "[+-0123456789."
        return f"<{tag}{' class=num' if numeric else ''}>{html.escape(text)}</{tag}>"

    rows = ["<tr>" + "".join(cell(h, "th") for h in header) + "</tr>"]
    rows += ["<tr>" + "".join(cell(c, "td") for c in row) + "</tr>" for row in body]
    return "<table>\n" + "\n".join(rows) + "\n</table>"


def _figure(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _read_config(path: str) -> dict[str, Any]:
    try:
        return json.loads((Path(path) / CONFIG).read_text())
    except (OSError, ValueError):
        return {}


def _counted(values: Sequence[str]) -> str:
    counts = Counter(values)
    return "; ".join(f"{v} ({n} run{'s' * (n != 1)})" for v, n in sorted(counts.items()))


def provenance(runs: pd.DataFrame) -> list[tuple[str, str]]:
    """What produced the runs of one settings group, each line counted over its runs."""
    records = [_read_config(p) for p in sorted(runs["path"].unique())]
    env = [r.get("environment", {}) for r in records]
    data = [r.get("dataset", {}) for r in records]
    commits = [f"{(e.get('git') or {}).get('commit') or 'unknown'}"[:12]
               + (" (uncommitted changes)" if (e.get("git") or {}).get("dirty") else "")
               for e in env]
    lines = [("runs", str(len(records))), ("git commit", _counted(commits))]
    packages = sorted({k for e in env for k in (e.get("versions") or {})})
    for package in packages:
        lines.append((package, _counted([str((e.get("versions") or {}).get(package, "?"))
                                         for e in env])))
    lines += [("data fingerprint", _counted([str(d.get("fingerprint", "?")) for d in data])),
              ("images in the data set", _counted([str(d.get("size", "?")) for d in data])),
              ("distinct splits", str(len({d.get("split_fingerprint") for d in data}))),
              ("device", _counted([str(e.get("device", "?")) for e in env])),
              # (CPUs of other makers round differently: runs diverge from the first steps)
              ("processor", _counted([str(e.get("processor", "?")) for e in env])),
              ("platform", _counted([str(e.get("platform", "?")) for e in env]))]
    return lines


def _settings_section(df: pd.DataFrame) -> str:
    configs = df.attrs.get("settings_configs", {})
    parts = []
    for (dataset, settings), runs in df.groupby(["dataset", "settings"], sort=True):
        methods = ", ".join(sorted(runs["method"].unique()))
        shared = sorted((k, json.dumps(v, default=str) if not isinstance(v, str) else v)
                        for k, v in configs.get(settings, {}).items())
        parts.append(
            f"<h3>{html.escape(str(dataset))}, settings <code>{html.escape(settings)}</code>"
            f"</h3><p class=note>methods: {html.escape(methods)}</p>"
            + _table(["provenance", "value"], provenance(runs))
            + "<details><summary>settings every run of this group shares</summary>"
            + _table(["setting", "value"], shared) + "</details>")
    return "\n".join(parts)


def _views_section(df: pd.DataFrame, metric: str, baseline: str | None,
                   pairs: Sequence[tuple[str, str]] | None) -> list[str]:
    """The comparison in every robustness view (:mod:`.views`)."""
    out = ["<h2>Robustness views</h2><p class=note>the same comparison for the reported "
           "model, the student only, the teacher only and the last step; a claim holds "
           "only where it holds in each</p>"]
    every_view = summarize_views(df, metric, baseline, pairs)
    for view, table, note in every_view:
        out.append(f"<h3>{html.escape(view)}</h3>")
        if table is None:
            out.append(f"<p class=note>{html.escape(note)}</p>")
            continue
        out.append(_table(*method_cells(table), numbers=True))
        header, body = pair_cells(table)
        if body:
            out.append(_table(header, body, numbers=True))
        if note:
            out.append(f"<p class=note>{html.escape(note)}</p>")
    levels, claims = across_views(every_view)
    if not levels.empty:
        out += ["<h3>Across the views</h3>",
                _table(*levels_cells(levels, levels.attrs["views"], metric), numbers=True)]
    if not claims.empty:
        out += [_table(*claims_cells(claims), numbers=True),
                f"<p class=note>{html.escape(claims_note(claims))}</p>"]
    return out


def _tuning_section(folders: Sequence[str | Path]) -> list[str]:
    """Each tuning study behind these results: its budget per method and its choices."""
    from ssl_bench.tuning.records import budget_rows, describe, find_tuning_records

    found = find_tuning_records(folders)
    if not found:
        return []
    body = ["<h2>Tuning</h2>"]
    for path, record in found:
        try:
            body += [f"<p class=note>{html.escape(str(path))}: {html.escape(describe(record))}"
                     "</p>", _table(*budget_rows(record), numbers=True)]
        except (KeyError, TypeError, AttributeError):
            body += [f"<p class=note>{html.escape(str(path))}: not a tuning record</p>"]
    return body


def build_report(folders: Sequence[str | Path], output: str | Path, *, metric: str = "auc",
                 model: str = "reported", baseline: str | None = None,
                 pairs: Sequence[tuple[str, str]] | None = None,
                 error_bars: str = "sd",
                 bootstrap: int = BOOTSTRAP_RESAMPLES) -> tuple[Path, list[str]]:
    """Write the HTML report of the runs below ``folders``; return its path and the
    loading warnings (also shown on the page)."""
    output = Path(output)
    if output.is_dir():
        raise UserError(f"output {output} is a folder; give a file name such as report.html")
    df, summary, warnings = load_summary(folders, metric, model, baseline, pairs)
    base = summary.attrs["baseline"]
    intervals, more = bootstrap_table(df, metric, model, baseline, pairs, bootstrap)
    warnings = [*warnings, *more]
    with tempfile.TemporaryDirectory() as scratch:
        curves = plot_learning_curves(df, Path(scratch, "curves"), metric=metric, model=model,
                                      baseline=base, summary=summary, error_bars=error_bars)
        classes = plot_per_class(df, Path(scratch, "classes"), model=model, baseline=base,
                                 error_bars=error_bars)
        reliability = plot_reliability(df, Path(scratch, "reliability"), model=model,
                                       baseline=base)
        confusions = pooled_confusions(df, model, base)
        confusion_figures = [
            _figure(plot_confusions(cell, Path(scratch, "confusion"), model),
                    f"confusion matrices ({model} model): {describe(cell)}")
            for cell in confusions if cell[3] == "single"]
        confusion_figures += [
            f"<h3>{html.escape(describe(cell))}: per finding at probability {THRESHOLD:g}, "
            "seeds pooled</h3>" + _table(*multi_label_cells(cell), numbers=True)
            for cell in confusions if cell[3] == "multi"]
        validation = plot_validation_curves(df, Path(scratch, "validation"), metric=metric,
                                            model=model, baseline=base)
        figures = {
            "Test metric by labeled amount": [
                _figure(p, f"test {metric} ({model} model) by labeled amount: {p.stem}")
                for p in curves],
            "Per-class test AUC": [_figure(p, f"per-class AUC: {p.stem}") for p in classes],
            "Calibration: reliability of the test probabilities": [
                _figure(p, f"reliability diagram ({model} model): {p.stem}")
                for p in reliability],
            "Confusion matrices of the test predictions": confusion_figures,
            "Validation curves of every run": [
                _figure(p, f"validation {metric} during training: {p.stem}")
                for p in validation],
        }
    pair_header, pair_body = pair_cells(summary)
    body = [f"<h1>ssl-bench report: {html.escape(', '.join(str(f) for f in folders))}</h1>",
            f"<p class=note>{len(df['path'].unique())} finished runs; written "
            f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; test {metric} of the "
            f"{model} model, checkpoints chosen on validation</p>",
            "<h2>Comparison</h2>", _table(*method_cells(summary), numbers=True)]
    if pair_body:
        body += ["<h3>Pairs</h3>", _table(pair_header, pair_body, numbers=True)]
    body += ["<ul class=note>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes(summary))
             + "</ul>"]
    if not intervals.empty:
        body += ["<h3>Bootstrap over test images</h3>",
                 _table(*bootstrap_cells(intervals), numbers=True),
                 f"<p class=note>{html.escape(bootstrap_note(intervals))}</p>"]
    body += _views_section(df, metric, baseline, pairs)
    if warnings:
        body += ["<h3>Warnings</h3><ul>" + "".join(f"<li>{html.escape(w)}</li>"
                                                   for w in warnings) + "</ul>"]
    for title, items in figures.items():
        if items:
            body += [f"<h2>{html.escape(title)}</h2>", *items]
    body += _tuning_section(folders)
    body += ["<h2>Settings and provenance</h2>", _settings_section(df)]
    page = ("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width, initial-scale=1'>"
            f"<title>ssl-bench report</title><style>{STYLE}</style>"
            f"<script>{CHECK_SCRIPT}</script></head>\n<body>\n" + "\n".join(body)
            + "\n</body></html>\n")
    return atomic_write_text(output, page), warnings
