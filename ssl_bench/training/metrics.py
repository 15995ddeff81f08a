"""Evaluation metrics for single-label and multi-label classification.

Everything is computed with scikit-learn; this module only validates inputs, handles
classes that are undefined in the evaluated set, and returns plain Python values so the
result can go straight into JSON and ``history.csv``.

Undefined classes. A class whose ROC AUC is undefined in the evaluated set (no positive
or no negative sample) is reported as ``None`` -- never 0 or NaN -- and is left out of
the macro mean; a :class:`MissingClassWarning` names such classes. Small validation
splits of rare-disease data sets hit this routinely, so it must not crash an epoch.

Single-label macro definitions (the choices are deliberate and tested):

* ``auc``: mean of the per-class one-vs-rest AUCs over the classes where AUC is defined.
  With every class present this equals
  ``roc_auc_score(targets, probs, multi_class="ovr", average="macro")``.
* ``balanced_accuracy`` / ``sensitivity_macro``: mean recall over the classes present in
  ``targets``. This is what ``sklearn.metrics.balanced_accuracy_score`` computes (it warns
  when a predicted class is absent from ``targets``, we do not).
* ``specificity_macro``: mean of ``TN / (TN + FP)`` over the classes that have at least one
  negative sample.
* ``f1_macro``: ``f1_score(average="macro", zero_division=0)`` with scikit-learn's default
  labels, i.e. the classes present in ``targets`` *or* in the predictions. A class that is
  neither present nor predicted has no defined F1 and is not counted as 0 (that would
  penalise a perfect model on a split that happens to lack a class); a class that is
  predicted but absent from ``targets`` does count, with F1 = 0.

Predictions for accuracy, F1, sensitivity and specificity are the argmax of ``probs``.

Calibration (``ece``, ``brier``, ``reliability``; lower is better) is defined in
:mod:`ssl_bench.training.calibration`.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, roc_auc_score

from ssl_bench.training.calibration import multi_label_calibration, single_label_calibration

# Same kinds as ``ssl_bench.data.tasks.TASK_KINDS``; not imported so this module needs no torch.
_KINDS: tuple[str, ...] = ("single", "multi")

PRIMARY_METRIC = "auc"
"""The metric used for model selection and reported as the headline number."""

_SCALAR_METRICS: dict[str, list[str]] = {
    "single": [
        "auc",
        "accuracy",
        "balanced_accuracy",
        "f1_macro",
        "sensitivity_macro",
        "specificity_macro",
        "ece",
        "brier",
    ],
    "multi": ["auc", "ece", "brier"],
}


class MissingClassWarning(UserWarning):
    """Some class has an undefined metric (no positives or no negatives) in the evaluated set."""


def metric_names(kind: str) -> list[str]:
    """Scalar metric keys :func:`compute_metrics` returns for ``kind`` (history.csv columns).

    ``n`` (the sample count) is scalar too but is not a metric and is not listed.
    """
    _check_kind(kind)
    return list(_SCALAR_METRICS[kind])


def compute_metrics(
    probs: np.ndarray, targets: np.ndarray, kind: str, class_names: list[str]
) -> dict[str, Any]:
    """All evaluation metrics of one prediction set, as a JSON-serialisable dict.

    ``kind="single"``: ``probs`` is ``N x K`` softmax probabilities, ``targets`` ``N`` class
    indices in ``[0, K)``. ``kind="multi"``: ``probs`` is ``N x K`` sigmoid probabilities,
    ``targets`` ``N x K`` 0/1. ``class_names`` has length ``K`` and keys the per-class dicts.
    See the module docstring for the exact definitions. Raises ``ValueError`` on bad input.
    """
    _check_kind(kind)
    probs, targets, names = _validate(probs, targets, kind, class_names)
    if kind == "single":
        return _single_label(probs, targets, names)
    return _multi_label(probs, targets, names)


# --------------------------------------------------------------------------- internals


def _check_kind(kind: str) -> None:
    if kind not in _KINDS:
        raise ValueError(f"metric kind must be one of {_KINDS}, got {kind!r}")


def _validate(
    probs: Any, targets: Any, kind: str, class_names: list[str]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Check shapes, ranges and names; return float probs and int targets."""
    names = [str(name) for name in class_names]
    if len(set(names)) != len(names):
        raise ValueError(f"class_names must be unique, got {names}")
    probs = np.asarray(probs, dtype=np.float64)
    targets = np.asarray(targets)
    if probs.ndim != 2:
        raise ValueError(f"probs must be 2-D (N x K), got shape {probs.shape}")
    n, k = probs.shape
    if n == 0:
        raise ValueError("cannot compute metrics on an empty set (N = 0)")
    if k != len(names):
        raise ValueError(f"probs has {k} columns but {len(names)} class names were given")
    if not np.all(np.isfinite(probs)):
        raise ValueError("probs contains NaN or infinite values")
    if targets.dtype.kind not in "biuf":
        raise ValueError(f"targets must be numeric, got dtype {targets.dtype}")
    if kind == "single":
        if k < 2:
            raise ValueError(f"single-label metrics need at least 2 classes, got {k}")
        if targets.shape != (n,):
            raise ValueError(
                f"single-label targets must have shape ({n},) to match probs {probs.shape}, "
                f"got {targets.shape}"
            )
        if not np.all(np.isfinite(targets)) or not np.all(targets == np.round(targets)):
            raise ValueError("single-label targets must be integer class indices")
        if targets.min() < 0 or targets.max() >= k:
            raise ValueError(
                f"single-label targets must lie in [0, {k}), "
                f"got values in [{targets.min()}, {targets.max()}]"
            )
    else:
        if targets.shape != probs.shape:
            raise ValueError(
                f"multi-label targets must have the shape of probs {probs.shape}, "
                f"got {targets.shape}"
            )
        if not np.all(np.isin(targets, (0, 1))):
            raise ValueError("multi-label targets must be 0/1")
    return probs, targets.astype(np.int64), names


def _per_class_auc(onehot: np.ndarray, probs: np.ndarray, names: list[str]) -> dict[str, Any]:
    """Binary AUC of each column; None where the column lacks positives or negatives."""
    positives = onehot.sum(axis=0)
    defined = [j for j in range(len(names)) if 0 < positives[j] < len(onehot)]
    missing = [name for j, name in enumerate(names) if j not in defined]
    per_class: dict[str, float | None] = dict.fromkeys(names)
    if len(defined) == 1:
        j = defined[0]
        per_class[names[j]] = float(roc_auc_score(onehot[:, j], probs[:, j]))
    elif defined:  # one call: sklearn scores each column alike, validating the input once
        scores = roc_auc_score(onehot[:, defined], probs[:, defined], average=None)
        for j, score in zip(defined, scores, strict=True):
            per_class[names[j]] = float(score)
    if missing:
        warnings.warn(
            f"AUC undefined (no positive or no negative samples) for classes {missing}; "
            "reported as None and left out of the macro mean",
            MissingClassWarning,
            stacklevel=4,
        )
    return {
        "auc": _mean_defined(per_class.values()),
        "auc_per_class": per_class,
        "missing_classes": missing,
    }


def _mean_defined(values: Any) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def _single_label(probs: np.ndarray, targets: np.ndarray, names: list[str]) -> dict[str, Any]:
    n, k = probs.shape
    onehot = np.eye(k, dtype=np.int64)[targets]
    auc = _per_class_auc(onehot, probs, names)
    preds = probs.argmax(axis=1)

    cm = confusion_matrix(targets, preds, labels=list(range(k)))
    tp = np.diag(cm)
    actual = cm.sum(axis=1)  # TP + FN: samples of the class
    predicted = cm.sum(axis=0)  # TP + FP
    negatives = n - actual  # TN + FP
    tn = n - actual - predicted + tp
    sensitivity = {
        name: (float(tp[j] / actual[j]) if actual[j] > 0 else None) for j, name in enumerate(names)
    }
    specificity = {
        name: (float(tn[j] / negatives[j]) if negatives[j] > 0 else None)
        for j, name in enumerate(names)
    }
    sensitivity_macro = _mean_defined(sensitivity.values())

    return {
        "auc": auc["auc"],
        "auc_per_class": auc["auc_per_class"],
        "accuracy": float(accuracy_score(targets, preds)),
        # Mean recall over classes present in targets == sklearn's balanced_accuracy_score.
        "balanced_accuracy": sensitivity_macro,
        "f1_macro": float(f1_score(targets, preds, average="macro", zero_division=0)),
        "sensitivity_macro": sensitivity_macro,
        "specificity_macro": _mean_defined(specificity.values()),
        "sensitivity_per_class": sensitivity,
        "specificity_per_class": specificity,
        **single_label_calibration(probs, targets),
        "n": int(n),
        "missing_classes": auc["missing_classes"],
    }


def _multi_label(probs: np.ndarray, targets: np.ndarray, names: list[str]) -> dict[str, Any]:
    auc = _per_class_auc(targets, probs, names)
    return {
        "auc": auc["auc"],
        "auc_per_class": auc["auc_per_class"],
        **multi_label_calibration(probs, targets, names),
        "n": int(len(probs)),
        "missing_classes": auc["missing_classes"],
    }
