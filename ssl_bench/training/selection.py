"""Which checkpoint a run keeps and reports: one named, swappable selection rule.

A rule answers three questions from validation alone (test never chooses anything):

* ``score``: a model's selection score at this evaluation, from its validation metric so
  far (the rule may smooth over earlier evaluations);
* ``improves``: whether that score replaces the model's best record (and its weights);
* ``pick``: which of the models (student, teacher) is ``best``, the pick
  ``report_model = "best"`` reports.

``selection_rule`` (``--selection-rule``) names it; the default, ``highest``, is the rule
every run used before rules could be swapped, so its numbers do not change. Rules are
registered as methods are (:func:`register_selection_rule`, or the entry-point group
``ssl_bench.selection_rules``) and listed by ``ssl-bench list``. A rule is part of what a
comparison compares: runs under different rules are never averaged together.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from ssl_bench.plugins.registry import selection_registry

#: Evaluations the ``highest-mean-3`` rule averages (the current one and the two before).
WINDOW = 3


class SelectionRule:
    """The ``highest`` rule: the highest validation metric, the earliest step on ties;
    between models, the higher best score, then the earlier step, then the student."""

    summary = "highest validation metric; earliest step on ties (the default)"
    #: How ``pick`` chooses between student and teacher, as ``metrics.json`` records it.
    model_rule = ("higher validation metric; on a tie the model that reached it at the "
                  "earlier step; at the same step the student")

    def score(self, values: Sequence[float | None]) -> float:
        """The selection score after the evaluations ``values`` (this one last; None: the
        metric was undefined there)."""
        value = values[-1]
        return -math.inf if value is None else float(value)

    def improves(self, score: float, best: dict[str, Any] | None) -> bool:
        """Whether ``score`` replaces the best record ``best`` (None: there is none)."""
        return best is None or score > best["score"]

    def pick(self, best: dict[str, dict[str, Any]]) -> str:
        """The model ``report_model = "best"`` reports, among the best records."""
        return min(best, key=lambda n: (-best[n]["score"], best[n]["best_step"],
                                        n != "student"))

    def describe(self, metric: str) -> str:
        """The rule as ``metrics.json``'s ``selection.rule`` says it (beside
        ``selection.metric``; the default's words are those of every earlier record)."""
        return "highest validation metric; earliest step on ties"


class LatestOnTies(SelectionRule):
    """``highest-latest``: as ``highest``, but a tie moves the checkpoint to the later
    step (the more trained of two equally good models)."""

    summary = "highest validation metric; latest step on ties"

    def improves(self, score: float, best: dict[str, Any] | None) -> bool:
        return best is None or score >= best["score"]

    def describe(self, metric: str) -> str:
        return "highest validation metric; latest step on ties"


class TrailingMean(SelectionRule):
    """``highest-mean-3``: the highest mean of the validation metric over the last
    :data:`WINDOW` evaluations (fewer at the start), the weights of the last of them;
    earliest on ties. On a small validation part one lucky evaluation decides the
    ``highest`` rule; a trailing mean asks the model to stay good."""

    summary = f"highest mean validation metric over the last {WINDOW} evaluations"

    def score(self, values: Sequence[float | None]) -> float:
        window = [v for v in values[-WINDOW:] if v is not None]
        return sum(window) / len(window) if window else -math.inf

    def describe(self, metric: str) -> str:
        return (f"highest mean validation metric over the last {WINDOW} evaluations; "
                "earliest step on ties")


def register_selection_rule(name: str) -> Callable[[type], type]:
    """Class decorator: make a :class:`SelectionRule` subclass available by name."""
    return selection_registry.register(name)


register_selection_rule("highest")(SelectionRule)
register_selection_rule("highest-latest")(LatestOnTies)
register_selection_rule("highest-mean-3")(TrailingMean)


def selection_rule(name: str) -> SelectionRule:
    """The rule ``name`` (an unknown one is a one-line error listing the known ones)."""
    return selection_registry.get(name)()
