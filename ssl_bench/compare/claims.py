"""Across the robustness views: one table of levels and one of claims, so that a sentence
about a comparison can be checked against every view at once.

*Levels*: per data set x settings x labeled amount x method, the mean ± sd of the metric
in each view side by side, with the labeled images seen and the convergence flag (which
do not depend on the view). *Claims*: every comparison the views test (each method
against the baseline, each pair) with its paired difference and Holm-adjusted p in each
view, and a verdict that holds in all of them:

* ``ahead in every view`` / ``behind in every view``: Holm p < ``alpha`` with the same sign
  in each view that has the comparison;
* ``no significant difference in any view``: Holm p ≥ ``alpha`` (or untestable) in each;
* ``depends on the view: ...``: anything else, naming the views on each side.

A view that lacks the comparison (no teacher, no last-step test metric) is left out of
the verdict and said so in its cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from ssl_bench.compare.summary import pair_table
from ssl_bench.compare.tables import md_cell, md_table

#: Holm-adjusted p below which a view counts a difference as significant.
ALPHA = 0.05
#: The cell key of a comparison: where it was made.
WHERE = ("dataset", "settings", "labeled_tag")

Views = Sequence[tuple[str, pd.DataFrame | None, str]]


def _available(views: Views) -> list[tuple[str, pd.DataFrame]]:
    return [(view, table) for view, table, _ in views if table is not None and not table.empty]


def levels_table(views: Views) -> pd.DataFrame:
    """Mean ± sd per view, one row per data set x settings x labeled amount x method."""
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for view, table in _available(views):
        for record in table.to_dict(orient="records"):
            key = (*(record[k] for k in WHERE), record["method"])
            row = rows.setdefault(key, {
                **dict(zip(WHERE, key, strict=False)), "method": record["method"],
                "labeled_seen": record.get("labeled_seen"),
                "converged": record.get("converged")})
            row[f"{view}_mean"], row[f"{view}_std"] = record["mean"], record["std"]
    return pd.DataFrame(list(rows.values()))


def _comparisons(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Every tested comparison of one view: methods against the baseline, then pairs."""
    out = []
    for record in table.to_dict(orient="records"):
        if record["method"] != record["baseline"] and not pd.isna(record.get("n_pairs")) \
                and record.get("n_pairs"):
            out.append({**{k: record[k] for k in WHERE}, "first": record["method"],
                        "second": record["baseline"], "difference": record["paired_diff"],
                        "p_holm": record["p_holm"]})
    for record in pair_table(table).to_dict(orient="records"):
        out.append({**{k: record[k] for k in WHERE}, "first": record["first"],
                    "second": record["second"], "difference": record["paired_diff"],
                    "p_holm": record["p_holm"]})
    return out


def _sign(difference: float, p_holm: float, alpha: float) -> str:
    if pd.isna(p_holm) or p_holm >= alpha or pd.isna(difference) or difference == 0:
        return "n.s."
    return "ahead" if difference > 0 else "behind"


def verdict(signs: dict[str, str]) -> str:
    """The sentence that holds in every view, from each view's ``ahead``/``behind``/``n.s.``."""
    kinds = set(signs.values())
    if kinds == {"ahead"}:
        return "ahead in every view"
    if kinds == {"behind"}:
        return "behind in every view"
    if kinds == {"n.s."}:
        return "no significant difference in any view"
    parts = [f"{kind} in {', '.join(v for v, s in signs.items() if s == kind)}"
             for kind in ("ahead", "behind", "n.s.") if kind in kinds]
    return "depends on the view: " + "; ".join(parts)


def claims_table(views: Views, alpha: float = ALPHA) -> pd.DataFrame:
    """One row per comparison: difference and Holm p in each view, and the verdict."""
    available = _available(views)
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    signs: dict[tuple[Any, ...], dict[str, str]] = {}
    for view, table in available:
        for item in _comparisons(table):
            key = (*(item[k] for k in WHERE), item["first"], item["second"])
            row = rows.setdefault(key, {**{k: item[k] for k in WHERE},
                                        "comparison": f"{item['first']} vs {item['second']}"})
            row[f"{view}_difference"], row[f"{view}_p_holm"] = item["difference"], item["p_holm"]
            signs.setdefault(key, {})[view] = _sign(item["difference"], item["p_holm"], alpha)
    for key, row in rows.items():
        row["verdict"] = verdict(signs[key])
        row["views"] = ", ".join(signs[key])
    table = pd.DataFrame(list(rows.values()))
    table.attrs["views"] = [view for view, _ in available]
    table.attrs["alpha"] = alpha
    return table


def _number(value: Any, fmt: str) -> str:
    return "" if value is None or pd.isna(value) else format(value, fmt)


def levels_cells(levels: pd.DataFrame, view_names: Sequence[str],
                 metric: str) -> tuple[list[str], list[list[str]]]:
    """Header and text cells of the levels table."""
    header = ["dataset", "settings", "labeled", "method", "labeled seen", "converged",
              *(f"{metric} ({view})" for view in view_names)]
    body = []
    for row in levels.to_dict(orient="records"):
        values = []
        for view in view_names:
            mean, std = row.get(f"{view}_mean"), row.get(f"{view}_std")
            text = _number(mean, ".4f") or "n/a"
            values.append(text + (f" ± {std:.4f}" if _number(std, ".4f") else ""))
        body.append([str(row["dataset"]), str(row["settings"]), str(row["labeled_tag"]),
                     str(row["method"]), _number(row.get("labeled_seen"), ",.0f"),
                     str(row.get("converged") or ""), *values])
    return header, body


def claims_cells(claims: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and text cells of the claims table (difference and Holm p per view)."""
    views = claims.attrs.get("views", [])
    header = ["dataset", "settings", "labeled", "comparison",
              *(f"{view}: difference (Holm p)" for view in views), "in every view"]
    body = []
    for row in claims.to_dict(orient="records"):
        cells = []
        for view in views:
            difference = row.get(f"{view}_difference")
            if difference is None or pd.isna(difference):
                cells.append("not in this view")
                continue
            p = _number(row.get(f"{view}_p_holm"), ".2g") or "n/a"
            cells.append(f"{difference:+.4f} ({p})")
        body.append([str(row["dataset"]), str(row["settings"]), str(row["labeled_tag"]),
                     row["comparison"], *cells, row["verdict"]])
    return header, body


def claims_note(claims: pd.DataFrame) -> str:
    """What the verdicts mean."""
    alpha = claims.attrs.get("alpha", ALPHA)
    return (f"in every view: Holm-adjusted p below {alpha:g} with the same sign in each "
            f"view that has the comparison (ahead/behind), at least {alpha:g} in each (no "
            "significant difference), or which views say what")


def across_views(views: Views, alpha: float = ALPHA) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The levels and the claims tables of ``views`` (every view compare showed)."""
    levels = levels_table(views)
    levels.attrs["views"] = [view for view, _ in _available(views)]
    return levels, claims_table(views, alpha)


def across_markdown(levels: pd.DataFrame, claims: pd.DataFrame, metric: str) -> str:
    """Both tables as markdown, under one heading, with what the verdicts mean."""
    lines = ["", "across the views"]
    lines += md_table(*levels_cells(levels, levels.attrs.get("views", []), metric)) + [""]
    if not claims.empty:
        lines += md_table(*claims_cells(claims)) + ["", f"- {md_cell(claims_note(claims))}"]
    return "\n".join(lines) + "\n"


def print_across(levels: pd.DataFrame, claims: pd.DataFrame, metric: str,
                 console: Any) -> None:
    """Both tables as rich tables, one pair per data set x settings group (named in the
    title, so that the columns fit a terminal)."""
    from rich.markup import escape
    from rich.table import Table

    tables = [("mean ± sd", levels_cells(levels, levels.attrs.get("views", []), metric))]
    if not claims.empty:
        tables.append(("claims: difference (Holm p)", claims_cells(claims)))
    for title, (header, body) in tables:
        for group in dict.fromkeys((cells[0], cells[1]) for cells in body):
            table = Table(title=escape(f"{group[0]} (settings {group[1]}) across the views: "
                                       f"{title}"))
            for name in header[2:]:
                short = name.removesuffix(": difference (Holm p)")
                table.add_column(escape(short), justify="left" if name in (
                    "method", "comparison", "in every view") else "right")
            for cells in body:
                if (cells[0], cells[1]) == group:
                    table.add_row(*[escape(c) for c in cells[2:]])
            console.print(table)
    if not claims.empty:
        console.print(escape(claims_note(claims)), highlight=False, soft_wrap=True)
