"""ssl_bench.training.metrics against scikit-learn computed independently, plus edge cases."""

from __future__ import annotations

import ast
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    recall_score,
    roc_auc_score,
)

from ssl_bench.training.calibration import LOWER_IS_BETTER
from ssl_bench.training.metrics import (
    PRIMARY_METRIC,
    MissingClassWarning,
    compute_metrics,
    metric_names,
)

SEEDS = [0, 1, 2, 3, 4]


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _single_data(seed: int, n: int = 120, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities loosely correlated with targets; every class present."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, k, size=n)
    targets[:k] = np.arange(k)
    logits = rng.normal(size=(n, k)) + 1.2 * np.eye(k)[targets]
    return _softmax(logits), targets


def _multi_data(seed: int, n: int = 100, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    targets = (rng.random((n, k)) < 0.3).astype(int)
    targets[0], targets[1] = 1, 0  # every column has both positives and negatives
    probs = 1 / (1 + np.exp(-(rng.normal(size=(n, k)) + 1.5 * targets - 0.5)))
    return probs, targets


def _names(k: int) -> list[str]:
    return [f"c{j}" for j in range(k)]


def _assert_plain(value: object) -> None:
    """Only plain Python scalars / containers: no numpy types, no NaN."""
    if isinstance(value, dict):
        for v in value.values():
            _assert_plain(v)
    elif isinstance(value, list):
        for v in value:
            _assert_plain(v)
    else:
        assert value is None or type(value) in (float, int, str), type(value)
        if isinstance(value, float):
            assert np.isfinite(value)


# ------------------------------------------------------------------ single-label vs sklearn


@pytest.mark.parametrize("seed", SEEDS)
def test_single_label_matches_sklearn(seed: int) -> None:
    probs, targets = _single_data(seed)
    k = probs.shape[1]
    preds = probs.argmax(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # all classes present: no warning of any kind
        m = compute_metrics(probs, targets, "single", _names(k))

    assert m["auc"] == pytest.approx(
        roc_auc_score(targets, probs, multi_class="ovr", average="macro"), abs=1e-12
    )
    for j, name in enumerate(_names(k)):
        assert m["auc_per_class"][name] == pytest.approx(
            roc_auc_score(targets == j, probs[:, j]), abs=1e-12
        )
    assert m["accuracy"] == pytest.approx(accuracy_score(targets, preds), abs=1e-12)
    assert m["balanced_accuracy"] == pytest.approx(
        balanced_accuracy_score(targets, preds), abs=1e-12
    )
    assert m["f1_macro"] == pytest.approx(
        f1_score(targets, preds, average="macro", zero_division=0), abs=1e-12
    )
    recalls = recall_score(targets, preds, average=None, labels=range(k))
    assert m["sensitivity_macro"] == pytest.approx(recalls.mean(), abs=1e-12)
    # Specificity of class j is the recall of "not j" in the binarised problem.
    specs = [recall_score(targets != j, preds != j) for j in range(k)]
    assert m["specificity_macro"] == pytest.approx(np.mean(specs), abs=1e-12)
    for j, name in enumerate(_names(k)):
        assert m["sensitivity_per_class"][name] == pytest.approx(recalls[j], abs=1e-12)
        assert m["specificity_per_class"][name] == pytest.approx(specs[j], abs=1e-12)
    assert m["n"] == len(targets)
    assert m["missing_classes"] == []
    _assert_plain(m)
    json.dumps(m, allow_nan=False)


def test_single_label_metrics_are_not_trivially_equal() -> None:
    """Guard against a test that would pass with e.g. auc == accuracy everywhere."""
    probs, targets = _single_data(0)
    m = compute_metrics(probs, targets, "single", _names(4))
    assert 0.5 < m["auc"] < 1.0
    assert m["accuracy"] != pytest.approx(m["auc"])
    assert m["specificity_macro"] != pytest.approx(m["sensitivity_macro"])


def test_perfect_and_inverted_predictions() -> None:
    targets = np.array([0, 1, 2, 0, 1, 2])
    perfect = np.eye(3)[targets] * 0.8 + 0.2 / 3
    m = compute_metrics(perfect, targets, "single", ["a", "b", "c"])
    for key in metric_names("single"):
        if key not in LOWER_IS_BETTER:
            assert m[key] == 1.0, key
    # every image right with confidence 0.8667: top-label ECE 1 - 0.8667
    assert m["ece"] == pytest.approx(1 - (0.8 + 0.2 / 3))
    worst = compute_metrics(1 - perfect, targets, "single", ["a", "b", "c"])
    assert worst["auc"] == 0.0
    assert worst["accuracy"] == 0.0


def test_specificity_by_hand() -> None:
    # targets: 0 0 1 1 2 2 ; argmax predictions: 0 2 1 1 2 1
    targets = np.array([0, 0, 1, 1, 2, 2])
    preds = np.array([0, 2, 1, 1, 2, 1])
    probs = np.full((6, 3), 0.1)
    probs[np.arange(6), preds] = 0.8
    m = compute_metrics(probs, targets, "single", ["a", "b", "c"])
    # class a: TP=1 FN=1 FP=0 TN=4 ; b: TP=2 FN=0 FP=1 TN=3 ; c: TP=1 FN=1 FP=1 TN=3
    assert m["specificity_per_class"] == {"a": 1.0, "b": 0.75, "c": 0.75}
    assert m["sensitivity_per_class"] == {"a": 0.5, "b": 1.0, "c": 0.5}
    assert m["specificity_macro"] == pytest.approx(2.5 / 3)
    assert m["sensitivity_macro"] == pytest.approx(2 / 3)
    assert m["balanced_accuracy"] == pytest.approx(2 / 3)
    assert m["accuracy"] == pytest.approx(4 / 6)


# ------------------------------------------------------------------ f1 label choice


def test_f1_uses_labels_present_in_targets_or_predictions() -> None:
    """A class neither present nor predicted is not counted as F1 = 0."""
    rng = np.random.default_rng(7)
    targets = rng.integers(0, 2, size=50)
    targets[:2] = [0, 1]
    logits = rng.normal(size=(50, 3)) + 1.0 * np.eye(3)[targets]
    logits[:, 2] = -10.0  # class 2: never true, never predicted
    probs = _softmax(logits)
    preds = probs.argmax(axis=1)
    with pytest.warns(MissingClassWarning):
        m = compute_metrics(probs, targets, "single", _names(3))
    ours = f1_score(targets, preds, average="macro", zero_division=0)
    all_labels = f1_score(targets, preds, average="macro", labels=range(3), zero_division=0)
    assert m["f1_macro"] == pytest.approx(ours, abs=1e-12)
    assert m["f1_macro"] != pytest.approx(all_labels)


def test_f1_counts_predicted_but_absent_class_as_zero() -> None:
    targets = np.array([0, 0, 1, 1])
    preds = np.array([0, 2, 1, 1])  # class 2 predicted once, never true
    probs = np.full((4, 3), 0.1)
    probs[np.arange(4), preds] = 0.8
    with pytest.warns(MissingClassWarning):
        m = compute_metrics(probs, targets, "single", _names(3))
    # F1: class 0 = 2/3, class 1 = 1, class 2 = 0 -> mean 5/9
    assert m["f1_macro"] == pytest.approx(5 / 9)


# ------------------------------------------------------------------ multi-label vs sklearn


@pytest.mark.parametrize("seed", SEEDS)
def test_multi_label_matches_sklearn(seed: int) -> None:
    probs, targets = _multi_data(seed)
    k = probs.shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = compute_metrics(probs, targets, "multi", _names(k))
    per_class = roc_auc_score(targets, probs, average=None)
    for j, name in enumerate(_names(k)):
        assert m["auc_per_class"][name] == pytest.approx(per_class[j], abs=1e-12)
    assert m["auc"] == pytest.approx(roc_auc_score(targets, probs, average="macro"), abs=1e-12)
    assert m["n"] == len(targets)
    assert m["missing_classes"] == []
    assert set(m) == {"auc", "auc_per_class", "n", "missing_classes", "ece",
                      "ece_per_class", "brier", "brier_per_class", "reliability"}
    _assert_plain(m)
    json.dumps(m, allow_nan=False)


# ------------------------------------------------------------------ undefined classes


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_single_label_missing_class(seed: int) -> None:
    probs, targets = _single_data(seed, k=4)
    targets = np.where(targets == 2, 0, targets)  # class c2 absent from targets
    preds = probs.argmax(axis=1)
    assert (preds == 2).any()  # ... but still predicted sometimes
    with pytest.warns(MissingClassWarning, match="c2"):
        m = compute_metrics(probs, targets, "single", _names(4))
    assert m["auc_per_class"]["c2"] is None
    assert m["missing_classes"] == ["c2"]
    others = [roc_auc_score(targets == j, probs[:, j]) for j in (0, 1, 3)]
    assert m["auc"] == pytest.approx(np.mean(others), abs=1e-12)
    assert m["sensitivity_per_class"]["c2"] is None
    assert m["specificity_per_class"]["c2"] is not None
    recalls = recall_score(targets, preds, average=None, labels=[0, 1, 3])
    assert m["sensitivity_macro"] == pytest.approx(recalls.mean(), abs=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about y_pred labels not in y_true
        expected_bacc = balanced_accuracy_score(targets, preds)
    assert m["balanced_accuracy"] == pytest.approx(expected_bacc, abs=1e-12)
    _assert_plain(m)
    json.dumps(m, allow_nan=False)


def test_single_label_only_one_class_present() -> None:
    targets = np.zeros(5, dtype=int)
    probs = _softmax(np.random.default_rng(0).normal(size=(5, 2)))
    with pytest.warns(MissingClassWarning):
        m = compute_metrics(probs, targets, "single", ["neg", "pos"])
    assert m["auc"] is None
    assert m["auc_per_class"] == {"neg": None, "pos": None}
    assert m["missing_classes"] == ["neg", "pos"]
    assert m["specificity_per_class"]["neg"] is None  # no negatives for class "neg"
    assert m["sensitivity_per_class"]["pos"] is None  # no positives for class "pos"
    _assert_plain(m)
    json.dumps(m, allow_nan=False)


def test_multi_label_constant_columns() -> None:
    probs, targets = _multi_data(0, k=5)
    targets[:, 1] = 0
    targets[:, 3] = 1
    with pytest.warns(MissingClassWarning, match=r"c1.*c3"):
        m = compute_metrics(probs, targets, "multi", _names(5))
    assert m["auc_per_class"]["c1"] is None
    assert m["auc_per_class"]["c3"] is None
    assert m["missing_classes"] == ["c1", "c3"]
    defined = roc_auc_score(targets[:, [0, 2, 4]], probs[:, [0, 2, 4]], average="macro")
    assert m["auc"] == pytest.approx(defined, abs=1e-12)
    _assert_plain(m)
    json.dumps(m, allow_nan=False)


@pytest.mark.parametrize("seed", SEEDS)
def test_per_class_auc_is_exactly_sklearns_column_by_column(seed: int) -> None:
    """All defined columns are scored in one ``roc_auc_score`` call: bit for bit what one
    call per column gives, with ties, constant columns and a single defined column."""
    rng = np.random.default_rng(seed)
    n, k = 40, 6
    targets = (rng.random((n, k)) < 0.4).astype(np.int64)
    targets[:, 1], targets[:, 4] = 0, 1
    probs = np.round(rng.random((n, k)), 1)  # many ties
    for columns in (range(k), [0, 1, 4]):  # several defined columns, then only column 0
        names = [f"c{j}" for j in columns]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MissingClassWarning)
            m = compute_metrics(probs[:, columns], targets[:, columns], "multi", names)
        for j, name in zip(columns, names, strict=True):
            constant = targets[:, j].min() == targets[:, j].max()
            expected = None if constant else float(roc_auc_score(targets[:, j], probs[:, j]))
            assert m["auc_per_class"][name] == expected, name


def test_multi_label_nothing_defined() -> None:
    probs = np.full((3, 2), 0.5)
    targets = np.array([[0, 1], [0, 1], [0, 1]])
    with pytest.warns(MissingClassWarning):
        m = compute_metrics(probs, targets, "multi", ["x", "y"])
    assert m["auc"] is None
    assert m["auc_per_class"] == {"x": None, "y": None}


# ------------------------------------------------------------------ names and inputs


def test_metric_names() -> None:
    assert PRIMARY_METRIC == "auc"
    single = metric_names("single")
    assert PRIMARY_METRIC in single and PRIMARY_METRIC in metric_names("multi")
    probs, targets = _single_data(0)
    m = compute_metrics(probs, targets, "single", _names(4))
    for key in single:
        assert isinstance(m[key], float), key
    assert metric_names("multi") == ["auc", "ece", "brier"]
    single.append("mutated")
    assert "mutated" not in metric_names("single")
    with pytest.raises(ValueError, match="kind"):
        metric_names("binary")


def test_kinds_match_tasks_module() -> None:
    """metrics keeps its own copy of the task kinds (to stay torch-free); keep them in sync.

    Read from the source rather than imported, so this file never pays for importing torch.
    """
    from ssl_bench.training.metrics import _KINDS

    source = Path(__file__).resolve().parents[1] / "ssl_bench" / "data" / "tasks.py"
    tree = ast.parse(source.read_text())
    kinds = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "TASK_KINDS" for t in targets):
            kinds.append(ast.literal_eval(node.value))
    assert kinds, "TASK_KINDS not found in ssl_bench/data/tasks.py"
    assert tuple(_KINDS) == tuple(kinds[0])


_P3 = _softmax(np.random.default_rng(0).normal(size=(4, 3)))
_T3 = np.array([0, 1, 2, 1])
_M3 = np.array([[0, 1, 1], [1, 0, 1], [0, 0, 1], [1, 1, 0]])


@pytest.mark.parametrize(
    ("probs", "targets", "kind", "names", "match"),
    [
        (_P3, _T3, "binary", _names(3), "kind"),
        (_P3[0], _T3, "single", _names(3), "2-D"),
        (_P3, _T3[:3], "single", _names(3), "shape"),
        (_P3, _T3, "single", _names(2), "class names"),
        (_P3, _T3, "single", ["a", "a", "b"], "unique"),
        (_P3, np.array([0, 1, 3, 1]), "single", _names(3), r"\[0, 3\)"),
        (_P3, np.array([0, -1, 2, 1]), "single", _names(3), r"\[0, 3\)"),
        (_P3, np.array([0, 1.5, 2, 1]), "single", _names(3), "integer"),
        (_P3, np.array(["a", "b", "c", "a"]), "single", _names(3), "numeric"),
        (_P3, _M3, "single", _names(3), "shape"),
        (np.where(_P3 > 0.5, np.nan, _P3), _T3, "single", _names(3), "NaN"),
        (np.zeros((0, 3)), np.zeros(0, dtype=int), "single", _names(3), "empty"),
        (_P3[:, :1], np.zeros(4, dtype=int), "single", _names(1), "at least 2"),
        (_P3, _T3, "multi", _names(3), "shape"),
        (_P3, _M3 * 2, "multi", _names(3), "0/1"),
        (_P3, _M3[:, :2], "multi", _names(3), "shape"),
    ],
)
def test_bad_inputs_raise(probs, targets, kind, names, match) -> None:
    with pytest.raises(ValueError, match=match):
        compute_metrics(probs, targets, kind, names)


def test_accepts_float_and_bool_targets() -> None:
    probs, targets = _single_data(1)
    a = compute_metrics(probs, targets, "single", _names(4))
    b = compute_metrics(probs, targets.astype(float), "single", _names(4))
    assert a == b
    mprobs, mtargets = _multi_data(1)
    assert compute_metrics(mprobs, mtargets.astype(bool), "multi", _names(5)) == compute_metrics(
        mprobs, mtargets, "multi", _names(5)
    )
