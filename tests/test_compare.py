"""``ssl_bench.compare`` on synthetic run directories written by hand."""

from __future__ import annotations

import io
import json
import re
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from rich.console import Console
from scipy import stats

from ssl_bench.compare import (
    FEW_PAIRS_NOTE,
    FORMATS,
    compare_command,
    describe_differences,
    load_runs,
    pair_table,
    plot_learning_curves,
    plot_per_class,
    print_summary,
    render,
    summarize,
)
from ssl_bench.core.errors import UserError

ISIC = ["MEL", "NV", "BCC"]
CXR = ["Atelectasis", "Effusion", "Hernia"]

BASE_CONFIG: dict[str, Any] = {
    "method": "srcmt", "method_options": {}, "dataset": "isic", "dataset_options": {},
    "data_root": "/data/isic", "labeled": 0.2, "seed": 0, "split_ratios": [0.7, 0.1, 0.2],
    "split_mode": "grouped", "split_file": None, "cache_dir": None, "image_cache": True,
    "workers": 0, "backbone": "resnet10t", "image_size": 32, "iterations": 400,
    "batch_size": 48, "lr": 0.001, "ema_decay": 0.99, "device": "auto", "amp": True,
}


def _section(auc: float | None, kind: str, classes: list[str], shift: float = 0.0,
             per_class: dict[str, float | None] | None = None) -> dict[str, Any]:
    per_class = per_class or {c: None if auc is None else auc + shift + 0.01 * i
                              for i, c in enumerate(classes)}
    record: dict[str, Any] = {"auc": auc, "auc_per_class": per_class, "n": 100,
                              "missing_classes": []}
    if kind == "single":
        record.update(accuracy=0.5 + shift, balanced_accuracy=0.4, f1_macro=0.3,
                      sensitivity_macro=0.4, specificity_macro=0.9,
                      sensitivity_per_class={c: 0.5 for c in classes})
    return record


def write_run(root: Path, *, dataset: str = "isic", method: str = "supervised",
              labeled: float | int = 0.2, seed: int = 0, auc: float | None = 0.8,
              teacher_auc: float | None = None, kind: str = "single",
              config: dict[str, Any] | None = None, fingerprint: str = "fp-isic",
              per_class: dict[str, float | None] | None = None,
              finished: bool = True,
              environment: dict[str, Any] | None = None) -> Path:
    """A run directory in the layout of a sweep; returns it (all of one code version
    unless ``environment`` says otherwise)."""
    classes = ISIC if kind == "single" else CXR
    path = root / dataset / method / f"labeled={labeled}" / f"seed={seed}"
    path.mkdir(parents=True)
    resolved = dict(BASE_CONFIG, method=method, dataset=dataset, labeled=labeled, seed=seed)
    resolved.update(config or {})
    (path / "config.json").write_text(json.dumps({
        "config": resolved,
        "dataset": {"name": dataset, "kind": kind, "classes": classes,
                    "fingerprint": fingerprint},
        "environment": environment or {"versions": {}, "git": {},
                                       "code": {"digest": "c0de", "files": 1}},
    }))
    if not finished:
        return path
    student = {"best_step": 400, "val": _section(auc, kind, classes, 0.01),
               "test": _section(auc, kind, classes, per_class=per_class)}
    metrics: dict[str, Any] = {
        "finished": True, "method": method, "dataset": dataset, "labeled": labeled,
        "num_labeled": 100, "seed": seed, "steps": 400, "train_seconds": 1.0,
        "selection": {"split": "val", "metric": "auc"}, "student": student,
        "best": dict(student, model="student"),
    }
    if teacher_auc is not None:
        metrics["teacher"] = {"best_step": 320, "val": _section(teacher_auc, kind, classes),
                              "test": _section(teacher_auc, kind, classes)}
    (path / "metrics.json").write_text(json.dumps(metrics))
    return path


SUP = [0.70, 0.72, 0.74]
SRCMT = [0.80, 0.83, 0.79, 0.85]  # one more seed than the others
MT = [0.78, 0.80, 0.77]


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    root = tmp_path / "results" / "sweep1"
    for seed, value in enumerate(SUP):
        write_run(root, method="supervised", seed=seed, auc=value)
    for seed, value in enumerate(SRCMT):
        write_run(root, method="srcmt", seed=seed, auc=value, teacher_auc=value - 0.01)
    for seed, value in enumerate(MT):
        write_run(root, method="mt", seed=seed, auc=value, teacher_auc=value + 0.01,
                  config={"method_options": {"x": seed}, "device": "cuda",
                          "data_root": f"/elsewhere/{seed}", "workers": 4})
    # labeled 0.1: only two seeds of each
    for seed, (sup, ssl) in enumerate([(0.60, 0.66), (0.62, 0.65)]):
        write_run(root, method="supervised", labeled=0.1, seed=seed, auc=sup)
        write_run(root, method="srcmt", labeled=0.1, seed=seed, auc=ssl, teacher_auc=ssl)
    return tmp_path / "results"


def _row(summary: pd.DataFrame, method: str, tag: str) -> pd.Series:
    rows = summary[(summary["method"] == method) & (summary["labeled_tag"] == tag)]
    assert len(rows) == 1
    return rows.iloc[0]


def _pair(summary: pd.DataFrame, first: str, second: str, tag: str) -> pd.Series:
    pairs = pair_table(summary)
    rows = pairs[(pairs["first"] == first) & (pairs["second"] == second)
                 & (pairs["labeled_tag"] == tag)]
    assert len(rows) == 1
    return rows.iloc[0]


def test_tidy_table_has_one_row_per_run_and_model(sweep):
    df, warnings = load_runs([sweep])
    assert warnings == []
    # supervised: no teacher; every run also has its "reported" row
    assert len(df) == 3 * 3 + 4 * 4 + 3 * 4 + 2 * 3 + 2 * 4
    assert set(df["model"]) == {"student", "teacher", "best", "reported"}
    reported = df[df["model"] == "reported"].set_index("path")
    best = df[df["model"] == "best"].set_index("path")
    # these records predate report_model: what they reported was "best"
    pd.testing.assert_series_equal(reported["auc"], best["auc"])
    assert not ((df["method"] == "supervised") & (df["model"] == "teacher")).any()
    for column in ("dataset", "method", "labeled", "labeled_tag", "seed", "model",
                   "selected_model", "best_step", "path", "settings", "auc", "accuracy",
                   "val_auc", "auc_MEL", "auc_NV", "auc_BCC"):
        assert column in df.columns
    assert set(df.loc[df["model"] == "best", "selected_model"]) == {"student"}
    assert df["settings"].nunique() == 1  # method options, device, data root don't count
    assert set(df["labeled_tag"]) == {"0.2", "0.1"}
    row = df[(df["method"] == "srcmt") & (df["seed"] == 1) & (df["model"] == "student")
             & (df["labeled_tag"] == "0.2")].iloc[0]
    assert row["auc"] == pytest.approx(0.83)
    assert row["auc_NV"] == pytest.approx(0.84)
    assert row["val_auc"] == pytest.approx(0.83)


def test_aggregation_math_by_hand(sweep):
    df, _ = load_runs([sweep])
    summary = summarize(df, metric="auc", model="best")
    sup = _row(summary, "supervised", "0.2")
    assert sup["mean"] == pytest.approx(sum(SUP) / 3)
    assert sup["std"] == pytest.approx(0.02)
    assert sup["n"] == 3
    assert pd.isna(sup["gain"]) and sup["test_note"] == "baseline"
    ssl = _row(summary, "srcmt", "0.2")
    assert ssl["n"] == 4
    assert ssl["mean"] == pytest.approx(sum(SRCMT) / 4)
    assert ssl["std"] == pytest.approx(statistics.stdev(SRCMT))
    assert ssl["gain"] == pytest.approx(sum(SRCMT) / 4 - sum(SUP) / 3)
    # paired by seed: only seeds 0..2 are in both
    expected = stats.ttest_rel(SRCMT[:3], SUP)
    assert ssl["test"] == "paired t-test" and ssl["n_pairs"] == 3
    assert ssl["p_value"] == pytest.approx(expected.pvalue)
    assert ssl["statistic"] == pytest.approx(expected.statistic)
    versus_mt = stats.ttest_rel(SRCMT[:3], MT)
    pair = _pair(summary, "srcmt", "mt", "0.2")
    assert pair["p_value"] == pytest.approx(versus_mt.pvalue)
    assert pair["n_pairs"] == 3
    assert pair["gain"] == pytest.approx(sum(SRCMT) / 4 - sum(MT) / 3)
    assert pair["p_holm"] == pytest.approx(versus_mt.pvalue)  # a family of one pair
    mt = _row(summary, "mt", "0.2")
    assert mt["gain"] == pytest.approx(sum(MT) / 3 - sum(SUP) / 3)
    # the teacher model: supervised has none, its rows are absent and noted
    teacher = summarize(df, metric="auc", model="teacher")
    assert "supervised" not in set(teacher["method"])
    assert _row(teacher, "mt", "0.2")["mean"] == pytest.approx(sum(MT) / 3 + 0.01)
    assert any("no teacher model for supervised" in n for n in teacher.attrs["notes"])


def test_fewer_than_three_seeds_gives_no_test(sweep):
    df, _ = load_runs([sweep])
    summary = summarize(df)
    row = _row(summary, "srcmt", "0.1")
    assert row["n"] == 2 and row["n_pairs"] == 2
    assert row["std"] == pytest.approx(statistics.stdev([0.66, 0.65]))
    assert row["gain"] == pytest.approx((0.66 + 0.65) / 2 - (0.60 + 0.62) / 2)
    assert pd.isna(row["p_value"]) and row["test_note"] == FEW_PAIRS_NOTE
    assert _pair(summary, "srcmt", "mt", "0.1")["note"] == "no mt runs at this labeled amount"
    assert any(FEW_PAIRS_NOTE in note for note in summary.attrs["notes"])
    # one seed: no std
    single = sweep / "one"
    write_run(single, method="srcmt", auc=0.9)
    one = summarize(load_runs([single])[0])
    assert one.iloc[0]["n"] == 1 and pd.isna(one.iloc[0]["std"])


def test_mixed_settings_are_kept_apart_with_a_note(tmp_path):
    for seed in range(3):
        write_run(tmp_path, method="supervised", seed=seed, auc=0.7,
                  config={"image_size": 32, "iterations": 800})
        write_run(tmp_path / "big", method="supervised", seed=seed, auc=0.9,
                  config={"image_size": 64, "iterations": 400})
    df, _ = load_runs([tmp_path])
    assert df["settings"].nunique() == 2
    summary = summarize(df)
    assert len(summary) == 2 and list(summary["n"]) == [3, 3]
    assert sorted(summary["mean"].round(6)) == [0.7, 0.9]
    notes = describe_differences(df)
    assert sorted(notes.values()) == ["image_size=32, iterations=800",
                                      "image_size=64, iterations=400"]
    for _, row in summary.iterrows():
        assert row["settings_note"] == notes[row["settings"]]
    text = render(summary, "md")
    assert "image_size=32, iterations=800" in text and "image_size=64" in text
    buffer = io.StringIO()
    print_summary(summary, Console(file=buffer, width=160))
    printed = buffer.getvalue()
    assert "image_size=32, iterations=800" in printed and "paired t-test" in printed


def test_dataset_fingerprint_is_part_of_the_settings(tmp_path):
    write_run(tmp_path / "a", fingerprint="aaaa")
    write_run(tmp_path / "b", fingerprint="bbbb")
    df, _ = load_runs([tmp_path])
    assert df["settings"].nunique() == 2
    assert set(describe_differences(df).values()) == {"dataset_fingerprint=aaaa",
                                                      "dataset_fingerprint=bbbb"}


def test_unfinished_and_corrupt_runs_are_skipped_with_warnings(sweep):
    root = sweep / "sweep1"
    write_run(root, method="pi", seed=0, finished=False)
    bad = write_run(root, method="pi", seed=1)
    (bad / "metrics.json").write_text("{not json")
    partial = write_run(root, method="pi", seed=2)
    metrics = json.loads((partial / "metrics.json").read_text())
    del metrics["student"]
    (partial / "metrics.json").write_text(json.dumps(metrics))
    no_config = write_run(root, method="pi", seed=3)
    (no_config / "config.json").unlink()
    df, warnings = load_runs([sweep])
    assert "pi" not in set(df["method"])
    assert warnings[0].startswith("1 unfinished run skipped")
    text = "\n".join(warnings)
    assert str(bad / "metrics.json") in text and "not valid JSON" in text
    assert str(partial / "metrics.json") in text and "missing key 'student'" in text
    assert str(no_config / "config.json") in text
    assert _row(summarize(df), "srcmt", "0.2")["n"] == 4  # the others are still compared


def test_nothing_finished_or_missing_folder_is_a_user_error(tmp_path):
    write_run(tmp_path / "runs", finished=False)
    bad = write_run(tmp_path / "runs", seed=1)
    (bad / "metrics.json").write_text("[]")
    with pytest.raises(UserError, match=r"no finished run.*1 unfinished, 0 failed and 1 corrupt"):
        load_runs([tmp_path / "runs"])
    with pytest.raises(UserError, match="does not exist"):
        load_runs([tmp_path / "nowhere"])
    with pytest.raises(UserError, match="does not exist"):
        compare_command([tmp_path / "nowhere"], console=Console(file=io.StringIO()))


def test_unknown_metric_or_model_lists_the_choices(sweep):
    df, _ = load_runs([sweep])
    with pytest.raises(UserError, match=r"unknown metric 'nope'; available: .*accuracy"):
        summarize(df, metric="nope")
    with pytest.raises(UserError, match="student, teacher, best"):
        summarize(df, model="ema")
    assert _row(summarize(df, metric="auc_NV"), "mt", "0.2")["mean"] == pytest.approx(
        sum(MT) / 3 + 0.01)


def test_multilabel_runs_and_undefined_values(tmp_path):
    values = [0.61, None, 0.65, 0.70]
    for seed, value in enumerate(values):
        write_run(tmp_path, dataset="chestxray14", kind="multi", method="srcmt", seed=seed,
                  auc=value, fingerprint="fp-cxr",
                  per_class={"Atelectasis": 0.6 + seed / 100, "Effusion": 0.7, "Hernia": None})
    write_run(tmp_path, dataset="chestxray14", kind="multi", method="supervised", labeled=50,
              auc=0.6, fingerprint="fp-cxr")
    df, _ = load_runs([tmp_path])
    assert "accuracy" not in df.columns
    assert {"auc_Atelectasis", "auc_Effusion", "auc_Hernia"} <= set(df.columns)
    assert df.loc[df["method"] == "srcmt", "auc_Hernia"].isna().all()  # None in metrics.json
    counts = df[df["method"] == "supervised"]
    assert counts["labeled"].iloc[0] == 50 and isinstance(counts["labeled"].iloc[0], int)
    assert counts["labeled_tag"].iloc[0] == "50"
    summary = summarize(df, metric="auc")
    row = _row(summary, "srcmt", "0.2")
    defined = [v for v in values if v is not None]
    assert row["n"] == 3 and row["n_undefined"] == 1
    assert row["mean"] == pytest.approx(sum(defined) / 3)
    assert any("1 undefined auc value" in note for note in summary.attrs["notes"])
    assert list(summary["labeled_tag"]) == ["0.2", "50"]  # fractions before counts
    with pytest.raises(UserError, match="unknown metric 'accuracy'"):
        summarize(df, metric="accuracy")
    atelectasis = summarize(df, metric="auc_Atelectasis")
    assert _row(atelectasis, "srcmt", "0.2")["mean"] == pytest.approx(0.615)


def _md_cells(line: str) -> list[str]:
    return re.split(r"(?<!\\)\|", line.strip())[1:-1]


def _md_tables(md: str) -> list[list[str]]:
    tables: list[list[str]] = []
    previous = False
    for line in md.splitlines():
        is_row = line.startswith("|")
        if is_row and not previous:
            tables.append([])
        if is_row:
            tables[-1].append(line)
        previous = is_row
    return tables


def _check_formats(summary: pd.DataFrame) -> None:
    pairs = pair_table(summary)
    md = render(summary, "md")
    tables = _md_tables(md)
    assert [len(t) for t in tables] == [2 + len(summary)] + ([2 + len(pairs)] if len(pairs)
                                                            else [])
    for table in tables:
        assert len({len(_md_cells(line)) for line in table}) == 1
    assert "±" in md or summary["std"].isna().all()
    csv = pd.read_csv(io.StringIO(render(summary, "csv")))
    assert len(csv) == len(summary) and list(csv.columns) == list(summary.columns)
    assert csv["mean"].tolist() == pytest.approx(summary["mean"].astype(float).tolist())
    document = json.loads(render(summary, "json"))
    assert len(document["rows"]) == len(summary) and document["test"] == "paired t-test"
    assert document["correction"] == "Holm" and len(document["pairs"]) == len(pairs)
    assert [r["mean"] for r in document["rows"]] == pytest.approx(
        summary["mean"].astype(float).tolist())
    latex = render(summary, "latex")
    starts = [m.start() for m in re.finditer(r"\\begin\{tabular\}", latex)]
    assert len(starts) == (2 if len(pairs) else 1)
    for start, expected in zip(starts, [len(summary), len(pairs)], strict=False):
        spec = re.match(r"\\begin\{tabular\}\{([lrc]+)\}", latex[start:])
        assert spec
        body = latex[start:latex.index(r"\end{tabular}", start)]
        rows = [line for line in body.splitlines() if line.endswith(r"\\")]
        assert len(rows) == 1 + expected
        for line in rows:
            assert len(re.findall(r"(?<!\\)&", line)) == len(spec.group(1)) - 1


def test_every_output_format_parses_back(sweep, tmp_path):
    write_run(sweep / "other", method="mt", seed=7, auc=0.5,
              config={"lr": 0.01, "backbone": "weird_name|with&specials%"})
    df, _ = load_runs([sweep])
    summary = summarize(df)
    assert summary["settings_note"].str.contains("&").any()
    _check_formats(summary)
    multi = tmp_path / "cxr"
    for seed in range(3):
        write_run(multi, dataset="chestxray14", kind="multi", seed=seed, auc=0.6 + seed / 50)
    _check_formats(summarize(load_runs([multi])[0]))
    with pytest.raises(UserError, match="unknown format"):
        render(summary, "html")
    assert set(FORMATS) == {"md", "csv", "latex", "json"}


def _check_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 1000
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 100


def test_plots_are_valid_pngs(sweep, tmp_path):
    write_run(sweep / "cxr", dataset="chestxray14", kind="multi", method="mt", auc=0.6,
              fingerprint="fp-cxr")
    df, _ = load_runs([sweep])
    curves = plot_learning_curves(df, tmp_path / "plots", metric="auc", model="best")
    assert len(curves) == 2  # isic and chestxray14, one settings group each
    bars = plot_per_class(df, tmp_path / "plots", model="best", error_bars="ci95")
    tags = {(d, t) for d, t in df[df["model"] == "best"][["dataset", "labeled_tag"]]
            .itertuples(index=False)}
    assert len(bars) == len(tags)  # one per data set x labeled amount (issue 15, item 6)
    assert any("labeled=0.2" in p.name for p in bars)
    assert any("labeled=0.1" in p.name for p in bars)
    low = plot_per_class(df, tmp_path / "low", model="teacher", fraction="0.1")
    assert len(low) == 1 and "labeled=0.1" in low[0].name
    for path in [*curves, *bars, *low]:
        _check_png(path)
    assert not list((tmp_path / "plots").glob(".*tmp"))
    with pytest.raises(UserError, match="labeled amounts present: 0.1, 0.2"):
        plot_per_class(df, tmp_path / "none", fraction=0.5)


def test_compare_command(sweep, tmp_path, capsys):
    buffer = io.StringIO()
    console = Console(file=buffer, width=200)
    write_run(sweep / "sweep1", method="pi", seed=0, finished=False)
    out = tmp_path / "out" / "summary.json"
    code = compare_command([sweep], metric="auc", model="best", fmt=None, output=out,
                           plot_dir=tmp_path / "plots", fraction=None, console=console)
    assert code == 0
    printed = buffer.getvalue()
    assert "srcmt" in printed and "supervised" in printed and "paired t-test" in printed
    assert "1 unfinished run skipped" in printed
    assert len(json.loads(out.read_text())["rows"]) == 5
    pngs = [p.name for p in (tmp_path / "plots").glob("*.png")]
    assert sum("curve" in n for n in pngs) == 1 and sum("per_class" in n for n in pngs) == 2
    # a format without --output goes to stdout, warnings to stderr
    buffer = io.StringIO()
    assert compare_command([sweep], fmt="csv", console=Console(file=buffer)) == 0
    assert len(pd.read_csv(io.StringIO(buffer.getvalue()))) == 5
    assert "1 unfinished run skipped" in capsys.readouterr().err
    tex = tmp_path / "table.tex"
    compare_command([sweep], output=tex, console=Console(file=io.StringIO()))
    text = tex.read_text()
    assert r"\begin{tabular}" in text and r"\toprule" in text and r"\bottomrule" in text
    assert r"\caption{Test auc" in text and r"\label{tab:ssl-bench-methods}" in text
    with pytest.raises(UserError, match="cannot tell the format"):
        compare_command([sweep], output=tmp_path / "table.txt",
                        console=Console(file=io.StringIO()))
    with pytest.raises(UserError, match="unknown metric"):
        compare_command([sweep], metric="bogus", console=Console(file=io.StringIO()))


def test_reported_model_is_the_one_each_run_names(tmp_path):
    root = tmp_path / "results"
    write_run(root, method="mt", seed=0, auc=0.7, teacher_auc=0.8)
    path = next(root.rglob("metrics.json"))
    metrics = json.loads(path.read_text())
    metrics["reported"] = dict(metrics["student"], model="student", rule="student")
    path.write_text(json.dumps(metrics))
    df, _ = load_runs([root])
    row = df[df["model"] == "reported"].iloc[0]
    assert row["selected_model"] == "student" and row["auc"] == pytest.approx(0.7)
    assert summarize(df).iloc[0]["mean"] == pytest.approx(0.7)  # default: reported


def test_runs_of_one_labeled_amount_with_different_labeled_counts_are_refused(tmp_path):
    """Issue 9, item 3: a 1-label run was averaged with a normal run of the same tag."""
    root = tmp_path / "results"
    write_run(root, method="supervised", seed=0, auc=0.7)
    odd = write_run(root, method="mt", seed=0, auc=0.8)
    metrics = json.loads((odd / "metrics.json").read_text())
    (odd / "metrics.json").write_text(json.dumps({**metrics, "num_labeled": 1}))
    df, _ = load_runs([root])
    with pytest.raises(UserError, match=r"labeled 0.2, seed 0: runs trained on different "
                                        r"numbers of labeled images \(1 in .*; 100 in "):
        summarize(df)


def test_a_run_with_an_empty_test_set_is_skipped_with_a_note(tmp_path):
    write_run(tmp_path / "runs", seed=0)
    empty = write_run(tmp_path / "runs", seed=1)
    record = json.loads((empty / "metrics.json").read_text())
    for model in ("student", "best"):
        record[model]["test"] = {}
    (empty / "metrics.json").write_text(json.dumps(record))
    frame, warnings = load_runs([tmp_path / "runs"])
    assert set(frame["seed"]) == {0}
    assert any("test is empty" in w and "not averaged" in w for w in warnings)


def test_error_bars_are_sd_or_a_t_interval_and_stay_inside_0_1():
    """Issue 15, item 6, against scipy and hand-computed values."""
    from scipy import stats

    from ssl_bench.compare.plots import clipped_errors, error_half_widths

    std, n = np.array([0.1, 0.1, 0.2]), np.array([3, 1, 5])
    assert error_half_widths(std, n, "sd").tolist() == [0.1, 0.0, 0.2]
    ci = error_half_widths(std, n, "ci95")
    assert ci[0] == pytest.approx(stats.t.ppf(0.975, 2) * 0.1 / np.sqrt(3))
    assert ci[0] == pytest.approx(0.248414, abs=1e-6) and ci[1] == 0.0
    errors = clipped_errors(np.array([0.95, 0.5, 0.02]), np.array([0.1, 0.1, 0.1]))
    np.testing.assert_allclose(errors, [[0.1, 0.1, 0.02], [0.05, 0.1, 0.1]])
    with pytest.raises(UserError, match="--error-bars"):
        error_half_widths(std, n, "se")


# --------------------------------------------------------------- code versions (issue 27)

def test_code_version_prefers_the_digest_and_cannot_verify_a_dirty_tree():
    from ssl_bench.compare.code_versions import code_version

    digest = {"environment": {"code": {"digest": "ab12"}, "git": {"commit": "f" * 40,
                                                                   "dirty": True}}}
    assert code_version(digest) == ("code ab12", True)  # edited trees: the digest decides
    assert code_version({"environment": {"git": {"commit": "a" * 40, "dirty": False}}}) == (
        "commit aaaaaaaaaaaa", True)
    assert code_version({"environment": {"git": {"commit": "a" * 40, "dirty": True}}}) == (
        "commit aaaaaaaaaaaa with uncommitted changes", False)
    assert code_version({"environment": {"git": {}}}) == ("unknown code", False)
    assert code_version([]) == ("unknown code", False)


def test_code_warnings_name_each_version_with_its_run_count():
    from ssl_bench.compare.code_versions import mixed_code_warnings

    same = [("code a", True)] * 3
    assert mixed_code_warnings([("isic (settings s1)", same)]) == []
    mixed = [("code a", True)] * 2 + [("commit b with uncommitted changes", False)]
    (warning,) = mixed_code_warnings([("isic (settings s1)", mixed)])
    assert warning.startswith("isic (settings s1) mixes 2 code versions: code a (2 runs), "
                              "commit b with uncommitted changes (1 run);")
    assert "(1 run(s) from trees with uncommitted changes and no code digest)" in warning
    (alone,) = mixed_code_warnings([("x", [("commit b with uncommitted changes", False)])])
    assert "comes from one tree with uncommitted changes" in alone


def test_compare_warns_when_one_comparison_mixes_code_versions(tmp_path):
    """The 180 committed isic2018-mini-pretrained runs span 9 commits (123 from edited
    trees): compare says so per settings group, and stays quiet for one code version."""
    root = tmp_path / "results"
    for seed in range(2):
        write_run(root, method="supervised", seed=seed)
        write_run(root, method="mt", seed=seed, teacher_auc=0.8)
    _, warnings = load_runs([root])
    assert not [w for w in warnings if "code" in w]
    write_run(root, method="pi", seed=0, environment={
        "versions": {}, "git": {"commit": "b" * 40, "dirty": True}})
    write_run(root / "other", method="pi", seed=1, environment={
        "versions": {}, "code": {"digest": "e11e", "files": 1}, "git": {}})
    _, warnings = load_runs([root])
    (warning,) = [w for w in warnings if "code versions" in w]
    assert warning.startswith("isic (settings ")
    assert ("mixes 3 code versions: code c0de (4 runs), commit bbbbbbbbbbbb with "
            "uncommitted changes (1 run), code e11e (1 run)") in warning


def test_compare_warns_when_one_comparison_ran_on_several_kinds_of_processor(tmp_path):
    """An Intel and an AMD CPU round differently (the committed fair-20pct runs and their
    re-run from the same commit differ from step 40): compare names the processors."""
    from ssl_bench.compare.code_versions import processor

    root = tmp_path / "results"
    same = {"versions": {}, "code": {"digest": "c0de", "files": 1}, "git": {}}
    for seed in range(2):
        write_run(root, method="supervised", seed=seed,
                  environment={**same, "processor": "AMD EPYC"})
    _, warnings = load_runs([root])
    assert not [w for w in warnings if "processor" in w]
    write_run(root, method="mt", seed=0, teacher_auc=0.8,
              environment={**same, "processor": "Intel(R) Xeon(R) Processor"})
    _, warnings = load_runs([root])
    (warning,) = [w for w in warnings if "processor" in w]
    assert ("ran on 2 kinds of processor: AMD EPYC (2 runs), Intel(R) Xeon(R) Processor "
            "(1 run)") in warning
    assert processor({}) == "unknown processor"
