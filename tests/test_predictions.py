"""Saved test predictions, the weighted metrics and bootstrap built on them, and the
confusion matrices: checked against the recorded metrics, scikit-learn (through
compute_metrics) on explicitly repeated samples, and hand-made cases."""

from __future__ import annotations

import gzip
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_RUN

from ssl_bench.cli.main import main
from ssl_bench.compare.bootstrap import Scored, bootstrap_interval
from ssl_bench.compare.bootstrap_table import bootstrap_table
from ssl_bench.compare.confusion import pooled_confusions
from ssl_bench.compare.runs import load_runs
from ssl_bench.compare.weighted_metrics import multiplicities, weighted_metric
from ssl_bench.runs.predictions import PREDICTIONS, read_predictions
from ssl_bench.sweeps.local import make_spec, plan, run_sweep
from ssl_bench.training.metrics import compute_metrics, metric_names


@pytest.fixture(scope="module", params=["digits", "digits-multilabel"])
def sweep(request, tmp_path_factory) -> Path:
    results = tmp_path_factory.mktemp("predictions") / "results"
    spec = make_spec({
        "name": "tiny", "methods": ["supervised", "mt"], "labeled": [0.1], "seeds": [0, 1, 2],
        "run": {**TINY_RUN, "iterations": 6, "dataset": request.param},
        "results": str(results), "keep_checkpoints": False}, "test spec")
    run_sweep(spec, plan(spec), quiet=True)
    return results / "tiny"


def test_saved_probabilities_give_back_every_recorded_test_metric(sweep):
    runs = sorted(p.parent for p in sweep.rglob("metrics.json"))
    assert len(runs) == 6
    for run in runs:
        metrics = json.loads((run / "metrics.json").read_text())
        record = metrics["predictions"]
        arrays = read_predictions(run, record)
        split = json.loads((run / "split.json").read_text())
        test_ids = split.get("test") or split["parts"]["test"]
        assert arrays["ids"].tolist() == list(test_ids)
        assert record["n"] == len(test_ids) and set(record["models"]) == (
            {"student", "teacher"} if metrics["method"] == "mt" else {"student"})
        kind = "multi" if arrays["targets"].ndim == 2 else "single"
        for model, step in record["models"].items():
            assert metrics[model]["best_step"] == step
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                again = compute_metrics(arrays[f"probs_{model}"], arrays["targets"], kind,
                                        arrays["classes"].tolist())
            for key in metric_names(kind):
                assert again[key] == pytest.approx(metrics[model]["test"][key], abs=1e-6), key


def test_an_altered_predictions_file_is_refused_and_left_out(sweep, tmp_path, capsys):
    copy = tmp_path / "runs"
    shutil.copytree(sweep, copy)
    run = sorted(p.parent for p in copy.rglob(PREDICTIONS))[0]
    lines = gzip.decompress((run / PREDICTIONS).read_bytes()).decode().splitlines()
    header, one, two, *rest = lines  # two images swap their numbers, ids kept
    lines = [header, ",".join([one.split(",")[0], *two.split(",")[1:]]),
             ",".join([two.split(",")[0], *one.split(",")[1:]]), *rest]
    (run / PREDICTIONS).write_bytes(gzip.compress("\n".join(lines).encode()))
    assert main(["compare", str(copy), "--format", "md", "--pairs", "none"]) == 0
    err = capsys.readouterr().err
    assert "bootstrap skips a run" in err and "does not match the digest" in err
    (run / PREDICTIONS).write_bytes(b"garbage")
    df, _ = load_runs([copy])
    table, notes = bootstrap_table(df, "auc", resamples=200)
    assert any("damaged" in note for note in notes)
    method = json.loads((run / "metrics.json").read_text())["method"]
    mine = table[(table["method"] == method) & (table["versus"] == "")]
    assert int(mine["n_seeds"].iloc[0]) == 2  # of 3 seeds: the damaged run left out


def test_the_bootstrap_table_brackets_the_mean_and_tests_against_the_baseline(sweep):
    df, _ = load_runs([sweep])
    table, notes = bootstrap_table(df, "auc", resamples=300)
    assert not notes
    own = table[table["versus"] == ""]
    means = df[df["model"] == "reported"].groupby("method")["auc"].mean()
    for _, row in own.iterrows():
        assert row["estimate"] == pytest.approx(means[row["method"]])
        assert row["ci_low"] <= row["estimate"] <= row["ci_high"]
    versus = table[table["versus"] == "supervised"]
    assert versus["method"].tolist() == ["mt"] and 0 < versus["p_value"].iloc[0] <= 1
    assert versus["estimate"].iloc[0] == pytest.approx(means["mt"] - means["supervised"])
    assert bootstrap_table(df, "auc", resamples=0)[0].empty
    assert bootstrap_table(df, "auc", model="last")[0].empty


def test_bootstrap_flag_is_checked_in_one_line(sweep, capsys):
    assert main(["compare", str(sweep), "--bootstrap", "50"]) == 2
    assert capsys.readouterr().err.startswith("ssl-bench: error: --bootstrap: '50'")


def test_confusion_matrices_pool_the_seeds(sweep):
    df, _ = load_runs([sweep])
    (cell,) = pooled_confusions(df, "reported")
    where, counts, classes, kind = cell
    n = json.loads(next(sweep.rglob("metrics.json")).read_text())["predictions"]["n"]
    for matrix in counts.values():
        if kind == "single":
            assert matrix.shape == (len(classes), len(classes)) and matrix.sum() == 3 * n
        else:  # TP + FP + FN + TN = every image, per finding
            assert matrix.shape == (len(classes), 4)
            assert (matrix.sum(axis=1) == 3 * n).all()


# ----------------------------------------------------------- weighted metrics, bootstrap


def _data(kind: str, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    n, k = 120, 5
    if kind == "single":
        logits = rng.normal(size=(n, k)) * 2
        probs = np.round(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), 2)  # ties
        targets = rng.integers(0, k - 1, n)  # the last class never a label
    else:
        probs = np.round(rng.uniform(size=(n, k)), 2)
        targets = (rng.uniform(size=(n, k)) < probs).astype(int)
    return probs, targets, [f"c{j}" for j in range(k)]


@pytest.mark.parametrize("kind", ["single", "multi"])
@pytest.mark.parametrize("seed", [0, 1])
def test_weighted_metrics_equal_compute_metrics_on_the_repeated_sample(kind, seed):
    probs, targets, names = _data(kind, seed)
    drawn = np.random.default_rng(seed + 10).integers(0, len(probs), size=(4, len(probs)))
    weights = multiplicities(drawn, len(probs))
    for r in range(len(drawn)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = compute_metrics(probs[drawn[r]], targets[drawn[r]], kind, names)
        for key in [*metric_names(kind), "auc_c0"]:
            value = weighted_metric(key, probs, targets, kind, names)(weights)[r]
            expected = want["auc_per_class"]["c0"] if key == "auc_c0" else want[key]
            assert value == pytest.approx(expected, abs=1e-12), key


def test_a_method_against_itself_differs_by_nothing():
    probs, targets, names = _data("single", 0)
    ids = tuple(map(str, range(len(probs))))
    scored = Scored(ids, weighted_metric("auc", probs, targets, "single", names))
    result = bootstrap_interval([[scored, scored]] * 3, sign=(1.0, -1.0), resamples=200)
    assert (result.estimate, result.low, result.high, result.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_the_interval_matches_a_plain_percentile_bootstrap():
    probs, targets, names = _data("single", 1)
    n = len(probs)
    accuracy = weighted_metric("accuracy", probs, targets, "single", names)
    ids = tuple(map(str, range(n)))
    result = bootstrap_interval([[Scored(ids, accuracy)]], resamples=4000)
    correct = probs.argmax(1) == targets
    draws = np.random.default_rng(7).integers(0, n, size=(4000, n))
    plain = np.percentile(correct[draws].mean(axis=1), [2.5, 97.5])
    assert result.estimate == pytest.approx(correct.mean())
    assert result.low == pytest.approx(plain[0], abs=0.02)
    assert result.high == pytest.approx(plain[1], abs=0.02)


def test_seeds_on_other_test_images_are_drawn_apart():
    probs, targets, names = _data("single", 0)
    auc = weighted_metric("auc", probs, targets, "single", names)
    same = [[Scored(tuple(map(str, range(len(probs)))), auc)]] * 2
    apart = [[Scored(tuple(f"{s}-{i}" for i in range(len(probs))), auc)] for s in range(2)]
    shared, independent = bootstrap_interval(same, resamples=500), bootstrap_interval(
        apart, resamples=500)
    assert shared.estimate == independent.estimate
    # two independent draws average out: a narrower interval than one shared draw
    assert independent.high - independent.low < shared.high - shared.low


def test_a_pair_that_repeats_the_baseline_test_is_bootstrapped_once(sweep):
    df, _ = load_runs([sweep])
    table, _ = bootstrap_table(df, "auc", pairs=[("mt", "supervised")], resamples=200)
    assert table[table["versus"] != ""]["method"].tolist() == ["mt"]


def test_the_file_is_a_readable_csv_that_gives_back_every_float32(tmp_path):
    from ssl_bench.runs.predictions import write_predictions

    probs = np.random.default_rng(0).dirichlet(np.ones(3), size=5).astype(np.float32)
    probs[0, 0] = np.float32(1e-30)  # tiny values survive too
    for targets in (np.array([0, 1, 2, 1, 0]), (probs > 0.3).astype(int)):
        record = write_predictions(tmp_path, [f"img{i}" for i in range(5)], ["a", "b", "c"],
                                   targets, {"student": probs, "teacher": probs[::-1]},
                                   {"student": 3, "teacher": 4})
        arrays = read_predictions(tmp_path, record)
        assert np.array_equal(arrays["probs_student"], probs)
        assert np.array_equal(arrays["probs_teacher"], probs[::-1])
        assert np.array_equal(arrays["targets"], targets) and arrays["ids"][0] == "img0"
        header = gzip.decompress((tmp_path / PREDICTIONS).read_bytes()).decode().split("\n")[0]
        assert header.startswith("id,target") and header.endswith("teacher:c")
        again = write_predictions(tmp_path, [f"img{i}" for i in range(5)], ["a", "b", "c"],
                                  targets, {"student": probs, "teacher": probs[::-1]},
                                  {"student": 3, "teacher": 4})
        assert again == record  # the same predictions, the same file and record
