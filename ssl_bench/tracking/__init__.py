"""Experiment tracking: a run's curves and results in TensorBoard and/or MLflow.

The run directory stays the record (``history.csv``, ``metrics.json``); trackers copy it
to the tools researchers already have open, as it is written: every evaluation's row of
``history.csv`` (loss terms, method logs such as mask ratios, lr, lambda(t), every
validation/test metric of student and teacher) at its step, the interval loss means a
progress display shows between evaluations (``train/...``), and at the end the resolved
configuration as hyper-parameters with the final metrics (``final/...``).

``--log tensorboard,mlflow`` picks them (config field ``log``); their packages are
optional extras, checked before a run starts. Only the first rank of a torchrun run logs.

Tracking never costs a run: its store is checked, with short timeouts, before the run
prepares anything (an unusable one is a one-line error); after that every tracker call
is best-effort. The first one that fails warns once (one line) and turns that tracker off
for the rest of the run, which trains on and writes its own records as usual.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import re
import warnings
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
#: The most characters of an error a one-line message quotes.
MAX_ERROR_TEXT = 300


class TrackingWarning(UserWarning):
    """A tracker failed mid-run and was turned off, or continues on a new tracked run;
    the run itself trains on."""


def first_line(exc: BaseException) -> str:
    """An error as one short line: its message's first line (else its type's name); a
    failed HTTP request as its cause alone (``Connection refused``, ``timed out``), not
    the pages of connection-pool text around it."""
    text = str(exc).strip()
    line = text.splitlines()[0].strip() if text else type(exc).__name__
    if "Max retries exceeded" in line or "HTTPConnectionPool" in line:
        cause = re.search(r"\[Errno -?\d+\] ([^'\")]+)", line)
        url = re.search(r"API request to (\S+)", line)
        why = (cause.group(1).strip() if cause else "timed out" if "timed out" in line
               else "no connection" if "NewConnectionError" in line else None)
        if why:
            return f"{why} ({url.group(1)})" if url else why
    return line if len(line) <= MAX_ERROR_TEXT else line[:MAX_ERROR_TEXT - 1] + "…"


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


def check_stores(value: str, experiment: str = "") -> None:
    """Before a run prepares anything: the requested trackers' stores answer and take
    writes (MLflow: the experiment exists afterwards), within seconds; else a one-line
    :class:`UserError` naming the store. (TensorBoard writes in the run folder: nothing
    to check.)"""
    if "mlflow" in parse_log(value):
        from .mlflow_tracker import check_store

        check_store(experiment or DEFAULT_EXPERIMENT)


def prepare_experiment(value: str, experiment: str) -> None:
    """Before a sweep starts its runs: check the trackers' packages and stores and create
    the experiment once (parallel workers would otherwise race to create it, and MLflow's
    local database with it)."""
    check_available(value)
    check_stores(value, experiment)


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
    """The trackers of one run (none: every call does nothing), closed as the run ends.

    Every call is best-effort: a tracker whose call fails (a server gone, a full disk) is
    named in one :class:`TrackingWarning` and left out from then on, so an outage never
    stops or slows the training it watches, nor touches the run's own records.
    """

    def __init__(self, trackers: Iterable[Tracker] = ()) -> None:
        self.trackers = list(trackers)
        #: The names of the trackers turned off by a failure during this run.
        self.failed: list[str] = []

    def __bool__(self) -> bool:
        return bool(self.trackers)

    def log_step(self, step: int, losses: dict[str, float]) -> None:
        if self.trackers:
            self._each("log_step", step, numbers({f"train/{k}": v for k, v in losses.items()}))

    def log_evaluation(self, step: int, row: dict[str, Any]) -> None:
        """One row of ``history.csv`` (all but the step itself)."""
        if self.trackers:
            self._each("log_evaluation", step, numbers({k: v for k, v in row.items()
                                                        if k != "step"}))

    def finish(self, step: int, config: dict[str, Any], metrics: dict[str, Any]) -> None:
        """The resolved configuration as hyper-parameters, the final metrics beside it
        (at the run's last step)."""
        if self.trackers:
            final = numbers({f"final/{k}": v for k, v in flatten(metrics, "/").items()})
            self._each("finish", step, flatten(config), final)

    def close(self, status: str) -> None:
        """``FINISHED``, ``KILLED`` (stopped; it may resume) or ``FAILED``."""
        self._each("close", status)

    def _each(self, call: str, *args: Any) -> None:
        """``call`` on every tracker still on; one that fails is turned off, with a warning."""
        for tracker in list(self.trackers):
            try:
                getattr(tracker, call)(*args)
            except Exception as exc:  # noqa: BLE001 (tracking is best-effort; see the class)
                self._turn_off(tracker, exc)

    def _turn_off(self, tracker: Tracker, exc: Exception) -> None:
        """Leave ``tracker`` out for the rest of the run and say so once."""
        self.trackers.remove(tracker)
        name = tracker_name(tracker)
        self.failed.append(name)
        warnings.warn(f"--log {name}: {first_line(exc)}; {name} tracking is off for the rest "
                      "of this run (training goes on; its own records are written as usual)",
                      TrackingWarning, stacklevel=4)


def tracker_name(tracker: Any) -> str:
    """The ``--log`` name of a tracker (its class name for one from elsewhere)."""
    return str(getattr(tracker, "name", type(tracker).__name__))


def open_trackers(value: str, info: RunInfo) -> Trackers:
    """The trackers ``value`` (``--log``) names, opened for the run ``info`` describes (one
    that cannot open is a one-line :class:`UserError`; those opened before it are closed)."""
    trackers: list[Tracker] = []
    for name in parse_log(value):
        module, cls = TRACKERS[name][:2]
        try:
            trackers.append(getattr(importlib.import_module(f"{__name__}.{module}"), cls)(info))
        except (UserError, OSError) as exc:
            Trackers(trackers).close("FAILED")
            if isinstance(exc, UserError):
                raise
            raise UserError(f"--log {name}: cannot start: {first_line(exc)}") from None
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
