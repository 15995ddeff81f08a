"""Evaluation and model selection: predict, score, keep the best-validation records.

:class:`Evaluator` scores every model (student, teacher) on the validation and test
parts with the clean (unperturbed) view, keeps for each model the step its selection rule
chooses (:mod:`ssl_bench.training.selection`; by default the highest validation metric, earliest on
ties) with its test metrics and weights, and turns those records into a run's summary.
Test metrics never choose anything. When the test part is scored (``test_at``) changes
its cost, never the numbers a run reports:

* ``"end"`` (the default): once, after training, with each model's best-validation
  weights -- the one test score per model a run reports;
* ``"best"``: whenever a model's validation metric has just improved (test curves at the
  best steps in ``history.csv``);
* ``"every"``: at every evaluation (full test curves);
* ``"never"``: not at all -- a tuning trial (``ssl-bench tune``), whose objective must
  come from validation alone, reports no test metric to choose from.

The test part is twice the validation part on a 70/10/20 split, so ``"end"`` evaluates
about a third of the images ``"every"`` does.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from ssl_bench.config.run_config import RunConfig
from ssl_bench.core import distributed
from ssl_bench.data.perturb import ImagePipeline
from ssl_bench.data.tasks import Task
from ssl_bench.training.divergence import DivergenceMonitor
from ssl_bench.training.metrics import MissingClassWarning, compute_metrics
from ssl_bench.training.prepare import PreparedRun
from ssl_bench.training.selection import selection_rule

Results = dict[str, dict[str, dict[str, Any]]]  # [model][part] -> metrics


class Evaluator:
    """Scores models on val/test and keeps each model's best-validation record."""

    def __init__(self, prepared: PreparedRun, task: Task, pipeline: ImagePipeline,
                 autocast: Callable[[], contextlib.AbstractContextManager],
                 monitor: DivergenceMonitor, message: Callable[[str], None]) -> None:
        self.p = prepared
        self.config: RunConfig = prepared.config
        self.task = task
        self.pipeline = pipeline
        self.autocast = autocast
        self.monitor = monitor
        self.message = message
        self.rule = selection_rule(self.config.selection_rule)  # (ssl_bench.training.selection)
        self.best: dict[str, dict[str, Any]] = {}
        self.best_states: dict[str, dict[str, torch.Tensor]] = {}
        #: Each model's validation metric at every evaluation so far (a rule may smooth).
        self.values: dict[str, list[float | None]] = {}
        #: Each model's test probabilities at its best step (``predictions.csv.gz``).
        self.best_test_probs: dict[str, torch.Tensor] = {}
        self._latest_test: dict[str, torch.Tensor] = {}
        self._warned: set[str] = set()

    @torch.no_grad()
    def predict(self, model: nn.Module, rows: np.ndarray) -> np.ndarray:
        """Probabilities of ``model`` (eval mode, no perturbation) on image ``rows``.

        On several processes each rank predicts a contiguous share of ``rows`` and every
        rank receives all of them, in order: the metrics equal a single process's.
        """
        world = distributed.current()
        if world.distributed:
            share = np.array_split(rows, world.size)[world.rank]
            return distributed.gather_arrays(self._predict(model, share))
        return self._predict(model, rows)

    def _predict(self, model: nn.Module, rows: np.ndarray) -> np.ndarray:
        was_training = model.training
        model.eval()
        out = []
        size = self.config.eval_batch_size
        for start in range(0, len(rows), size):
            chunk = self.p.images.take(rows[start : start + size])
            with self.autocast():
                _, logits = model(self.pipeline.clean(chunk))
            out.append(self.task.probabilities(logits).cpu())
        model.train(was_training)
        if not out:
            return np.zeros((0, self.task.num_classes), dtype=np.float32)
        return torch.cat(out).numpy()

    def evaluate(self, models: dict[str, nn.Module], step: int) -> Results:
        """Metrics of every model on validation and test: ``[model][part] -> metrics``
        (test ``{}`` where ``test_at = "best"`` and the model did not improve)."""
        results: Results = {}
        test_at = self.config.test_at
        for name, model in models.items():
            results[name] = {"val": self._score(model, name, "val", step)}
            if test_at == "every" or (test_at == "best"
                                      and self._improves(name, results[name]["val"])):
                results[name]["test"] = self._score(model, name, "test", step)
            else:
                results[name]["test"] = {}
        return results

    def score_test_at_best(self, models: dict[str, nn.Module]) -> None:
        """``test_at = "end"``: score the test part with each model's best-validation
        weights, which are put back into the model only for this and then restored."""
        if self.config.test_at != "end":
            return
        for name, record in self.best.items():
            model = models[name]
            current = {k: v.detach().clone() for k, v in model.state_dict().items()}
            model.load_state_dict(self.best_states[name])
            try:
                record["test"] = self._score(model, name, "test", record["best_step"])
                self.best_test_probs[name] = self._latest_test[name]
            finally:
                model.load_state_dict(current)

    def _score(self, model: nn.Module, name: str, part: str, step: int) -> dict[str, Any]:
        rows = self.p.parts[part]
        if len(rows) == 0:
            return {}
        probs = self.predict(model, rows)
        self.monitor.check_predictions(step, name, part, probs, self.task.kind)
        if part == "test":
            self._latest_test[name] = torch.from_numpy(np.ascontiguousarray(probs))
        targets = self.p.labels[torch.from_numpy(rows)].numpy()
        with self._collect_missing_class_warnings(part):
            return compute_metrics(probs, targets, self.task.kind, self.p.dataset.class_names)


    def _improves(self, name: str, val: dict[str, Any]) -> bool:
        """Would ``val`` become ``name``'s best record under the rule (``test_at = "best"``
        asks before :meth:`select` records it)?"""
        values = [*self.values.get(name, []), val.get(self.config.selection_metric)]
        return self.rule.improves(self.rule.score(values), self.best.get(name))

    @contextlib.contextmanager
    def _collect_missing_class_warnings(self, part: str) -> Iterator[None]:
        """Say once per run that a part lacks a class (it lacks it at every evaluation)."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", MissingClassWarning)
            yield
        for warning in caught:
            text = f"{part} set: {warning.message}"
            if text not in self._warned:
                self._warned.add(text)
                self.message(f"warning: {text}")

    def select(self, models: dict[str, nn.Module], results: Results, step: int) -> list[str]:
        """Update best-validation records; return the models that improved."""
        improved = []
        for name, parts in results.items():
            self.values.setdefault(name, []).append(
                parts["val"].get(self.config.selection_metric))
            score = self.rule.score(self.values[name])
            if self.rule.improves(score, self.best.get(name)):
                self.best[name] = {"score": score, "best_step": step,
                                   "val": parts["val"], "test": parts["test"]}
                self.best_states[name] = {k: v.detach().cpu().clone()
                                          for k, v in models[name].state_dict().items()}
                if parts["test"]:
                    self.best_test_probs[name] = self._latest_test[name]
                else:  # (scored at the end, or never)
                    self.best_test_probs.pop(name, None)
                improved.append(name)
        return improved

    def describe(self, results: Results, improved: list[str]) -> str:
        """One progress line: each model's validation metric, ``*`` where it improved."""
        metric = self.config.selection_metric
        parts = []
        for name, res in results.items():
            value = res["val"].get(metric)
            shown = "n/a" if value is None else f"{value:.4f}"
            parts.append(f"{name} val_{metric}={shown}{'*' if name in improved else ''}")
        return "  ".join(parts)

    def summary(self) -> dict[str, Any]:
        """Test metrics at each model's best-validation step, the overall pick, the report.

        ``best`` is whichever of student and teacher has the higher validation metric (a
        pick only teacher methods get; the rule's ``model_rule`` on ties); ``reported`` is the
        model ``report_model`` names (``best``, ``student``, or ``teacher`` -- the student
        for methods without one).
        """
        metric = self.config.selection_metric
        out: dict[str, Any] = {
            "selection": {"split": "val", "metric": metric,
                          "rule": self.rule.describe(metric),
                          "model_rule": self.rule.model_rule},
        }
        if self.config.selection_rule != "highest":  # (the default's records stay as they were)
            out["selection"]["name"] = self.config.selection_rule
        for name, record in self.best.items():
            out[name] = {k: v for k, v in record.items() if k != "score"}
        pick = self.rule.pick(self.best)
        out["best"] = {"model": pick, **out[pick]}
        report = self.config.report_model
        chosen = report if report in self.best else "student"
        reported = out["best"] if report == "best" else {"model": chosen, **out[chosen]}
        out["reported"] = {"rule": report, **reported}
        return out

    def best_weights(self) -> dict[str, Any]:
        """What ``best.pt`` holds: each model's weights at its best-validation step."""
        return {"backbone": self.config.backbone,
                "steps": {k: v["best_step"] for k, v in self.best.items()},
                **self.best_states}

    def test_predictions(self) -> tuple[dict[str, Any], dict[str, int]]:
        """Each model's test probabilities at its best step and that step (models whose
        test part was never scored are left out)."""
        probs = {name: tensor.numpy() for name, tensor in self.best_test_probs.items()
                 if name in self.best}
        return probs, {name: int(self.best[name]["best_step"]) for name in probs}

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_states": self.best_states, "values": self.values,
                "best_test_probs": self.best_test_probs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]
        self.best_states = state["best_states"]
        self.values = state.get("values", {})  # (older checkpoints: the default rule
        # reads only the current value)
        self.best_test_probs = state.get("best_test_probs", {})  # (older: none saved)
