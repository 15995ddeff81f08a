"""One tuning trial: its run configuration, its objective and its pruning reports.

A trial is the sweep's run of one method with the trial's parameters -- method options
into ``method_options``, engine settings into ``method_run`` (its ``own_settings``) --
on the tuning seed and labeled amount, with ``test_at = "never"``: the test part is never
scored, so no test number can reach the objective, which is the reported model's
validation metric (``metrics["reported"]["val"][selection_metric]``).
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ssl_bench.core.errors import UserError
from ssl_bench.method_kit.search_space import split_params
from ssl_bench.plugins.registry import get_method_class
from ssl_bench.runs.run_dir import HISTORY
from ssl_bench.sweeps.plan import PlannedRun, SweepSpec, plan
from ssl_bench.tuning.settings import TuneSettings

#: Evaluations a trial always gets before the pruner may stop it.
WARMUP_EVALUATIONS = 3


def trial_run(spec: SweepSpec, settings: TuneSettings, method: str,
              params: Mapping[str, Any], output: Path) -> PlannedRun:
    """The planned run of one trial of ``method`` with ``params``, in ``output``."""
    options, engine = split_params(get_method_class(method), params)
    run = {**spec.run, **settings.run, "test_at": "never"}
    one = dataclasses.replace(
        spec, methods=[method], labeled=[settings.labeled], seeds=[settings.seed], run=run,
        method_options={method: {**spec.method_options.get(method, {}), **options}},
        method_run={method: {**spec.method_run.get(method, {}), **engine}},
        baselines=spec.baselines[:1])
    planned = plan(one)[0]
    return dataclasses.replace(planned, output=output)


def objective(metrics: Mapping[str, Any], metric: str, where: Path) -> float:
    """The reported model's validation ``metric``: what a study maximises."""
    value = metrics["reported"]["val"].get(metric)
    if value is None or not math.isfinite(value):
        raise UserError(f"{where}: the reported model has no validation {metric} to tune on "
                        "(a class missing from the validation part?); choose another "
                        "selection_metric")
    return float(value)


def watched_value(row: Mapping[str, Any], metric: str, report_model: str) -> float | None:
    """The validation ``metric`` of the model a run reports, in one history row
    (``best``: the better of student and teacher at that evaluation)."""
    values = {}
    for model in ("student", "teacher"):
        raw = row.get(f"val_{model}_{metric}")
        if raw not in (None, ""):
            value = float(raw)
            if math.isfinite(value):
                values[model] = value
    if not values:
        return None
    if report_model in values:
        return values[report_model]
    if report_model == "best":
        return max(values.values())
    return values.get("student")


class PruningReports:
    """Reports each evaluation to the trial and asks the pruner (``on_evaluation``).

    A resumed trial first replays the evaluations its run folder already holds, so its
    intermediate values are those of a trial that was never interrupted.
    """

    def __init__(self, trial: Any, metric: str, report_model: str, prune: bool,
                 run_folder: Path) -> None:
        self.trial = trial
        self.metric = metric
        self.report_model = report_model
        self.prune = prune
        self.reported: set[int] = set()
        self.evaluations = 0
        self.past = _history_rows(run_folder / HISTORY)

    def __call__(self, step: int, row: Mapping[str, Any]) -> None:
        import optuna

        for past in self.past:
            if int(past["step"]) < step:
                self._report(int(past["step"]), past)
        self.past = []
        self._report(step, row)
        if self.prune and self.evaluations > WARMUP_EVALUATIONS and self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step}")

    def _report(self, step: int, row: Mapping[str, Any]) -> None:
        self.evaluations += 1
        value = watched_value(row, self.metric, self.report_model)
        if value is not None and step not in self.reported:
            self.trial.report(value, step)
            self.reported.add(step)


def _history_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return [row for row in csv.DictReader(handle) if row.get("step")]
    except (OSError, csv.Error, UnicodeDecodeError):
        return []  # unreadable: the run itself refuses to resume from it, loudly
