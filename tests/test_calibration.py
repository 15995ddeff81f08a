"""Calibration metrics (ECE, Brier, reliability bins) against scikit-learn and by hand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss

from ssl_bench.training.calibration import BINS, bin_index
from ssl_bench.training.metrics import compute_metrics, metric_names


def _softmax(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    logits = rng.normal(scale=2.0, size=(n, k))
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_hand_computed_single_label_case() -> None:
    # confidences 0.90 (right) and 0.92 (wrong) share bin 13 = (13/15, 14/15];
    # 0.62 (wrong) is alone in bin 9, 0.70 (right) alone in bin 10.
    probs = np.array([[0.9, 0.1], [0.08, 0.92], [0.62, 0.38], [0.3, 0.7]])
    targets = np.array([0, 0, 1, 1])
    m = compute_metrics(probs, targets, "single", ["a", "b"])
    assert m["ece"] == pytest.approx(2 / 4 * abs(0.5 - 0.91) + 1 / 4 * 0.62 + 1 / 4 * 0.3)
    assert m["brier"] == pytest.approx((0.02 + 1.6928 + 0.7688 + 0.18) / 4)
    rel = m["reliability"]
    assert rel["bins"] == BINS and sum(rel["count"]) == 4
    assert rel["count"][13] == 2 and rel["observed"][13] == 0.5
    assert rel["confidence"][13] == pytest.approx(0.91)
    assert rel["confidence"][0] is None and rel["observed"][0] is None


def test_binning_is_calibration_curves() -> None:
    edges = np.linspace(0, 1, BINS + 1)
    # an edge value belongs to the bin below it; 0 to the first, 1 to the last
    assert bin_index(np.array([0.0, edges[1], edges[1] + 1e-9, 1.0])).tolist() == [0, 0, 1, 14]


@pytest.mark.parametrize("k", [2, 5, 7])
def test_single_label_against_sklearn(k: int) -> None:
    rng = np.random.default_rng(k)
    probs = _softmax(rng, 400, k)
    targets = rng.integers(0, k, size=400)
    m = compute_metrics(probs, targets, "single", [f"c{j}" for j in range(k)])
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == targets).astype(int)
    prob_true, prob_pred = calibration_curve(correct, confidence, n_bins=BINS)
    rel = m["reliability"]
    counts = np.array([c for c in rel["count"] if c])
    assert [v for v in rel["observed"] if v is not None] == pytest.approx(prob_true)
    assert [v for v in rel["confidence"] if v is not None] == pytest.approx(prob_pred)
    assert m["ece"] == pytest.approx(float((counts / 400 * abs(prob_true - prob_pred)).sum()))
    assert m["brier"] == pytest.approx(
        brier_score_loss(targets, probs, labels=list(range(k)), scale_by_half=False))


def test_multi_label_against_sklearn() -> None:
    rng = np.random.default_rng(3)
    probs = rng.uniform(size=(300, 4))
    targets = (rng.uniform(size=(300, 4)) < probs * 0.8).astype(int)
    names = ["w", "x", "y", "z"]
    m = compute_metrics(probs, targets, "multi", names)
    for j, name in enumerate(names):
        prob_true, prob_pred = calibration_curve(targets[:, j], probs[:, j], n_bins=BINS)
        counts = np.bincount(bin_index(probs[:, j]), minlength=BINS)
        ece = float((counts[counts > 0] / 300 * abs(prob_true - prob_pred)).sum())
        assert m["ece_per_class"][name] == pytest.approx(ece)
        assert m["brier_per_class"][name] == pytest.approx(
            brier_score_loss(targets[:, j], probs[:, j]))
    assert m["ece"] == pytest.approx(np.mean(list(m["ece_per_class"].values())))
    assert m["brier"] == pytest.approx(np.mean(list(m["brier_per_class"].values())))
    pooled_true, _ = calibration_curve(targets.reshape(-1), probs.reshape(-1), n_bins=BINS)
    assert [v for v in m["reliability"]["observed"] if v is not None] == pytest.approx(
        pooled_true)


def test_perfect_one_hot_predictions_score_zero() -> None:
    targets = np.array([0, 1, 2, 1])
    m = compute_metrics(np.eye(3)[targets], targets, "single", ["a", "b", "c"])
    assert m["ece"] == 0.0 and m["brier"] == 0.0


@pytest.mark.parametrize("kind", ["single", "multi"])
def test_calibration_scores_are_history_columns(kind: str) -> None:
    assert {"ece", "brier"} <= set(metric_names(kind))


def test_seeds_pool_into_one_line_weighted_by_count() -> None:
    from ssl_bench.compare.reliability import pooled

    first = {"count": [2, 0, 1], "confidence": [0.1, None, 0.9], "observed": [0.0, None, 1.0]}
    second = {"count": [1, 0, 3], "confidence": [0.4, None, 0.7], "observed": [1.0, None, 0.0]}
    pool = pooled([first, second])
    assert pool["count"].tolist() == [3, 0, 4]
    assert pool["confidence"][0] == pytest.approx((2 * 0.1 + 0.4) / 3)
    assert pool["observed"][2] == pytest.approx(1 / 4)
    assert np.isnan(pool["confidence"][1]) and np.isnan(pool["observed"][1])
