"""Bootstrap intervals over test images (``scipy.stats.bootstrap``), from saved predictions.

The seed-paired t-tests of a comparison ask how much a result depends on the *training
seed* (labeled subset, initialisation, order), with the test images fixed. The bootstrap
here asks the other question: how much it depends on *which test images* were drawn,
with the trained models fixed.

* **A cell's interval.** The statistic is the metric's mean over the cell's seeds; a
  resample draws test images with replacement. Seeds scored on the same test images
  (the same split) share one draw -- the images are one sample, whoever scored them;
  otherwise each seed's images are drawn on their own.
* **A paired bootstrap** between two methods: the mean over seeds of
  ``metric(A) - metric(B)``, both scored on the same drawn images -- runs paired by seed
  and by test image. Its p-value is two-sided, from the bootstrap distribution:
  ``min(1, 2 min((1 + #{d <= 0}) / (R + 1), (1 + #{d >= 0}) / (R + 1)))``.

A cell's interval is BCa (scipy's default; it corrects the bias of statistics such as
ECE under resampling), percentile where BCa is undefined (a constant statistic, e.g. a
perfect score). A difference's interval is the percentile interval of the same
distribution its p-value comes from, so the two agree (0 outside the 95% interval
exactly when p < 0.05, up to ties). The resamples are seeded: a report is reproducible.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ssl_bench.compare.arguments import BOOTSTRAP_RESAMPLES as RESAMPLES
from ssl_bench.compare.weighted_metrics import Metric, multiplicities

CONFIDENCE = 0.95
SEED = 0


@dataclass(frozen=True)
class Scored:
    """One run's test images, as the bootstrap needs them: their ids and the metric's
    weight-row function (:mod:`.weighted_metrics`)."""

    ids: tuple[str, ...]
    metric: Metric


@dataclass(frozen=True)
class Interval:
    """A bootstrap estimate: the statistic on the images as drawn, its interval, the
    method that made it, and (for a difference) its two-sided p-value."""

    estimate: float
    low: float
    high: float
    method: str
    p_value: float | None = None


def _statistic(groups: Sequence[Sequence[Metric]], sizes: Sequence[int], sign: Sequence[float]):
    """The vectorised statistic: resampled index arrays (one per sample) -> the mean
    over seeds of the signed metric sums."""
    def statistic(*indices: np.ndarray, axis: int = -1) -> np.ndarray:
        total: np.ndarray | float = 0.0
        seeds = 0
        for index, metrics, n in zip(indices, groups, sizes, strict=True):
            index = np.asarray(index)
            weights = multiplicities(index.reshape(-1, index.shape[-1]), n)
            for per_seed in metrics_by_seed(metrics, sign):
                total = total + per_seed(weights).reshape(index.shape[:-1])
                seeds += 1
        return np.asarray(total) / seeds

    return statistic


def metrics_by_seed(metrics: Sequence[Metric], sign: Sequence[float]) -> list[Metric]:
    """Per seed, the signed sum over the compared methods (one method: the metric)."""
    count = len(sign)
    return [(lambda chunk: lambda w: sum(s * m(w) for s, m in zip(sign, chunk, strict=True)))(
        metrics[i:i + count]) for i in range(0, len(metrics), count)]


def _samples(seeds: Sequence[Sequence[Scored]]) -> tuple[list[list[Metric]], list[int]]:
    """Group the seeds into resampling samples: one shared sample when every seed's
    images are the same, else one sample per seed. ``seeds[i]``: the runs paired on seed
    ``i`` (one per compared method), which must share their images."""
    for runs in seeds:
        if any(run.ids != runs[0].ids for run in runs):
            raise ValueError("paired runs must be scored on the same test images")
    if all(runs[0].ids == seeds[0][0].ids for runs in seeds):
        return [[run.metric for runs in seeds for run in runs]], [len(seeds[0][0].ids)]
    return ([[run.metric for run in runs] for runs in seeds],
            [len(runs[0].ids) for runs in seeds])


def bootstrap_interval(seeds: Sequence[Sequence[Scored]], sign: Sequence[float] = (1.0,),
                       resamples: int = RESAMPLES, seed: int = SEED) -> Interval:
    """The bootstrap interval of the mean over ``seeds`` of ``sum(sign * metric)`` (one
    method: ``sign = (1,)``; a paired difference A - B: ``(1, -1)``, each seed's runs in
    that order). See the module docstring."""
    from scipy.stats import bootstrap

    groups, sizes = _samples(seeds)
    statistic = _statistic(groups, sizes, sign)
    data = tuple(np.arange(n) for n in sizes)
    estimate = float(statistic(*[d[None, :] for d in data])[0])
    result = None
    for method in ("BCa", "percentile") if len(sign) == 1 else ("percentile",):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (degenerate data: BCa is NaN, percentile next)
            result = bootstrap(data, statistic, n_resamples=resamples, vectorized=True,
                               paired=False, confidence_level=CONFIDENCE, method=method,
                               batch=100, random_state=np.random.default_rng(seed))
        if np.isfinite(result.confidence_interval.low) and np.isfinite(
                result.confidence_interval.high):
            break
    assert result is not None
    p_value = None
    if len(sign) > 1:
        draws = result.bootstrap_distribution
        below = (1 + np.sum(draws <= 0)) / (len(draws) + 1)
        above = (1 + np.sum(draws >= 0)) / (len(draws) + 1)
        p_value = float(min(1.0, 2 * min(below, above)))
    return Interval(estimate, float(result.confidence_interval.low),
                    float(result.confidence_interval.high), method, p_value)
