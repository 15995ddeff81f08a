"""Paired comparisons across seeds: t-test, 95% interval, effect size, Holm correction.

Two methods run with the same seed share the split, the labeled subset and the initial
weights, so their per-seed results are paired: the test is on the per-seed differences
``d = a - b``. Reported with it:

- the mean difference and its 95% confidence interval (Student t with ``n - 1`` degrees of
  freedom, :meth:`scipy.stats.ttest_rel`'s ``confidence_interval``);
- Cohen's ``d_z = mean(d) / sd(d)`` (ddof=1), the paired effect size, which unlike a
  p-value does not grow with the number of seeds;
- Holm's step-down correction (:func:`statsmodels.stats.multitest.multipletests`) when
  several methods are tested against one baseline, which keeps the chance of any false
  "better than supervised" at 5% over the whole family without Bonferroni's loss of power.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

TEST_NAME = "paired t-test"
CORRECTION_NAME = "Holm"
EFFECT_NAME = "Cohen's d_z"
CONFIDENCE = 0.95
MIN_PAIRS = 3
FEW_PAIRS_NOTE = f"fewer than {MIN_PAIRS} paired seeds: no test"
CONSTANT_NOTE = "identical differences across seeds: t-test undefined"


@dataclass(frozen=True)
class PairedResult:
    """One paired comparison of per-seed values; ``None`` where undefined (see ``note``)."""

    n_pairs: int
    paired_diff: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    effect_size: float | None = None
    test: str | None = None
    statistic: float | None = None
    p_value: float | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def paired_comparison(a: pd.Series, b: pd.Series) -> PairedResult:
    """Compare per-seed values ``a`` and ``b`` (indexed by seed) on the seeds they share."""
    from scipy import stats

    common = a.index.intersection(b.index)
    n_pairs = len(common)
    if n_pairs == 0:
        return PairedResult(0, note="no seed in common")
    x = a.loc[common].to_numpy(dtype=float)
    y = b.loc[common].to_numpy(dtype=float)
    diff = x - y
    mean = float(diff.mean())
    if n_pairs < MIN_PAIRS:
        return PairedResult(n_pairs, paired_diff=mean, note=FEW_PAIRS_NOTE)
    if np.all(diff == diff[0]):
        return PairedResult(n_pairs, paired_diff=mean, note=CONSTANT_NOTE)
    result = stats.ttest_rel(x, y)
    interval = result.confidence_interval(CONFIDENCE)
    return PairedResult(
        n_pairs, paired_diff=mean, ci_low=float(interval.low), ci_high=float(interval.high),
        effect_size=mean / float(diff.std(ddof=1)), test=TEST_NAME,
        statistic=float(result.statistic), p_value=float(result.pvalue))


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-adjusted p-values of one family; undefined entries stay ``None`` and are not
    counted in the family."""
    from statsmodels.stats.multitest import multipletests

    defined = [i for i, p in enumerate(p_values)
               if p is not None and not (isinstance(p, float) and math.isnan(p))]
    adjusted: list[float | None] = [None] * len(p_values)
    if defined:
        _, corrected, _, _ = multipletests([p_values[i] for i in defined], method="holm")
        for i, value in zip(defined, corrected, strict=True):
            adjusted[i] = float(value)
    return adjusted
