"""``ssl-bench compare``: load runs, summarise, print or write the tables, draw the plots."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ssl_bench.compare.arguments import BOOTSTRAP_RESAMPLES, FORMATS, SUFFIX_FORMATS, VIEWS
from ssl_bench.compare.bootstrap_table import bootstrap_markdown, bootstrap_table, print_bootstrap
from ssl_bench.compare.claims import Views, across_markdown, across_views, print_across
from ssl_bench.compare.plots import plot_learning_curves, plot_per_class
from ssl_bench.compare.reliability import plot_reliability
from ssl_bench.compare.runs import load_runs
from ssl_bench.compare.summary import summarize
from ssl_bench.compare.tables import pair_csv, plain, print_summary, render, to_safe_csv
from ssl_bench.compare.views import summarize_views
from ssl_bench.core.atomic import atomic_write_text
from ssl_bench.core.errors import UserError


def _output_format(output: Path, fmt: str | None) -> str:
    if output.is_dir():
        raise UserError(f"output {output} is a folder; give a file name")
    if fmt is not None:
        return fmt
    found = SUFFIX_FORMATS.get(output.suffix.lower())
    if found is None:
        raise UserError(f"cannot tell the format of {output} from its suffix; pass a format "
                        f"({', '.join(FORMATS)})")
    return found


def load_summary(folders: Sequence[str | Path], metric: str, model: str,
                 baseline: str | None, pairs: Sequence[tuple[str, str]] | None,
                 ) -> tuple[Any, Any, list[str]]:
    """The runs below ``folders``, their summary and the loading warnings; a summary with
    no value of ``metric`` is an error (what ``compare`` and ``report`` both start with)."""
    df, warnings = load_runs([Path(f) for f in folders])
    summary = summarize(df, metric=metric, model=model, baseline=baseline, pairs=pairs)
    if summary.empty:
        raise UserError(f"no {metric} values for the {model} model in the runs found"
                        + "".join(f"; {note}" for note in summary.attrs.get("notes", [])))
    return df, summary, warnings


def _text(every_view: Views, intervals: Any, fmt: str, metric: str, views: bool) -> str:
    """What ``fmt`` prints and writes: markdown and JSON hold every view and the tables
    across them (with ``--views``); CSV and LaTeX hold the first view."""
    summary = every_view[0][1]
    if fmt == "json":
        document = json.loads(render(summary, fmt))
        if views:
            document["views"] = {view: None if table is None else json.loads(render(table, fmt))
                                 for view, table, _ in every_view[1:]}
            levels, claims = across_views(every_view)
            document["across_views"] = {"levels": levels.to_dict(orient="records"),
                                        "claims": claims.to_dict(orient="records")}
        return json.dumps(plain(document), indent=2, allow_nan=False) + "\n"
    if fmt != "md":
        return render(summary, fmt)
    text = render(summary, fmt) + bootstrap_markdown(intervals)
    for view, table, note in every_view[1:]:
        title = f"view: {view}" + (f" -- {note}" if table is None else "")
        text += f"\n{title}\n" + ("" if table is None else render(table, fmt))
    if views:
        text += across_markdown(*across_views(every_view), metric)
    return text


def compare_command(folders: Sequence[str | Path], metric: str = "auc", model: str = "reported",
                    fmt: str | None = None, output: str | Path | None = None,
                    plot_dir: str | Path | None = None,
                    fraction: str | float | int | None = None, console: Any = None,
                    baseline: str | None = None,
                    pairs: Sequence[tuple[str, str]] | None = None,
                    error_bars: str = "sd", views: bool = False,
                    bootstrap: int = BOOTSTRAP_RESAMPLES) -> int:
    """Load, summarise, print/write, plot. Returns 0; problems raise :class:`UserError`.

    With ``fmt`` and no ``output`` the chosen format goes to stdout (warnings to stderr);
    otherwise the rich tables are printed. ``output`` is written atomically in ``fmt`` or
    the format its suffix names (a CSV output gets its pair table beside it, as
    ``<name>-pairs.csv``, and its bootstrap table as ``<name>-bootstrap.csv``). The
    bootstrap table (``bootstrap`` resamples; 0: none) follows the rich and markdown
    tables. Every check runs before anything is written.
    """
    from rich.console import Console

    console = console if console is not None else Console()
    if fmt is not None and fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    output = Path(output) if output is not None else None
    fmt_out = _output_format(output, fmt) if output is not None else None
    if plot_dir is not None and Path(plot_dir).exists() and not Path(plot_dir).is_dir():
        raise UserError(f"plot folder {plot_dir} exists and is not a folder")
    df, summary, warnings = load_summary(folders, metric, model, baseline, pairs)
    to_stdout = fmt is not None and output is None
    messages = Console(stderr=True) if to_stdout else console
    for warning in warnings:
        messages.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)
    intervals, more = bootstrap_table(df, metric, model, baseline, pairs, bootstrap)
    for warning in more:
        messages.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)
    every_view = [(model, summary, "")]
    if views:
        every_view += summarize_views(df, metric, baseline, pairs,
                                      [view for view in VIEWS if view != model])
    if to_stdout:
        console.out(_text(every_view, intervals, fmt, metric, views), highlight=False, end="")
    else:
        print_summary(summary, console)
        print_bootstrap(intervals, console)
        for view, table, note in every_view[1:]:
            title = f"view: {view}" + (f" -- {note}" if table is None else "")
            console.print(f"\n{title}", markup=False, highlight=False, soft_wrap=True)
            if table is not None:
                print_summary(table, console)
        if views:
            print_across(*across_views(every_view), metric, console)
    if output is not None and fmt_out is not None:
        atomic_write_text(output, _text(every_view, intervals, fmt_out, metric, views))
        messages.print(f"wrote {output}", markup=False, highlight=False, soft_wrap=True)
        beside = {"pairs": pair_csv(summary) if fmt_out == "csv" else ""}
        if fmt_out == "csv" and not intervals.empty:
            beside["bootstrap"] = intervals.to_csv(index=False)
        if fmt_out == "csv" and views:
            beside["claims"] = to_safe_csv(across_views(every_view)[1])
        for name, text in beside.items():
            if text:
                path = output.with_name(f"{output.stem}-{name}{output.suffix}")
                atomic_write_text(path, text)
                messages.print(f"wrote {path}", markup=False, highlight=False, soft_wrap=True)
    if plot_dir is not None:
        baseline_name = summary.attrs["baseline"]
        paths = plot_learning_curves(df, plot_dir, metric=metric, model=model,
                                     baseline=baseline_name, summary=summary,
                                     error_bars=error_bars)
        paths += plot_per_class(df, plot_dir, model=model, fraction=fraction,
                                baseline=baseline_name, error_bars=error_bars)
        paths += plot_reliability(df, plot_dir, model=model, baseline=baseline_name)
        for path in paths:
            messages.print(f"wrote {path}", markup=False, highlight=False, soft_wrap=True)
    return 0
