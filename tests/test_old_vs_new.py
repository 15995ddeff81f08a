"""benchmarks/old_vs_new.py: the paired old-vs-new comparison of one labeled amount."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from test_compare_views import write_run

from ssl_bench.data.splits.files import save_split
from ssl_bench.data.splits.record import Split

_PATH = Path(__file__).parents[1] / "benchmarks" / "old_vs_new.py"
_spec = importlib.util.spec_from_file_location("old_vs_new", _PATH)
old_vs_new = importlib.util.module_from_spec(_spec)
sys.modules["old_vs_new"] = old_vs_new  # dataclasses look their module up
_spec.loader.exec_module(old_vs_new)


def test_paired_uses_the_common_seeds_and_matches_scipy():
    after = {0: 0.81, 1: 0.84, 2: 0.80, 3: 0.99}  # seed 3 has no partner: left out
    before = {0: 0.80, 1: 0.80, 2: 0.79, 4: 0.10}
    result = old_vs_new.paired(after, before)
    reference = stats.ttest_rel([0.81, 0.84, 0.80], [0.80, 0.80, 0.79])
    interval = reference.confidence_interval(0.95)
    assert result.n == 3
    assert result.mean == pytest.approx(0.02)  # (0.01 + 0.04 + 0.01) / 3
    assert result.p == pytest.approx(reference.pvalue)
    assert (result.low, result.high) == pytest.approx((interval.low, interval.high))
    assert "n=3" in result.text()


def test_paired_with_one_or_no_common_seed_says_so():
    assert old_vs_new.paired({0: 0.9}, {1: 0.8}).text() == "no common seeds"
    one = old_vs_new.paired({0: 0.9}, {0: 0.8})
    assert one.text() == "+0.1000 (n=1)" and math.isnan(one.p)


def test_a_missing_folder_is_one_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        old_vs_new.main([str(tmp_path / "nope"), str(tmp_path), "--labeled", "0.2"])
    assert "nope is not a folder" in capsys.readouterr().err


def _split(root: Path) -> None:
    train = [f"i{k}" for k in range(200)]  # the same images in every sweep
    split = Split(dataset="digits", fingerprint="fp", seed=0, ratios=(0.7, 0.1, 0.2),
                  labeled_spec=0.2, train=train, val=["v1", "v2"], test=["t1", "t2"],
                  labeled=train[:40])  # write_run's num_labeled
    for run in root.glob("*/labeled=0.2/seed=*"):
        save_split(split, run / "split.json")


def _sweep(root: Path, sup: list[float], full: list[float], mt: list[float]) -> None:
    for seed in range(3):
        write_run(root, "supervised", seed, student=sup[seed], teacher=None, last=None,
                  best_step=50, per_step=4, uses_unlabeled=False)
        write_run(root, "supervised-labeled-batch", seed, student=full[seed], teacher=None,
                  last=None, best_step=50, per_step=16, uses_unlabeled=False, batch="labeled")
        write_run(root, "mt", seed, student=mt[seed], teacher=None, last=None, best_step=50,
                  per_step=4, uses_unlabeled=True)
    _split(root)


def test_a_cell_rerun_in_its_own_folder_replaces_it_and_a_repeat_is_an_error(tmp_path,
                                                                             capsys):
    old, new, rerun = tmp_path / "old", tmp_path / "new", tmp_path / "rerun"
    _sweep(old, [0.70, 0.72, 0.74], [0.71, 0.73, 0.75], [0.75, 0.765, 0.77])
    _sweep(new, [0.72, 0.745, 0.76], [0.60, 0.61, 0.63], [0.80, 0.81, 0.82])
    rerun_values = [0.78, 0.79, 0.81]
    for seed, value in enumerate(rerun_values):  # the labeled-batch cell, re-run
        write_run(rerun, "supervised-labeled-batch", seed, student=value, teacher=None,
                  last=None, best_step=50, per_step=16, uses_unlabeled=False, batch="labeled")
    _split(rerun)
    new_folders = [new / "supervised", new / "mt", rerun]
    text = old_vs_new.report(old, new_folders, 0.2, "auc", "reported")
    cells = next(line for line in text.splitlines() if line.startswith("| mt |")).split(" | ")
    # mt's new gain over the re-run baseline, by hand: 0.02, 0.02, 0.01
    diff = np.array([0.02, 0.02, 0.01])
    half = stats.t.ppf(0.975, 2) * diff.std(ddof=1) / math.sqrt(3)
    p = stats.ttest_rel([0.80, 0.81, 0.82], rerun_values).pvalue
    assert cells[-1] == (f"{diff.mean():+.4f} [{diff.mean() - half:+.4f}, "
                         f"{diff.mean() + half:+.4f}] (p {p:.2g}, n=3) |")
    baseline = next(line for line in text.splitlines()
                    if line.startswith("| supervised-labeled-batch |"))
    assert " | 0.7933 ± 0.0153 | " in baseline  # the re-run's values, not the 0.60s
    assert f"`{rerun}`" in text.splitlines()[0]
    with pytest.raises(SystemExit, match="supervised-labeled-batch seed 0 is in two runs"):
        old_vs_new.report(old, [new, rerun], 0.2, "auc", "reported")
