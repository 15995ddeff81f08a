"""The checks of a resolved run configuration: types, ranges, choices, one budget.

Ranges, choices and flags come from each setting's declaration
(:mod:`ssl_bench.config.settings`). Every problem is a one-line
:class:`~ssl_bench.core.errors.UserError` naming the setting and its flag, raised before
anything is prepared.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

from ssl_bench.config.settings import declarations, flag_of
from ssl_bench.core.errors import UserError
from ssl_bench.data.labeled import parse_labeled
from ssl_bench.tracking import parse_log

#: Fields with checks of their own (parse_labeled, the ratio check, the option tables).
OWN_CHECKS = frozenset({"labeled", "split_ratios", "method_options", "dataset_options",
                         "own_settings"})


def type_problem(value: Any, hint: Any) -> str | None:
    """What is wrong with ``value`` for a field annotated ``hint``; None when it fits."""
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None:
        return None if type(None) in allowed else "must be set"
    for kind in allowed:
        if kind is bool and isinstance(value, bool):
            return None
        if isinstance(value, bool):
            continue
        if kind is int and isinstance(value, int):
            return None
        if kind is float and isinstance(value, int | float):
            return None if math.isfinite(value) else "must be a finite number"
        if kind is str and isinstance(value, str):
            return None
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    wanted = " or ".join(names.get(kind, "unset") for kind in allowed if kind is not type(None))
    return f"must be {wanted}"


def _label(name: str, config: Any) -> str:
    """``lr (--lr)``: a setting as a TOML key and as its flag."""
    return f"{name} ({flag_of(name, declarations(type(config))[name])})"


def _check_types(config: Any) -> None:
    """Every setting of the right type and finite, in one place for TOML and flags alike."""
    hints = typing.get_type_hints(type(config))
    for item in dataclasses.fields(config):
        if item.name in OWN_CHECKS:
            continue
        value = getattr(config, item.name)
        problem = type_problem(value, hints[item.name])
        if problem:
            raise UserError(f"{_label(item.name, config)} {problem}, got {value!r}")
    ratios = config.split_ratios
    if (not isinstance(ratios, list | tuple) or len(ratios) != 3
            or any(type_problem(r, float) for r in ratios)):
        raise UserError(f"split_ratios (--split-ratios) must be three finite numbers like "
                        f"0.7,0.1,0.2, got {ratios!r}")


def validate(config: Any, budgets: tuple[str, ...], engine_settings: frozenset[str]) -> None:
    """Check a :class:`~ssl_bench.config.run_config.RunConfig`'s types and each setting's
    declared ``choices`` and range, that exactly one of ``budgets`` is set and that
    ``own_settings`` names only ``engine_settings`` (passed in, with the declarations read
    from the config's class, so that this module imports nothing of
    :mod:`ssl_bench.config.run_config`); every problem is a :class:`UserError`."""
    _check_types(config)
    config.labeled = parse_labeled(config.labeled)
    settings = declarations(type(config))
    for name, declared in settings.items():
        allowed = declared.choices
        if allowed is not None and getattr(config, name) not in allowed:
            raise UserError(
                f"{_label(name, config)} must be one of {', '.join(allowed)}; "
                f"got {getattr(config, name)!r}")
    config.split_ratios = tuple(float(r) for r in config.split_ratios)  # type: ignore
    config.log = ",".join(parse_log(config.log))
    if sum(getattr(config, budget) is not None for budget in budgets) != 1:
        raise UserError("set exactly one of " + ", ".join(_label(b, config) for b in budgets))
    if (not isinstance(config.own_settings, list | tuple)
            or not set(config.own_settings) <= engine_settings):
        raise UserError(f"own_settings must list engine settings, got {config.own_settings!r}")
    config.own_settings = sorted(config.own_settings)
    for name, declared in settings.items():
        if declared.check is None:
            continue
        fits, wanted = declared.check
        value = getattr(config, name)
        if value is not None and not fits(value, config):
            raise UserError(f"{_label(name, config)} must {wanted}, got {value!r}".replace(
                "{batch_size}", str(config.batch_size)))
