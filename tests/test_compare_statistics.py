"""Paired statistics of ``compare``: interval, effect size, Holm, baseline and pairs options."""

from __future__ import annotations

import io
import math

import pandas as pd
import pytest
from rich.console import Console
from scipy import stats
from test_compare import write_run

from ssl_bench.cli.main import main
from ssl_bench.compare import (
    compare_command,
    holm,
    load_runs,
    pair_table,
    paired_comparison,
    parse_pairs,
    summarize,
)
from ssl_bench.core.errors import UserError

#: Student t quantile t(0.975, df=2), from a printed table.
T_975_DF2 = 4.302652729911275


def test_paired_comparison_by_hand():
    a = pd.Series([0.80, 0.83, 0.79], index=[0, 1, 2])
    b = pd.Series([0.70, 0.72, 0.74, 0.99], index=[0, 1, 2, 3])  # seed 3 has no partner
    result = paired_comparison(a, b)
    diff = [0.10, 0.11, 0.05]
    mean = sum(diff) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in diff) / 2)
    assert result.n_pairs == 3
    assert result.paired_diff == pytest.approx(mean)
    assert result.effect_size == pytest.approx(mean / sd)
    half = T_975_DF2 * sd / math.sqrt(3)
    assert result.ci_low == pytest.approx(mean - half)
    assert result.ci_high == pytest.approx(mean + half)
    assert result.p_value == pytest.approx(stats.ttest_rel(a.iloc[:3], b.iloc[:3]).pvalue)
    # the interval excludes 0 exactly when p < 0.05
    assert (result.ci_low > 0) == (result.p_value < 0.05)


def test_paired_comparison_edge_cases():
    two = paired_comparison(pd.Series([1.0, 2.0]), pd.Series([0.0, 0.5]))
    assert two.n_pairs == 2 and two.p_value is None and two.ci_low is None
    assert two.paired_diff == pytest.approx(1.25) and "fewer than 3" in two.note
    same = paired_comparison(pd.Series([1.0, 2.0, 3.0]), pd.Series([0.0, 1.0, 2.0]))
    assert same.p_value is None and same.effect_size is None and "identical" in same.note
    none = paired_comparison(pd.Series([1.0], index=[5]), pd.Series([1.0], index=[6]))
    assert none.n_pairs == 0 and none.paired_diff is None


def test_holm_by_hand():
    # sorted p: 0.01 (x3), 0.03 (x2), 0.04 (x1); step-down maxima: 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    # undefined p-values are not part of the family
    assert holm([0.01, None, 0.04, float("nan")])[0] == pytest.approx(0.02)
    assert holm([0.01, None, 0.04])[1] is None
    assert holm([0.6, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([]) == []


@pytest.fixture
def many(tmp_path):
    """supervised and four methods at one fraction, 4 seeds; srcmt also at a second one."""
    values = {"supervised": [0.70, 0.72, 0.74, 0.71], "mt": [0.74, 0.73, 0.78, 0.75],
              "srcmt": [0.76, 0.75, 0.79, 0.77], "pi": [0.69, 0.74, 0.73, 0.70],
              "fixmatch": [0.80, 0.79, 0.83, 0.82]}
    for method, aucs in values.items():
        for seed, auc in enumerate(aucs):
            write_run(tmp_path, method=method, seed=seed, auc=auc)
    for seed in range(3):
        write_run(tmp_path, method="srcmt", labeled=0.1, seed=seed, auc=0.6 + seed / 100)
    return tmp_path, values


def test_holm_over_the_methods_tested_against_the_baseline(many):
    root, values = many
    summary = summarize(load_runs([root])[0])
    cell = summary[summary["labeled_tag"] == "0.2"].set_index("method")
    raw = {m: stats.ttest_rel(values[m], values["supervised"]).pvalue
           for m in ("fixmatch", "mt", "pi", "srcmt")}
    expected = dict(zip(raw, holm(list(raw.values())), strict=True))
    for method in raw:
        assert cell.loc[method, "p_value"] == pytest.approx(raw[method])
        assert cell.loc[method, "p_holm"] == pytest.approx(expected[method])
        assert cell.loc[method, "p_holm"] >= cell.loc[method, "p_value"]
    assert pd.isna(cell.loc["supervised", "p_holm"])
    # the default pair srcmt:mt is tested at 0.2 and noted as missing its partner at 0.1
    pairs = pair_table(summary)
    assert list(pairs["labeled_tag"]) == ["0.1", "0.2"]
    # at 0.1 only srcmt ran: one note per absent reference, naming the labeled amount
    absent = [n for n in summary.attrs["notes"] if "runs at labeled" in n]
    assert sorted(n.split(": ", 1)[1] for n in absent) == [
        "no mt runs at labeled 0.1: no gain or test against mt there",
        "no supervised runs at labeled 0.1: no gain or test against supervised there"]
    assert pairs.iloc[1]["p_value"] == pytest.approx(
        stats.ttest_rel(values["srcmt"], values["mt"]).pvalue)


def test_baseline_and_pairs_options(many):
    root, values = many
    df = load_runs([root])[0]
    summary = summarize(df, baseline="mean-teacher", pairs=[("fixmatch", "sup"),
                                                            ("srcmt", "mt")])
    assert summary.attrs["baseline"] == "mt"
    cell = summary[summary["labeled_tag"] == "0.2"]
    assert list(cell["method"])[0] == "mt"  # the baseline leads its cell
    fix = cell.set_index("method").loc["fixmatch"]
    assert fix["gain"] == pytest.approx(
        sum(values["fixmatch"]) / 4 - sum(values["mt"]) / 4)
    pairs = pair_table(summary)
    at_02 = pairs[pairs["labeled_tag"] == "0.2"].set_index("first")
    raw = [stats.ttest_rel(values["fixmatch"], values["supervised"]).pvalue,
           stats.ttest_rel(values["srcmt"], values["mt"]).pvalue]
    assert at_02.loc["fixmatch", "second"] == "supervised"
    assert list(at_02["p_holm"]) == pytest.approx(holm(raw))
    with pytest.raises(UserError, match="--baseline: no runs of method 'simmatch'"):
        summarize(df, baseline="simmatch")
    with pytest.raises(UserError, match="--pairs: no runs of method 'nope'"):
        summarize(df, pairs=[("nope", "mt")])
    assert pair_table(summarize(df, pairs=[])).empty


@pytest.mark.parametrize("text,message", [
    ("srcmt-mt", "is not METHOD:METHOD"), ("srcmt:mt,fixmatch", "'fixmatch' is not"),
    ("a:b:c", "is not METHOD:METHOD"), ("mt:mt", "with itself"),
])
def test_bad_pairs_are_one_line_errors(text, message):
    with pytest.raises(UserError, match=message):
        parse_pairs(text)


def test_parse_pairs():
    assert parse_pairs(" srcmt:mt , fixmatch:supervised") == [("srcmt", "mt"),
                                                              ("fixmatch", "supervised")]
    assert parse_pairs("none") == []


def test_compare_cli_with_baseline_pairs_and_csv(many, tmp_path, capsys, monkeypatch):
    root, _ = many
    monkeypatch.setenv("COLUMNS", "250")  # rich wraps headers at a terminal's width
    out = tmp_path / "table.csv"
    assert main(["compare", str(root), "--baseline", "mt", "--pairs", "fixmatch:supervised",
                 "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "p Holm" in printed and "95% CI" in printed and "fixmatch vs supervised" in printed
    assert len(pd.read_csv(out)) == 6
    beside = pd.read_csv(tmp_path / "table-pairs.csv")
    assert list(beside["first"]) == ["fixmatch"]
    assert main(["compare", str(root), "--pairs", "srcmt"]) == 2
    assert "--pairs: 'srcmt' is not METHOD:METHOD" in capsys.readouterr().err
    buffer = io.StringIO()
    compare_command([root], fmt="md", console=Console(file=buffer, width=300))
    assert "| srcmt vs mt |" in buffer.getvalue()
