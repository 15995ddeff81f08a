"""What ``ssl-bench tune`` may choose: one engine space shared by every method and each
method's own ``search_space`` (``Method.search_space``), declared without Optuna.

Every method is tuned over :data:`ENGINE_SPACE` (learning rate and weight decay, the
settings every method has) plus its own parameters: method options by name, or engine
settings its loss weights (``consistency_weight`` for Pi, MT and SRC-MT, which have no
option of their own). The spaces are the ranges USB and the methods' papers search or
report, widened to bracket the CIFAR-tuned defaults; each method's docstring names its
own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Float:
    """A real parameter in ``[low, high]``, sampled on a log scale when ``log``."""

    low: float
    high: float
    log: bool = False

    def problem(self) -> str | None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            return f"needs low < high, got [{self.low}, {self.high}]"
        if self.log and self.low <= 0:
            return f"a log scale needs low > 0, got {self.low}"
        return None

    def describe(self) -> str:
        return f"[{self.low:g}, {self.high:g}]" + (" log" if self.log else "")


@dataclass(frozen=True)
class Int:
    """An integer parameter in ``[low, high]``."""

    low: int
    high: int
    log: bool = False

    def problem(self) -> str | None:
        if self.low >= self.high:
            return f"needs low < high, got [{self.low}, {self.high}]"
        if self.log and self.low <= 0:
            return f"a log scale needs low > 0, got {self.low}"
        return None

    def describe(self) -> str:
        return f"{{{self.low}..{self.high}}}" + (" log" if self.log else "")


@dataclass(frozen=True)
class Choice:
    """One of ``values``."""

    values: tuple[Any, ...]

    def problem(self) -> str | None:
        return None if len(self.values) >= 2 else "needs at least two values"

    def describe(self) -> str:
        return "{" + ", ".join(map(str, self.values)) + "}"


Param = Float | Int | Choice

#: Searched for every method, with the same ranges (the equal part of the budget).
ENGINE_SPACE: Mapping[str, Param] = {
    "lr": Float(1e-4, 3e-3, log=True),
    "weight_decay": Float(1e-5, 1e-3, log=True),
}
#: A loss weight, searched by methods whose only weight is the engine's.
CONSISTENCY_WEIGHT = Float(0.1, 30.0, log=True)
#: A confidence threshold (FixMatch family).
THRESHOLD = Float(0.7, 0.98)
#: A weight of an unlabeled loss around its default of 1.
UNLABELED_WEIGHT = Float(0.25, 4.0, log=True)


def space_of(method_cls: Any) -> dict[str, Param]:
    """The full space one method is tuned over: the engine's, then its own."""
    return {**ENGINE_SPACE, **method_cls.search_space}


def space_problems(method_cls: Any) -> list[str]:
    """What is wrong with a method's ``search_space`` (empty when it can be tuned).

    Each name must be one of its options or an engine setting a method may set for
    itself (not what a sweep varies or what only says where a run executes), must not
    re-declare the shared engine space, and must have a valid range.
    """
    from ssl_bench.config.run_config import FIELD_NAMES, MACHINE_SETTINGS, VARIED_SETTINGS

    owner = f"method {method_cls.registry_name!r}: search_space"
    options = {option.name for option in method_cls.options}
    engine = set(FIELD_NAMES) - VARIED_SETTINGS - MACHINE_SETTINGS
    problems = []
    if not isinstance(method_cls.search_space, Mapping):
        return [f"{owner} must be a mapping of names to Float/Int/Choice"]
    for name, param in method_cls.search_space.items():
        if name in ENGINE_SPACE:
            problems.append(f"{owner} re-declares {name!r}, which every method shares "
                            "(ssl_bench.method_kit.search_space.ENGINE_SPACE)")
        elif name not in options and name not in engine:
            problems.append(f"{owner} names {name!r}, neither one of its options nor an "
                            "engine setting a method may set")
        elif not isinstance(param, Float | Int | Choice):
            problems.append(f"{owner}[{name!r}] must be Float, Int or Choice, got {param!r}")
        elif param.problem():
            problems.append(f"{owner}[{name!r}] {param.problem()}")
    return problems


def split_params(method_cls: Any, params: Mapping[str, Any]) -> tuple[dict[str, Any],
                                                                       dict[str, Any]]:
    """(method options, engine settings) of one trial's parameters."""
    options = {option.name for option in method_cls.options}
    return ({k: v for k, v in params.items() if k in options},
            {k: v for k, v in params.items() if k not in options})
