"""benchmarks/old_vs_new.py: the paired old-vs-new comparison of one labeled amount."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest
from scipy import stats

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
