"""``compare --format md/csv`` with hostile names (issue item 11): markdown cells cannot
inject HTML or break the table, CSV text cells cannot become spreadsheet formulas."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import markdown
import pandas as pd
import pytest
from rich.console import Console
from test_compare import write_run

from ssl_bench.compare import compare_command, load_runs, render, summarize, tables

SCRIPT = "<script>alert(1)</script>"
FORMULA = '=HYPERLINK("http://x","y")'


def _named_run(root: Path, name: str, seed: int, auc: float, **kwargs) -> Path:
    """A finished run whose method is called ``name`` (any text, even with a ``/``)."""
    folder = re.sub(r"\W", "_", name) or "blank"
    path = write_run(root / folder, method="m", seed=seed, auc=auc, **kwargs)
    metrics = json.loads((path / "metrics.json").read_text())
    metrics["method"] = name
    (path / "metrics.json").write_text(json.dumps(metrics))
    return path


def _hostile_results(root: Path) -> Path:
    """A baseline, a method worse than it (negative gains) and hostile names and settings."""
    for seed, auc in enumerate([0.70, 0.72, 0.74]):
        _named_run(root, "supervised", seed, auc)
        _named_run(root, "worse", seed, auc - 0.012 - seed / 1000)
        _named_run(root, SCRIPT, seed, auc + 0.05)
        _named_run(root, FORMULA, seed, auc + 0.04)
        _named_run(root, "a|b", seed, auc + 0.03)
        _named_run(root, "@SUM(1+1)", seed, auc + 0.02)
        _named_run(root, "+1+2", seed, auc + 0.01)
        _named_run(root, "-2+3", seed, auc + 0.01)
    for seed in range(3):  # a settings value that reaches the notes
        _named_run(root / "odd", "supervised", seed, 0.7,
                   config={"backbone": "<img src=x onerror=alert(1)>"})
    return root


def _md_rows(md: str) -> list[list[str]]:
    return [re.split(r"(?<!\\)\|", line.strip())[1:-1] for line in md.splitlines()
            if line.startswith("|")]


def test_markdown_cells_are_html_escaped_and_keep_the_table(tmp_path):
    summary = summarize(load_runs([_hostile_results(tmp_path / "r")])[0],
                        pairs=[(SCRIPT, FORMULA)])
    md = render(summary, "md")
    assert "<script" not in md and "<img" not in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert "a\\|b" in md
    widths = {len(cells) for cells in _md_rows(md)[:2 + len(summary)]}
    assert widths == {13}  # the method table: no cell split by a "|"
    html = markdown.markdown(md, extensions=["tables"])
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<table>") == 2
    first_body = html.split("<tbody>")[1].split("</tbody>")[0]
    assert first_body.count("<tr>") == len(summary)
    assert all(row.count("<td") == 13 for row in first_body.split("<tr>")[1:])


def test_a_hostile_baseline_name_is_escaped_in_the_header(tmp_path):
    summary = summarize(load_runs([_hostile_results(tmp_path / "r")])[0], baseline=SCRIPT)
    header = render(summary, "md").splitlines()[0]
    assert "gain vs &lt;script&gt;alert(1)&lt;/script&gt;" in header and "<" not in header


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_text_cells_cannot_be_formulas_and_numbers_stay(tmp_path):
    results = _hostile_results(tmp_path / "r")
    out = tmp_path / "table.csv"
    compare_command([results], output=out, pairs=[("+1+2", FORMULA)],
                    console=Console(file=io.StringIO()))
    rows = _csv_rows(out.read_text())
    methods = {row["method"] for row in rows}
    assert "'" + FORMULA in methods and "'@SUM(1+1)" in methods
    assert "'+1+2" in methods and "'-2+3" in methods
    assert FORMULA not in methods and SCRIPT in methods and "supervised" in methods
    for row in rows:
        for column, value in row.items():
            assert not value.startswith(("=", "+", "@", "\t", "\r")), (column, value)
    worse = next(row for row in rows if row["method"] == "worse")
    assert float(worse["gain"]) == pytest.approx(-0.013)  # a real number, untouched
    assert worse["gain"].startswith("-")
    pairs = _csv_rows((tmp_path / "table-pairs.csv").read_text())
    assert {row["first"] for row in pairs} == {"'+1+2"}
    assert {row["second"] for row in pairs} == {"'" + FORMULA}
    assert all(float(row["gain"]) < 0 and row["gain"].startswith("-") for row in pairs)


def test_ordinary_tables_are_unchanged(tmp_path):
    root = tmp_path / "r"
    for seed, (sup, ssl) in enumerate([(0.70, 0.75), (0.72, 0.70), (0.74, 0.80)]):
        write_run(root, method="supervised", seed=seed, auc=sup)
        write_run(root, method="srcmt", seed=seed, auc=ssl)
    summary = summarize(load_runs([root])[0])
    assert render(summary, "csv") == summary.to_csv(index=False, lineterminator="\n")
    md = render(summary, "md")
    assert "| isic |" in md and "srcmt" in md and "&" not in md and "\\" not in md


@pytest.mark.parametrize(("value", "expected"), [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@x", "'@x"), ("\tx", "'\tx"),
    ("\rx", "'\rx"), ("plain", "plain"), ("", ""), (-0.012, -0.012), (3, 3), (None, None),
])
def test_csv_cell(value, expected):
    assert tables.csv_cell(value) == expected


def test_md_cell():
    assert tables.md_cell("a&b<c>|d\\e\nf") == "a&amp;b&lt;c&gt;\\|d\\\\e f"
    assert tables.md_cell("&lt;") == "&amp;lt;"  # escaped once more: shows as typed
    assert tables.md_cell("+0.03 [+0.01, +0.05]") == "+0.03 [+0.01, +0.05]"


def test_a_markdown_link_in_a_name_is_not_a_link():
    import markdown

    cell = tables.md_cell("[x](javascript:alert(1))")
    html = markdown.markdown(f"| a |\n|---|\n| {cell} |", extensions=["tables"])
    assert "<a " not in html and "[x](javascript:alert(1))" in html


def test_csv_of_a_frame_keeps_numeric_columns(tmp_path):
    frame = pd.DataFrame({"method": ["=x", "ok"], "gain": [-0.012, 0.5]})
    assert tables.to_safe_csv(frame) == "method,gain\n'=x,-0.012\nok,0.5\n"
