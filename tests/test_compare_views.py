"""compare's fairness columns and robustness views (issue 27), on hand-made runs whose
numbers are computed here by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from ssl_bench.compare.command import compare_command
from ssl_bench.compare.runs import load_runs
from ssl_bench.compare.summary import summarize
from ssl_bench.compare.views import summarize_views

BASE = {"dataset": "digits", "split_ratios": [0.7, 0.1, 0.2], "split_mode": "grouped",
        "backbone": "resnet10t", "image_size": 16, "iterations": 100, "lr": 0.001}


def write_run(root: Path, label: str, seed: int, *, student: float, teacher: float | None,
              last: float | None, best_step: int, per_step: int, uses_unlabeled: bool,
              batch: str = "two-stream", steps: int = 100) -> None:
    method = label.replace("-labeled-batch", "")
    path = root / label / "labeled=0.2" / f"seed={seed}"
    path.mkdir(parents=True)
    config = dict(BASE, method=method, labeled=0.2, seed=seed, supervised_batch=batch)
    (path / "config.json").write_text(json.dumps({
        "config": config, "method": {"uses_unlabeled": uses_unlabeled, "defaults": {}},
        "dataset": {"name": "digits", "kind": "single", "fingerprint": "fp"},
        "schedule": {"total_steps": 100, "num_labeled_per_batch": per_step},
        "environment": {"versions": {}, "git": {}, "code": {"digest": "c0de", "files": 1}}}))
    def section(auc: float, step: int) -> dict:
        return {"best_step": step, "val": {"auc": auc}, "test": {"auc": auc, "n": 50}}
    metrics = {"finished": True, "method": method, "dataset": "digits", "labeled": 0.2,
               "num_labeled": 40, "seed": seed, "steps": steps, "train_seconds": 1.0,
               "student": section(student, best_step)}
    reported = "student"
    if teacher is not None:
        metrics["teacher"] = section(teacher, best_step)
        reported = "teacher" if teacher > student else "student"
    metrics["reported"] = {"rule": "best", "model": reported, **metrics[reported]}
    metrics["best"] = dict(metrics["reported"])
    (path / "metrics.json").write_text(json.dumps(metrics))
    rows = ["step,val_student_auc,test_student_auc,val_teacher_auc,test_teacher_auc"]
    for step in (50, 100):
        value = "" if last is None else (last if step == 100 else 0.5)
        rows.append(f"{step},0.5,{value},0.5,{value}")
    (path / "history.csv").write_text("\n".join(rows) + "\n")


SUP = [0.70, 0.74, 0.72]          # same-stream baseline, student only
FULL = [0.76, 0.75, 0.77]         # labeled-batch baseline
MT_S = [0.78, 0.80, 0.75]         # mt student
MT_T = [0.79, 0.79, 0.77]         # mt teacher
LAST = {"supervised": [0.69, 0.70, 0.71], "supervised-labeled-batch": [0.74, 0.73, 0.75],
        "mt": [0.77, 0.76, 0.78]}


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "sweep"
    for seed in range(3):
        # the labeled-batch baseline: 4x the labeled images per step; 2 of 3 peak late
        write_run(root, "supervised-labeled-batch", seed, student=FULL[seed], teacher=None,
                  last=LAST["supervised-labeled-batch"][seed], best_step=95 if seed else 40,
                  per_step=16, uses_unlabeled=False, batch="labeled")
        write_run(root, "supervised", seed, student=SUP[seed], teacher=None,
                  last=LAST["supervised"][seed], best_step=50, per_step=4,
                  uses_unlabeled=False)
        write_run(root, "mt", seed, student=MT_S[seed], teacher=MT_T[seed],
                  last=LAST["mt"][seed], best_step=100 if seed == 0 else 60, per_step=4,
                  uses_unlabeled=True)
    return root


def _row(summary, method):
    return summary[summary["method"] == method].iloc[0]


def _paired(a, b):
    diff = np.array(a) - np.array(b)
    half = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
    return diff.mean(), diff.mean() - half, diff.mean() + half, stats.ttest_rel(a, b).pvalue


def test_both_baselines_are_rows_and_the_second_is_tested_too(runs):
    df, _ = load_runs([runs])
    summary = summarize(df)
    assert summary.attrs["baseline"] == "supervised"
    assert set(summary["method"]) == {"supervised", "supervised-labeled-batch", "mt"}
    assert ["mt", "supervised-labeled-batch"] in summary.attrs["pairs"]
    pair = summary.attrs["pair_rows"][0]
    reported_mt = [max(s, t) for s, t in zip(MT_S, MT_T, strict=True)]
    diff, low, high, p = _paired(reported_mt, FULL)
    assert pair["paired_diff"] == pytest.approx(diff)
    assert (pair["ci_low"], pair["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    assert pair["p_value"] == pytest.approx(p)


def test_exposure_column_and_unequal_exposure_note(runs):
    summary = summarize(load_runs([runs])[0])
    assert _row(summary, "supervised")["labeled_seen"] == 400  # 4 per step x 100 steps
    assert _row(summary, "supervised-labeled-batch")["labeled_seen"] == 1600
    note = next(n for n in summary.attrs["notes"] if "unequal labeled exposure" in n)
    assert "supervised-labeled-batch 1,600" in note and "4.0x" in note


def test_convergence_flag(runs):
    summary = summarize(load_runs([runs])[0])
    # best steps 40, 95, 95 of 100: 2 of 3 in the last 10% -> not converged
    assert _row(summary, "supervised-labeled-batch")["converged"] == "no (2/3 late)"
    assert _row(summary, "mt")["converged"] == "yes"  # 1 of 3 (step 100) late
    assert _row(summary, "supervised")["converged"] == "yes"
    assert any(n.startswith("not converged") and "supervised-labeled-batch at 0.2" in n
               for n in summary.attrs["notes"])


@pytest.mark.parametrize("view, mt_values, sup_values", [
    ("reported", [max(s, t) for s, t in zip(MT_S, MT_T, strict=True)], SUP),
    ("student", MT_S, SUP),
    ("teacher", MT_T, SUP),  # supervised has no teacher: its student stands in
    ("last", LAST["mt"], LAST["supervised"]),
])
def test_every_view_by_hand(runs, view, mt_values, sup_values):
    views = dict((v, (table, note)) for v, table, note in
                 summarize_views(load_runs([runs])[0], "auc", None, None))
    table, note = views[view]
    mt = _row(table, "mt")
    assert mt["mean"] == pytest.approx(np.mean(mt_values))
    assert mt["std"] == pytest.approx(np.std(mt_values, ddof=1))
    diff, low, high, p = _paired(mt_values, sup_values)
    assert mt["paired_diff"] == pytest.approx(diff)
    assert (mt["ci_low"], mt["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    assert mt["p_value"] == pytest.approx(p)
    # Holm over mt and supervised-labeled-batch against supervised
    other = _row(table, "supervised-labeled-batch")["p_value"]
    smaller = min(1.0, 2 * min(p, other))  # Holm, two tests: 2 p_(1), max(that, p_(2))
    assert mt["p_holm"] == pytest.approx(smaller if p <= other else max(smaller, p))
    if view == "teacher":
        assert "methods without a teacher show their student" in note


def test_last_view_is_not_available_without_test_curves(tmp_path):
    root = tmp_path / "sweep"
    for seed in range(3):
        write_run(root, "supervised", seed, student=SUP[seed], teacher=None, last=None,
                  best_step=50, per_step=4, uses_unlabeled=False)
    views = {v: (table, note) for v, table, note in
             summarize_views(load_runs([root])[0], "auc", None, None)}
    assert views["last"][0] is None and "test_at = every" in views["last"][1]


def test_compare_views_prints_every_view(runs, capsys):
    assert compare_command([runs], fmt="md", views=True) == 0
    out = capsys.readouterr().out
    for view in ("student", "teacher", "last"):
        assert f"view: {view}" in out
    # the table, then three views, then the levels across them
    assert out.count("| labeled seen | converged |") == 5


# ------------------------------------------------------------------ across the views

VIEW_VALUES = {  # the values each view reads, per method (teacherless methods: student)
    "reported": {"mt": [max(s, t) for s, t in zip(MT_S, MT_T, strict=True)],
                 "supervised": SUP, "supervised-labeled-batch": FULL},
    "student": {"mt": MT_S, "supervised": SUP, "supervised-labeled-batch": FULL},
    "teacher": {"mt": MT_T, "supervised": SUP, "supervised-labeled-batch": FULL},
    "last": LAST,
}


def _holm(p_values: dict[str, float]) -> dict[str, float]:
    """Holm's step-down adjustment, written out (running maximum, capped at 1)."""
    order = sorted(p_values, key=p_values.get)
    adjusted, running = {}, 0.0
    for rank, name in enumerate(order):
        running = max(running, (len(order) - rank) * p_values[name])
        adjusted[name] = min(1.0, running)
    return adjusted


def test_claims_across_views_match_a_hand_computation(runs):
    from ssl_bench.compare.claims import ALPHA, across_views, verdict

    levels, claims = across_views(summarize_views(load_runs([runs])[0], "auc", None, None))
    assert claims.attrs["views"] == ["reported", "student", "teacher", "last"]
    expected_signs: dict[str, dict[str, str]] = {}
    for view, values in VIEW_VALUES.items():
        against_sup = {m: _paired(values[m], values["supervised"])
                       for m in ("mt", "supervised-labeled-batch")}
        holm_sup = _holm({m: r[3] for m, r in against_sup.items()})
        pair = _paired(values["mt"], values["supervised-labeled-batch"])  # one pair: p as is
        if np.ptp(np.subtract(values["mt"], values["supervised-labeled-batch"])) < 1e-9:
            pair = (*pair[:3], np.nan)  # a constant difference has no t-test (last view)
        for name, (diff, _, _, _), p_holm in (
                ("mt vs supervised", against_sup["mt"], holm_sup["mt"]),
                ("supervised-labeled-batch vs supervised",
                 against_sup["supervised-labeled-batch"], holm_sup["supervised-labeled-batch"]),
                ("mt vs supervised-labeled-batch", pair, pair[3])):
            row = claims[claims["comparison"] == name].iloc[0]
            assert row[f"{view}_difference"] == pytest.approx(diff), (view, name)
            assert row[f"{view}_p_holm"] == pytest.approx(p_holm, nan_ok=True), (view, name)
            sign = "n.s." if not p_holm < ALPHA else ("ahead" if diff > 0 else "behind")
            expected_signs.setdefault(name, {})[view] = sign
        mt = levels[levels["method"] == "mt"].iloc[0]
        assert mt[f"{view}_mean"] == pytest.approx(np.mean(values["mt"]))
        assert mt[f"{view}_std"] == pytest.approx(np.std(values["mt"], ddof=1))
    for name, signs in expected_signs.items():
        assert claims[claims["comparison"] == name].iloc[0]["verdict"] == verdict(signs)
    assert len(claims) == 3


def test_a_verdict_says_what_holds_in_every_view():
    from ssl_bench.compare.claims import verdict

    assert verdict({"reported": "ahead", "last": "ahead"}) == "ahead in every view"
    assert verdict({"reported": "behind", "last": "behind"}) == "behind in every view"
    assert verdict({"reported": "n.s.", "last": "n.s."}) == (
        "no significant difference in any view")
    assert verdict({"reported": "ahead", "student": "n.s.", "last": "ahead"}) == (
        "depends on the view: ahead in reported, last; n.s. in student")


def test_views_go_into_the_markdown_file_and_the_claims_beside_a_csv(runs, tmp_path):
    assert compare_command([runs], output=tmp_path / "table.md", views=True, bootstrap=0) == 0
    text = (tmp_path / "table.md").read_text()
    assert "view: last" in text and "across the views" in text and "in every view" in text
    assert compare_command([runs], output=tmp_path / "table.csv", views=True, bootstrap=0) == 0
    claims = (tmp_path / "table-claims.csv").read_text().splitlines()
    assert claims[0].endswith(",verdict,views") and len(claims) == 4
    assert compare_command([runs], output=tmp_path / "plain.csv", bootstrap=0) == 0
    assert not (tmp_path / "plain-claims.csv").exists()  # only with --views
