"""What every tracker shares: the :class:`Tracker` protocol and its registration
(:func:`register_tracker`), the run it logs (:class:`RunInfo`), the best-effort fan-out to
the open trackers (:class:`Trackers`) and value helpers."""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from ssl_bench.plugins.registry import tracker_registry

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



class Tracker(Protocol):
    """What a tracker receives while a run trains (values: plain floats)."""

    def log_step(self, step: int, values: dict[str, float]) -> None: ...

    def log_evaluation(self, step: int, values: dict[str, float]) -> None: ...

    def finish(self, step: int, hparams: dict[str, Any], final: dict[str, float]) -> None: ...

    def close(self, status: str) -> None: ...



def register_tracker(name: str) -> Callable[[type], type]:
    """Class decorator: make a tracker available as ``--log name``.

    The class is built from a :class:`RunInfo` and implements :class:`Tracker`. It may
    declare ``requires`` (the package it imports, checked before a run starts) with
    ``install`` (the command that installs it), and a static ``check_store(experiment)``
    that raises a one-line :class:`~ssl_bench.core.errors.UserError` when its store cannot
    be used (called before the run prepares anything).
    """
    return tracker_registry.register(name)


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

