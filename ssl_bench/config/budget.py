"""The training budget: its length, the labeled exposure it gives, when it may stop early,
and when a run has not converged within it.

Labeled exposure is the number of labeled images a run's loss sees: labeled images per
step x steps. At equal steps a fully labeled supervised batch (48 of 48) sees four times
the labeled images of an SSL batch (12 of 48), so ssl-bench names the two supervised
baselines (:func:`method_label`) and offers a budget in *labeled epochs*, which gives
every method the same exposure whatever its batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ssl_bench.config.run_config import RunConfig

#: A run whose reported model peaks in the last ``1 - LATE_FRACTION`` of its budget was
#: still improving: its cell is flagged *not converged* (benchmarks/convergence.py's rule).
LATE_FRACTION = 0.9
#: The name suffix of the supervised baseline on fully labeled batches.
LABELED_BATCH_SUFFIX = "-labeled-batch"


def batch_split(config: RunConfig, uses_unlabeled: bool, num_unlabeled: int) -> tuple[int, int]:
    """(labeled, unlabeled) images per step.

    SSL methods take ``labeled_batch_size`` labeled images of a ``batch_size`` batch.
    Labeled-only methods take the same two-stream batch and use only its labeled images
    (``supervised_batch = "two-stream"``, the official SRC-MT baseline and the default),
    or ``batch_size`` labeled images (``"labeled"``); without unlabeled images there is
    no second stream.
    """
    two_stream = uses_unlabeled or config.supervised_batch == "two-stream"
    if two_stream and num_unlabeled > 0:
        return config.labeled_batch_size, config.batch_size - config.labeled_batch_size
    return config.batch_size, 0


def total_steps(config: RunConfig, steps_per_epoch: int, num_labeled: int,
                labeled_per_step: int) -> int:
    """Optimisation steps of the configured budget (the maximum when ``patience`` is set).

    ``labeled_epochs`` E gives ``ceil(E * num_labeled / labeled_per_step)`` steps: the
    same labeled exposure for every method.
    """
    if config.iterations is not None:
        return config.iterations
    if config.labeled_epochs is not None:
        return max(1, math.ceil(config.labeled_epochs * num_labeled / labeled_per_step))
    return max(1, math.ceil(config.epochs * steps_per_epoch))


def exposure(labeled_per_step: int, steps: int, num_labeled: int) -> dict[str, Any]:
    """What a run's labeled loss saw: images per step, images in all, labeled epochs."""
    seen = labeled_per_step * steps
    return {"labeled_per_step": labeled_per_step, "labeled_images_seen": seen,
            "labeled_epochs_seen": round(seen / num_labeled, 4) if num_labeled else None}


def method_label(method: str, uses_unlabeled: bool, supervised_batch: str) -> str:
    """The name a run goes by in a comparison: the method's, and for a labeled-only
    method on fully labeled batches ``<method>-labeled-batch`` -- the baseline that sees
    ``batch_size / labeled_batch_size`` times the labeled images per step, kept apart
    from the same-stream baseline (plain ``<method>``)."""
    if not uses_unlabeled and supervised_batch == "labeled":
        return method + LABELED_BATCH_SUFFIX
    return method


def watched_step(best_steps: dict[str, int], report_model: str) -> int:
    """The last step at which the reported model improved (its best-validation step).

    ``best`` may report either model, so it waits for both: the later best step counts.
    """
    if report_model in best_steps:
        return best_steps[report_model]
    if report_model == "best":
        return max(best_steps.values())
    return best_steps["student"]  # "teacher" for a method without one reports the student


def evaluations_since(evaluated_steps: Sequence[int], step: int) -> int:
    """How many evaluations came after ``step`` (the patience used up)."""
    return sum(1 for at in evaluated_steps if at > step)


def should_stop(patience: int, evaluated_steps: Sequence[int], best_steps: dict[str, int],
                report_model: str) -> bool:
    """Early stopping: ``patience`` evaluations in a row without a new best validation
    metric of the reported model (0: never). Read from the history and the best records
    alone, so a resumed run continues the same patience."""
    if patience <= 0 or not best_steps:
        return False
    since = evaluations_since(evaluated_steps, watched_step(best_steps, report_model))
    return since >= patience


def peaked_late(best_step: int | None, max_steps: int | None) -> bool | None:
    """Whether a run's best step lies in the last 10% of its budget (None: unknown)."""
    if best_step is None or not max_steps:
        return None
    return best_step > LATE_FRACTION * max_steps
