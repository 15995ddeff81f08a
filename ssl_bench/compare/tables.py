"""A :func:`~.summary.summarize` table as text: rich tables, markdown, CSV, LaTeX, JSON.

Two tables: the methods (each against the baseline: gain, 95% interval of the paired
difference, d_z, p and Holm-adjusted p) and, when pairs were tested, the pairs. Notes for
the reader (what the numbers are, what was dropped, what sets settings groups apart)
follow both. CSV holds the method table (``pair_csv`` the pair table); JSON holds all.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np
import pandas as pd

from ssl_bench.compare.arguments import FORMATS
from ssl_bench.compare.statistics import CONFIDENCE, CORRECTION_NAME, EFFECT_NAME, TEST_NAME
from ssl_bench.compare.summary import pair_table
from ssl_bench.core.errors import UserError
from ssl_bench.training.calibration import LOWER_IS_BETTER

CI_HEADER = f"{round(CONFIDENCE * 100)}% CI"


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _value_cell(row: Any) -> str:
    if _missing(row["mean"]):
        return "n/a"
    if _missing(row["std"]):
        return f"{row['mean']:.4f}"
    return f"{row['mean']:.4f} ± {row['std']:.4f}"


def _seen(value: Any) -> str:
    """Mean labeled images seen per run (labeled images per step x steps)."""
    return "" if _missing(value) else f"{value:,.0f}"


def _signed(value: Any) -> str:
    return "" if _missing(value) else f"{value:+.4f}"


def _interval(row: Any) -> str:
    if _missing(row["ci_low"]):
        return ""
    return f"[{row['ci_low']:+.4f}, {row['ci_high']:+.4f}]"


def _effect(row: Any) -> str:
    return "" if _missing(row["effect_size"]) else f"{row['effect_size']:+.2f}"


def _p_cells(row: Any, note: str) -> list[str]:
    """The p-value (with its number of pairs) and the Holm-adjusted one."""
    if _missing(row["test"]):
        return ["" if note in ("baseline", "") or _missing(note) else "n/a", ""]
    pairs = int(row["n_pairs"])
    if _missing(row["p_value"]):
        return [f"n/a (n={pairs})", ""]
    return [f"{row['p_value']:.3g} (n={pairs})",
            "" if _missing(row["p_holm"]) else f"{row['p_holm']:.3g}"]


def _attr(summary: pd.DataFrame, key: str, default: str) -> str:
    value = summary.attrs.get(key)
    if value:
        return str(value)
    return str(summary[key].iloc[0]) if key in summary and len(summary) else default


def method_cells(summary: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and text cells of the method table (shared by markdown, LaTeX and rich)."""
    metric = _attr(summary, "metric", "metric")
    model = _attr(summary, "model", "model")
    baseline = _attr(summary, "baseline", "baseline")
    header = ["dataset", "settings", "method", "labeled", f"{metric} ({model})", "n",
              "labeled seen", "converged", f"gain vs {baseline}", CI_HEADER, "d_z",
              f"p vs {baseline}",
              f"p {CORRECTION_NAME}"]
    body = []
    for _, row in summary.iterrows():
        body.append([str(row["dataset"]), str(row["settings"]), str(row["method"]),
                     str(row["labeled_tag"]), _value_cell(row), str(int(row["n"])),
                     _seen(row.get("labeled_seen")), str(row.get("converged") or ""),
                     _signed(row["gain"]), _interval(row), _effect(row),
                     *_p_cells(row, row["test_note"])])
    return header, body


def pair_cells(summary: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and text cells of the pair table (empty body when no pair was tested)."""
    header = ["dataset", "settings", "labeled", "comparison", "n", "difference", CI_HEADER,
              "d_z", "p", f"p {CORRECTION_NAME}"]
    body = []
    for _, row in pair_table(summary).iterrows():
        body.append([str(row["dataset"]), str(row["settings"]), str(row["labeled_tag"]),
                     f"{row['first']} vs {row['second']}", str(int(row["n_pairs"])),
                     _signed(row["gain"]), _interval(row), _effect(row),
                     *_p_cells(row, row["note"])])
    return header, body


def notes(summary: pd.DataFrame) -> list[str]:
    """What the numbers are, then what sets settings groups apart, then summarize's notes."""
    metric = _attr(summary, "metric", "metric")
    model = _attr(summary, "model", "model")
    lines = [f"{metric} of the {model} model on the test split: mean ± std (ddof=1) over "
             f"seeds; p: {TEST_NAME} across seeds, runs paired by seed (n = pairs); "
             f"{CI_HEADER}: of the mean paired difference; d_z: {EFFECT_NAME} (mean / sd of "
             f"the paired differences); p {CORRECTION_NAME}: adjusted over the methods "
             f"tested against the baseline (and over the pairs) at each labeled amount"]
    if metric in LOWER_IS_BETTER:
        lines[0] += (f"; {metric}: lower is better, so a negative gain or difference is an "
                     "improvement")
    seen = set()
    for _, row in summary.iterrows():
        key = (row["dataset"], row["settings"])
        if row["settings_note"] and key not in seen:
            seen.add(key)
            lines.append(f"{row['dataset']} settings {row['settings']}: {row['settings_note']}")
    lines.extend(summary.attrs.get("notes", []))
    return lines


#: What ends a line for markdown (and ``str.splitlines``): a cell must stay on its row.
_LINE_BREAKS = re.compile("[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")
#: First characters that make a spreadsheet evaluate a cell as a formula (OWASP's list).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def md_cell(text: str) -> str:
    """``text`` as one markdown table cell (or note), shown as typed and never as markup.

    ``&``, ``<`` and ``>`` become entities: a method name or setting comes from a run's
    files, and raw, ``<script>`` in it would run in the page the markdown renders to.
    ``\\`` and ``|`` are backslash-escaped (a ``|`` would split the cell) and line breaks
    become spaces (one would end the row); ``](`` becomes ``]\\(``, so ``[x](javascript:...)``
    is not a link (the brackets of a confidence interval stay as they are).
    """
    text = _LINE_BREAKS.sub(" ", text).replace("\\", "\\\\").replace("|", "\\|")
    text = text.replace("](", "]\\(")
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def csv_cell(value: Any) -> Any:
    """``value`` as a CSV cell that a spreadsheet shows and never runs.

    Text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (OWASP's
    CSV-injection list) gets a leading ``'``, which spreadsheets read as "text": a method
    named ``=HYPERLINK(...)`` would otherwise be a live formula. Numbers, negative ones
    included, and missing values are not text and stay as they are.
    """
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def to_safe_csv(table: pd.DataFrame) -> str:
    """``table`` as CSV, its text cells and column names passed through :func:`csv_cell`
    (numeric columns are written untouched)."""
    safe = table.copy()
    for column in safe.columns:
        if not pd.api.types.is_numeric_dtype(safe[column]):
            safe[column] = safe[column].map(csv_cell)
    safe.columns = [csv_cell(column) for column in safe.columns]
    return safe.to_csv(index=False, lineterminator="\n")


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "±": r"$\pm$",
}


def _latex_escape(text: str) -> str:
    out = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text.replace("\n", " "))
    return out.replace("±", r"$\pm$")


def plain(value: Any) -> Any:
    """JSON-safe Python value: NaN/NA become None, numpy scalars Python ones."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def md_table(header: list[str], body: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(md_cell(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(md_cell(c) for c in cells) + " |" for cells in body]


def _latex_table(header: list[str], body: list[list[str]], spec: str, caption: str,
                 label: str) -> list[str]:
    """A ``table`` float with a booktabs ``tabular`` (``\\usepackage{booktabs}``)."""
    lines = [r"\begin{table}[tbp]", r"\centering", r"\small",
             rf"\caption{{{_latex_escape(caption)}}}", rf"\label{{{label}}}",
             rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(_latex_escape(h) for h in header) + r" \\", r"\midrule"]
    lines += [" & ".join(_latex_escape(c) for c in cells) + r" \\" for cells in body]
    return lines + [r"\bottomrule", r"\end{tabular}", r"\end{table}"]


def pair_csv(summary: pd.DataFrame) -> str:
    """The pair table as CSV (empty string when no pair was tested)."""
    pairs = pair_table(summary)
    return "" if pairs.empty else to_safe_csv(pairs)


def render(summary: pd.DataFrame, fmt: str) -> str:
    """The summary as ``md`` (markdown), ``csv``, ``latex`` (tabular) or ``json`` text."""
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "csv":
        return to_safe_csv(summary)
    if fmt == "json":
        document = {
            "metric": summary.attrs.get("metric"), "model": summary.attrs.get("model"),
            "baseline": summary.attrs.get("baseline"), "test": TEST_NAME,
            "correction": CORRECTION_NAME, "effect_size": EFFECT_NAME,
            "confidence": CONFIDENCE, "notes": notes(summary),
            "rows": summary.to_dict(orient="records"),
            "pairs": pair_table(summary).to_dict(orient="records"),
        }
        return json.dumps(plain(document), indent=2, allow_nan=False) + "\n"
    tables = [method_cells(summary)]
    pair_header, pair_body = pair_cells(summary)
    if pair_body:
        tables.append((pair_header, pair_body))
    if fmt == "md":
        lines: list[str] = []
        for header, body in tables:
            lines += md_table(header, body) + [""]
        lines += [f"- {md_cell(note)}" for note in notes(summary)]
        return "\n".join(lines) + "\n"
    lines = [r"% needs \usepackage{booktabs}"]
    lines += [f"% {_latex_escape(note)}" for note in notes(summary)]
    metric, model = _attr(summary, "metric", "metric"), _attr(summary, "model", "model")
    captions = [(f"Test {metric} of the {model} model: mean ± SD over seeds, and paired "
                 "tests against the baseline.", "tab:ssl-bench-methods"),
                (f"Paired comparisons of test {metric} between methods.",
                 "tab:ssl-bench-pairs")]
    first_note = notes(summary)[0]
    for (header, body), (caption, label) in zip(tables, captions, strict=False):
        spec = "".join("r" if h in ("n", "labeled") else "l" for h in header)
        lines += _latex_table(header, body, spec, f"{caption} {first_note}.", label)
    return "\n".join(lines) + "\n"


def print_summary(summary: pd.DataFrame, console: Any) -> None:
    """Rich tables, one per data set x settings group (its pairs below), then the notes."""
    from rich.markup import escape
    from rich.table import Table

    if summary.empty:
        console.print(f"no {escape(_attr(summary, 'metric', 'metric'))} values for the "
                      f"{escape(_attr(summary, 'model', 'model'))} model")
    header, body = method_cells(summary)
    pair_header, pair_body = pair_cells(summary)
    for (dataset, settings), group in summary.groupby(["dataset", "settings"], sort=False):
        note = group["settings_note"].iloc[0]
        table = Table(title=escape(f"{dataset} (settings {settings})"),
                      caption=escape(f"differs from the other groups: {note}") if note else None)
        columns = [3, 2, *range(4, len(header))]  # labeled, method, then the numbers
        for i in columns:
            table.add_column(escape(header[i]), justify="left" if i == 2 else "right")
        previous = None
        for cells in body:
            if (cells[0], cells[1]) != (dataset, settings):
                continue
            if previous is not None and cells[3] != previous:
                table.add_section()
            previous = cells[3]
            table.add_row(*[escape(cells[i]) for i in columns])
        console.print(table)
        rows = [cells for cells in pair_body if (cells[0], cells[1]) == (dataset, settings)]
        if rows:
            pairs = Table(title=escape(f"{dataset} (settings {settings}): pairs"))
            for name in pair_header[2:]:
                pairs.add_column(escape(name), justify="left" if name == "comparison"
                                 else "right")
            for cells in rows:
                pairs.add_row(*[escape(c) for c in cells[2:]])
            console.print(pairs)
    # settings differences are already the tables' captions
    for line in notes(summary)[:1] + summary.attrs.get("notes", []):
        console.print(escape(line), highlight=False, soft_wrap=True)
