"""What a tuning study leaves: ``tuning.json`` (every trial, each method's choice) and,
once every method has its full budget, ``tuned.toml`` (the sweep spec to report with)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ssl_bench.core.atomic import atomic_write_json, atomic_write_text
from ssl_bench.method_kit.search_space import split_params
from ssl_bench.plugins.registry import get_method_class
from ssl_bench.runs.locks import waiting_lock
from ssl_bench.tuning import TUNED_TOML, TUNING_JSON
from ssl_bench.tuning.study import (
    DIVERGED,
    PRUNER_STARTUP_TRIALS,
    Tuning,
    counted,
    describe_space,
    open_study,
    startup_trials,
)
from ssl_bench.tuning.trials import WARMUP_EVALUATIONS


def _trial_record(trial: Any) -> dict[str, Any]:
    state = trial.state.name
    outcome = {"COMPLETE": "finished", "PRUNED": "pruned", "RUNNING": "running",
               "WAITING": "queued"}.get(state)
    if state == "FAIL":
        outcome = DIVERGED if trial.user_attrs.get("outcome") == DIVERGED else "interrupted"
    steps = sorted(trial.intermediate_values)
    return {"number": trial.number, "state": state, "outcome": outcome,
            "value": trial.value if state == "COMPLETE" else None,
            "last_step": steps[-1] if steps else None, "params": dict(trial.params),
            "run": trial.user_attrs.get("run"), "resumes": trial.user_attrs.get("resumes")}


def best_trial(study: Any) -> dict[str, Any] | None:
    """The finished trial with the highest objective (the first of equals), or None."""
    finished = [t for t in counted(study) if t.state.name == "COMPLETE"]
    if not finished:
        return None
    best = max(finished, key=lambda t: (t.value, -t.number))
    return {"number": best.number, "value": best.value, "params": dict(best.params),
            "run": best.user_attrs.get("run")}


def tuning_record(tuning: Tuning, studies: Mapping[str, tuple[str, Any]]) -> dict[str, Any]:
    """The whole study as JSON: settings, objective, every trial and each choice."""
    from ssl_bench.core.provenance import code_digest, git_commit

    settings = tuning.settings
    methods = {}
    for label, (method, study) in studies.items():
        methods[label] = {"method": method, "space": describe_space(method),
                          "counted": len(counted(study)),
                          "trials": [_trial_record(t) for t in study.get_trials(deepcopy=False)],
                          "best": best_trial(study)}
    return {
        "spec": tuning.spec.name,
        "objective": {"metric": tuning.metric, "model": "reported", "part": "val",
                      "direction": "maximize"},
        "tuning_seed": settings.seed, "reported_seeds": tuning.spec.seeds,
        "labeled": settings.labeled, "trials_per_method": settings.trials,
        "trial_run": settings.run, "test_at": "never",
        "sampler": {"name": "TPESampler", "n_startup_trials": startup_trials(settings.trials),
                    "seed": "crc32(tuning seed / method / counted trials so far)"},
        "pruner": ({"name": "MedianPruner", "n_startup_trials": PRUNER_STARTUP_TRIALS,
                    "warmup_evaluations": WARMUP_EVALUATIONS}
                   if settings.pruner == "median" else {"name": "none"}),
        "complete": all(m["counted"] >= settings.trials for m in methods.values()),
        "methods": methods,
        "git": git_commit(), "code": code_digest(),
        "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def write_record(tuning: Tuning, studies: Mapping[str, tuple[str, Any]]) -> dict[str, Any]:
    record = tuning_record(tuning, studies)
    atomic_write_json(tuning.folder / TUNING_JSON, record)
    return record


#: The lock file of the processes that rewrite ``tuning.json`` (workers, cluster jobs).
RECORD_LOCK = "tuning.json.lock"


def write_outputs(tuning: Tuning) -> dict[str, Any]:
    """Rewrite ``tuning.json`` from every method's stored study and, once each method has
    its full budget, ``tuned.toml``; any process of the study may call it (one at a time,
    so a later state is never overwritten by an earlier one)."""
    with waiting_lock(tuning.folder / RECORD_LOCK):
        studies = {}
        for method in tuning.spec.methods:
            label = tuning.label(method)
            studies[label] = (method, open_study(tuning, method, label, 0))
        record = write_record(tuning, studies)
        if record["complete"]:
            write_tuned_spec(tuning, record)
    return record


def tuned_spec(tuning: Tuning, record: Mapping[str, Any]) -> dict[str, Any]:
    """The spec with each method's chosen settings: options into ``[method_options]``,
    engine settings into ``[method_run]`` (recorded as that method's own settings)."""
    spec = tuning.spec
    options = {m: dict(t) for m, t in spec.method_options.items()}
    method_run = {m: dict(t) for m, t in spec.method_run.items()}
    for entry in record["methods"].values():
        if entry["best"] is None:
            continue
        method = entry["method"]
        chosen_options, chosen_engine = split_params(get_method_class(method),
                                                     entry["best"]["params"])
        if chosen_options:
            options.setdefault(method, {}).update(chosen_options)
        if chosen_engine:
            method_run.setdefault(method, {}).update(chosen_engine)
    note = (f"settings chosen by ssl-bench tune: {record['trials_per_method']} trials per "
            f"method on seed {record['tuning_seed']}, labeled {record['labeled']}, "
            f"validation {record['objective']['metric']}")
    values: dict[str, Any] = {
        "name": f"{spec.name}-tuned",
        "description": f"{spec.description} ({note})" if spec.description else note,
        "tuned_by": str(tuning.folder / TUNING_JSON),
        "methods": spec.methods, "labeled": spec.labeled, "seeds": spec.seeds,
        "results": spec.results, "keep_checkpoints": spec.keep_checkpoints,
        "reference": spec.reference, "run": spec.run,
    }
    if spec.baselines:
        values["baselines"] = spec.baselines
    if options:
        values["method_options"] = options
    if method_run:
        values["method_run"] = method_run
    return values


def write_tuned_spec(tuning: Tuning, record: Mapping[str, Any]) -> Path:
    import tomli_w

    values = tuned_spec(tuning, record)
    header = ("# Written by ssl-bench tune from the validation part of the tuning seed only.\n"
              f"#   ssl-bench sweep {tuning.folder / TUNED_TOML}\n")
    return atomic_write_text(tuning.folder / TUNED_TOML, header + tomli_w.dumps(values))
