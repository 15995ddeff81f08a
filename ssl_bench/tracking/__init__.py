"""Experiment tracking: a run's curves and results in TensorBoard and/or MLflow.

The run directory stays the record (``history.csv``, ``metrics.json``); trackers copy it
to the tools researchers already have open, as it is written: every evaluation's row of
``history.csv`` (loss terms, method logs such as mask ratios, lr, lambda(t), every
validation/test metric of student and teacher) at its step, the interval loss means a
progress display shows between evaluations (``train/...``), and at the end the resolved
configuration as hyper-parameters with the final metrics (``final/...``).

``--log tensorboard,mlflow`` picks them (config field ``log``); their packages are
optional extras, checked before a run starts. Only the first rank of a torchrun run logs.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from ..errors import UserError

#: Tracker name -> (module in this package, class, the package it needs, the extra that
#: installs it).
TRACKERS: dict[str, tuple[str, str, str, str]] = {
    "tensorboard": ("tensorboard_tracker", "TensorBoardTracker", "tensorboard", "tensorboard"),
    "mlflow": ("mlflow_tracker", "MlflowTracker", "mlflow", "mlflow"),
}
#: The experiment a run outside a sweep is logged under (a sweep uses its own name).
DEFAULT_EXPERIMENT = "ssl-bench"


def parse_log(value: str) -> tuple[str, ...]:
    """``"tensorboard,mlflow"`` -> the tracker names, each known (a clear error if not)."""
    names = tuple(dict.fromkeys(n.strip() for n in value.split(",") if n.strip()))
    unknown = [n for n in names if n not in TRACKERS]
    if unknown:
        raise UserError(f"log (--log) knows {', '.join(TRACKERS)}; got {', '.join(unknown)}")
    return names


def check_available(value: str) -> None:
    """Fail before anything runs when a requested tracker's package is not installed."""
    for name in parse_log(value):
        package, extra = TRACKERS[name][2:]
        if importlib.util.find_spec(package) is None:
            raise UserError(f"--log {name} needs the {package} package: "
                            f"pip install 'ssl-bench[{extra}]'")


def prepare_experiment(value: str, experiment: str) -> None:
    """Before a sweep starts its runs: check the trackers' packages and create the
    experiment once (parallel workers would otherwise race to create it, and MLflow's
    local database with it)."""
    check_available(value)
    if "mlflow" in parse_log(value):
        from mlflow.tracking import MlflowClient

        from .mlflow_tracker import experiment_id

        experiment_id(MlflowClient(), experiment or DEFAULT_EXPERIMENT)


class Tracker(Protocol):
    """What a tracker receives while a run trains (values: plain floats)."""

    def log_step(self, step: int, values: dict[str, float]) -> None: ...

    def log_evaluation(self, step: int, values: dict[str, float]) -> None: ...

    def finish(self, step: int, hparams: dict[str, Any], final: dict[str, float]) -> None: ...

    def close(self, status: str) -> None: ...


class RunInfo:
    """What every tracker knows about the run: names, tags, folder and resume point."""

    def __init__(self, config: dict[str, Any], run_dir: Path, start_step: int,
                 resumed: bool) -> None:
        self.config, self.run_dir = config, Path(run_dir)
        self.start_step, self.resumed = start_step, resumed
        self.experiment = config.get("experiment") or DEFAULT_EXPERIMENT
        self.name = f"{config['method']}/labeled={config['labeled']}/seed={config['seed']}"
        self.tags = {"method": str(config["method"]), "dataset": str(config["dataset"]),
                     "labeled": str(config["labeled"]), "seed": str(config["seed"]),
                     "backbone": str(config["backbone"]),
                     "image_size": str(config["image_size"]), "run_dir": str(self.run_dir)}


class Trackers:
    """The trackers of one run (none: every call does nothing), closed as the run ends."""

    def __init__(self, trackers: Iterable[Tracker] = ()) -> None:
        self.trackers = list(trackers)

    def __bool__(self) -> bool:
        return bool(self.trackers)

    def log_step(self, step: int, losses: dict[str, float]) -> None:
        if self.trackers:
            values = numbers({f"train/{k}": v for k, v in losses.items()})
            for tracker in self.trackers:
                tracker.log_step(step, values)

    def log_evaluation(self, step: int, row: dict[str, Any]) -> None:
        """One row of ``history.csv`` (all but the step itself)."""
        if self.trackers:
            values = numbers({k: v for k, v in row.items() if k != "step"})
            for tracker in self.trackers:
                tracker.log_evaluation(step, values)

    def finish(self, step: int, config: dict[str, Any], metrics: dict[str, Any]) -> None:
        """The resolved configuration as hyper-parameters, the final metrics beside it
        (at the run's last step)."""
        if self.trackers:
            hparams = flatten(config)
            final = numbers({f"final/{k}": v for k, v in flatten(metrics, "/").items()})
            for tracker in self.trackers:
                tracker.finish(step, hparams, final)

    def close(self, status: str) -> None:
        """``FINISHED``, ``KILLED`` (stopped; it may resume) or ``FAILED``."""
        for tracker in self.trackers:
            tracker.close(status)


def open_trackers(value: str, info: RunInfo) -> Trackers:
    """The trackers ``value`` (``--log``) names, opened for the run ``info`` describes."""
    trackers = []
    for name in parse_log(value):
        module, cls = TRACKERS[name][:2]
        trackers.append(getattr(importlib.import_module(f"{__name__}.{module}"), cls)(info))
    return Trackers(trackers)


def flatten(record: dict[str, Any], sep: str = ".", prefix: str = "") -> dict[str, Any]:
    """Nested dictionaries as one level: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(flatten(value, sep, name))
        else:
            flat[name] = value
    return flat


def numbers(values: dict[str, Any]) -> dict[str, float]:
    """The finite numbers among ``values`` (booleans and empty cells left out)."""
    return {k: float(v) for k, v in values.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}
