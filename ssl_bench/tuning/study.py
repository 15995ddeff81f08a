"""The studies of one ``ssl-bench tune``: open, recover, run one trial (where trials run,
and in which order, is :mod:`.execution`'s part).

Every method has its own Optuna study in ``tuning/study.db`` (named by the method's
label). The budget is counted per method: trials that finished, were pruned, or diverged
(an outcome of their parameters). A trial left *running* by a killed process is marked
failed (not counted) and its parameters are queued again with its run folder, so the
new trial resumes that run from its checkpoint. The sampler is re-seeded for every
trial from (tuning seed, method, counted trials so far): a killed and resumed study
proposes what an uninterrupted one would.
"""

from __future__ import annotations

import functools
import json
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssl_bench.config.run_config import MACHINE_SETTINGS
from ssl_bench.core.errors import UserError
from ssl_bench.method_kit.search_space import Choice, Float, Param, space_of, space_problems
from ssl_bench.plugins.registry import get_method_class
from ssl_bench.runs.run_dir import CHECKPOINT
from ssl_bench.sweeps.plan import SweepSpec
from ssl_bench.training.divergence import TrainingDiverged
from ssl_bench.tuning import STUDY_DB
from ssl_bench.tuning.settings import TuneSettings
from ssl_bench.tuning.trials import PruningReports, objective, trial_run

#: A failed trial whose failure is an outcome of its parameters (counted in the budget).
DIVERGED = "diverged"
#: Trials the median pruner waits for before it compares.
PRUNER_STARTUP_TRIALS = 2


def startup_trials(trials: int) -> int:
    """Random trials before TPE models the space: half the budget, 2 to 10."""
    return min(10, max(2, trials // 2))


def sampler_seed(seed: int, label: str, index: int) -> int:
    """The sampler's seed for a method's ``index``-th counted trial."""
    return zlib.crc32(f"{seed}/{label}/{index}".encode())


@dataclass
class Tuning:
    """One tuning study: the spec it tunes, its settings and its folder."""

    spec: SweepSpec
    settings: TuneSettings
    folder: Path
    quiet: bool = False

    @property
    def metric(self) -> str:
        return str(self.spec.run.get("selection_metric", "auc"))

    @property
    def storage(self) -> str:
        return f"sqlite:///{(self.folder / STUDY_DB).resolve()}"

    def label(self, method: str) -> str:
        return trial_run(self.spec, self.settings, method, {}, self.folder).label

    def setup(self, method: str) -> dict[str, Any]:
        """What a study was made with; a stored study must match it to be continued."""
        run = {k: v for k, v in {**self.spec.run, **self.settings.run}.items()
               if k not in MACHINE_SETTINGS}
        setup = {"method": method, "space": describe_space(method),
                 "seed": self.settings.seed, "labeled": self.settings.labeled,
                 "pruner": self.settings.pruner, "objective": self.metric, "run": run,
                 "method_options": self.spec.method_options.get(method, {}),
                 "method_run": self.spec.method_run.get(method, {}),
                 "baselines": self.spec.baselines[:1]}
        return json.loads(json.dumps(setup, default=str))


def describe_space(method: str) -> dict[str, str]:
    return {name: param.describe() for name, param in space_of(get_method_class(method)).items()}


def check_spaces(methods: list[str]) -> None:
    """Refuse a method whose ``search_space`` is wrong before any trial runs."""
    for method in methods:
        problems = space_problems(get_method_class(method))
        if problems:
            raise UserError(problems[0])


def open_study(tuning: Tuning, method: str, label: str, index: int) -> Any:
    """The method's study, with a sampler seeded for its ``index``-th counted trial."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    sampler = optuna.samplers.TPESampler(
        seed=sampler_seed(tuning.settings.seed, label, index),
        n_startup_trials=startup_trials(tuning.settings.trials))
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS)
              if tuning.settings.pruner == "median" else optuna.pruners.NopPruner())
    study = optuna.create_study(study_name=label, storage=_storage(tuning.storage),
                                direction="maximize", load_if_exists=True,
                                sampler=sampler, pruner=pruner)
    wanted, stored = tuning.setup(method), study.user_attrs.get("setup")
    if stored is None:
        study.set_user_attr("setup", wanted)
    elif stored != wanted:
        changed = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
        raise UserError(f"{tuning.folder / STUDY_DB}: the {label} study was made with other "
                        f"settings ({', '.join(changed)} changed); tune under another --name "
                        f"or remove {tuning.folder}")
    return study


#: Seconds a process waits for another's write to the SQLite study (--jobs, cluster jobs).
SQLITE_TIMEOUT_S = 60


@functools.lru_cache(maxsize=4)
def _storage(url: str) -> Any:
    """The study store of ``url``, once per process; SQLite waits for a writer of another
    process instead of failing with 'database is locked'."""
    import optuna

    return optuna.storages.RDBStorage(
        url, engine_kwargs={"connect_args": {"timeout": SQLITE_TIMEOUT_S}})


def counted(study: Any) -> list[Any]:
    """The trials that count against the budget."""
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
            or (t.state == TrialState.FAIL and t.user_attrs.get("outcome") == DIVERGED)]


def recover(study: Any) -> int:
    """Mark trials a killed process left running as failed and queue their parameters
    again with their run folder; how many were recovered."""
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        study.tell(trial.number, state=TrialState.FAIL)
        attrs = {"resumes": trial.number}
        if "run" in trial.user_attrs:
            attrs["run"] = trial.user_attrs["run"]
        study.enqueue_trial(dict(trial.params), user_attrs=attrs)
    return len(stale)


def suggest(trial: Any, name: str, param: Param) -> Any:
    if isinstance(param, Float):
        return trial.suggest_float(name, param.low, param.high, log=param.log)
    if isinstance(param, Choice):
        return trial.suggest_categorical(name, list(param.values))
    return trial.suggest_int(name, param.low, param.high, log=param.log)


def run_trial(tuning: Tuning, method: str, label: str, study: Any, index: int,
              echo: Callable[[str], None]) -> None:
    """Ask for one trial, run it, tell the study how it ended."""
    import optuna
    from optuna.trial import TrialState

    from ssl_bench.training.runner import run

    trial = study.ask()
    params = {name: suggest(trial, name, param)
              for name, param in space_of(get_method_class(method)).items()}
    relative = trial.user_attrs.get("run") or f"{label}/trial={trial.number:03d}"
    trial.set_user_attr("run", relative)
    output = tuning.folder / relative
    planned = trial_run(tuning.spec, tuning.settings, method, params, output)
    resumes = trial.user_attrs.get("resumes")
    resumed = "" if resumes is None else f" (resuming trial #{resumes})"
    echo(f"{label}: trial {index + 1}/{tuning.settings.trials} (#{trial.number}){resumed}: "
         + ", ".join(f"{k}={_short(v)}" for k, v in params.items()))
    reports = PruningReports(trial, tuning.metric, planned.config.report_model,
                             tuning.settings.pruner == "median", output)
    try:
        metrics = run(planned.config, output, auto=True, keep_best=False, quiet=tuning.quiet,
                      on_evaluation=reports)
    except optuna.TrialPruned as pruned:
        study.tell(trial, state=TrialState.PRUNED)
        (output / CHECKPOINT).unlink(missing_ok=True)  # never resumed: free the disk
        echo(f"{label}: trial #{trial.number} {pruned}")
        return
    except TrainingDiverged as exc:
        trial.set_user_attr("outcome", DIVERGED)
        study.tell(trial, state=TrialState.FAIL)
        echo(f"{label}: trial #{trial.number} diverged ({exc}); it counts as a trial")
        return
    assert metrics is not None
    value = objective(metrics, tuning.metric, output)
    study.tell(trial, value)
    best = max(t.value for t in counted(study) if t.state == TrialState.COMPLETE)
    echo(f"{label}: trial #{trial.number}: validation {tuning.metric} {value:.4f} "
         f"(best so far {best:.4f})")


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
