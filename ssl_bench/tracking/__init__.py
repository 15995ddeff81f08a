"""Experiment tracking: a run's curves and results in TensorBoard and/or MLflow.

The run directory stays the record (``history.csv``, ``metrics.json``); trackers copy it
to the tools researchers already have open, as it is written: every evaluation's row of
``history.csv`` (loss terms, method logs such as mask ratios, lr, lambda(t), every
validation/test metric of student and teacher) at its step, the interval loss means a
progress display shows between evaluations (``train/...``), and at the end the resolved
configuration as hyper-parameters with the final metrics (``final/...``).

``--log tensorboard,mlflow`` picks them (config field ``log``); their packages are
optional extras, checked before a run starts. Trackers are a registry like methods
(:func:`~ssl_bench.tracking.base.register_tracker`, entry-point group
``ssl_bench.trackers``; ``ssl-bench list --trackers``): one module per tracker here.
Only the first rank of a torchrun run logs.

Tracking never costs a run: its store is checked, with short timeouts, before the run
prepares anything (an unusable one is a one-line error); after that every tracker call
is best-effort. The first one that fails warns once (one line) and turns that tracker off
for the rest of the run, which trains on and writes its own records as usual.
"""

from __future__ import annotations

import importlib.util

from ssl_bench.core.errors import UserError
from ssl_bench.plugins.registry import tracker_registry
from ssl_bench.tracking.base import (
    DEFAULT_EXPERIMENT,
    RunInfo,
    Tracker,
    Trackers,
    TrackingWarning,
    first_line,
    flatten,
    numbers,
    register_tracker,
    tracker_name,
)


def parse_log(value: str) -> tuple[str, ...]:
    """``"tensorboard,mlflow"`` -> the tracker names, each known (a clear error if not)."""
    names = tuple(dict.fromkeys(n.strip() for n in value.split(",") if n.strip()))
    known = tracker_registry.names()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UserError(f"log (--log) knows {', '.join(known)}; got {', '.join(unknown)}")
    return names


def check_available(value: str) -> None:
    """Fail before anything runs when a requested tracker's package is not installed."""
    for name in parse_log(value):
        tracker = tracker_registry.get(name)
        package = getattr(tracker, "requires", None)
        if package and importlib.util.find_spec(package) is None:
            install = getattr(tracker, "install", f"pip install {package}")
            raise UserError(f"--log {name} needs the {package} package: {install}")


def check_stores(value: str, experiment: str = "") -> None:
    """Before a run prepares anything: the requested trackers' stores answer and take
    writes (MLflow: the experiment exists afterwards), within seconds; else a one-line
    :class:`UserError` naming the store. (TensorBoard writes in the run folder: nothing
    to check.)"""
    for name in parse_log(value):
        check = getattr(tracker_registry.get(name), "check_store", None)
        if check is not None:
            check(experiment or DEFAULT_EXPERIMENT)


def prepare_experiment(value: str, experiment: str) -> None:
    """Before a sweep starts its runs: check the trackers' packages and stores and create
    the experiment once (parallel workers would otherwise race to create it, and MLflow's
    local database with it)."""
    check_available(value)
    check_stores(value, experiment)



def open_trackers(value: str, info: RunInfo) -> Trackers:
    """The trackers ``value`` (``--log``) names, opened for the run ``info`` describes (one
    that cannot open is a one-line :class:`UserError`; those opened before it are closed)."""
    trackers: list[Tracker] = []
    for name in parse_log(value):
        try:
            trackers.append(tracker_registry.get(name)(info))
        except (UserError, OSError) as exc:
            Trackers(trackers).close("FAILED")
            if isinstance(exc, UserError):
                raise
            raise UserError(f"--log {name}: cannot start: {first_line(exc)}") from None
    return Trackers(trackers)


__all__ = ["DEFAULT_EXPERIMENT", "RunInfo", "Tracker", "Trackers", "TrackingWarning",
           "check_available", "check_stores", "first_line", "flatten", "numbers",
           "open_trackers", "parse_log", "prepare_experiment", "register_tracker", "tracker_name"]
