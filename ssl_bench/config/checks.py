"""The checks of a resolved run configuration: types, ranges, choices, one budget.

Every problem is a one-line :class:`~ssl_bench.core.errors.UserError` naming the setting and
its flag, raised before anything is prepared.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

from ssl_bench.core.errors import UserError
from ssl_bench.data.labeled import parse_labeled
from ssl_bench.tracking import parse_log

#: Command-line flags whose name is not the field's (see ``flags.RUN_FLAGS``).
_FLAGS = {"split_file": "--split"}
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


def _label(name: str) -> str:
    """``lr (--lr)``: a setting as a TOML key and as its flag."""
    return f"{name} ({_FLAGS.get(name, '--' + name.replace('_', '-'))})"


#: (field, check, what it must be): the range of every numeric setting, in one place.
_RANGES: tuple[tuple[str, Any, str], ...] = (
    ("iterations", lambda v, c: v >= 1, "be at least 1"),
    ("epochs", lambda v, c: v > 0, "be positive"),
    ("labeled_epochs", lambda v, c: v > 0, "be positive"),
    ("patience", lambda v, c: v >= 0, "be >= 0 evaluations (0 = no early stopping)"),
    ("batch_size", lambda v, c: v >= 2, "be at least 2"),
    ("labeled_batch_size", lambda v, c: 1 <= v <= c.batch_size,
     "lie in [1, batch_size={batch_size}]"),
    ("image_size", lambda v, c: v >= 8, "be at least 8 pixels"),
    ("lr", lambda v, c: v > 0, "be positive"),
    ("ema_decay", lambda v, c: 0 <= v < 1, "lie in [0, 1)"),
    ("drop_rate", lambda v, c: 0 <= v < 1, "lie in [0, 1)"),
    ("frozen_groups", lambda v, c: v >= 0, "be >= 0 (0 = fine-tune every layer)"),
    ("rampup", lambda v, c: 0 <= v <= 1, "be a fraction of training in [0, 1]"),
    ("lr_decay", lambda v, c: 0 < v <= 1, "be a factor per epoch in (0, 1]"),
    ("unsupervised_start", lambda v, c: v >= 0, "be a number of epochs >= 0"),
    ("weight_decay", lambda v, c: v >= 0, "not be negative"),
    ("momentum", lambda v, c: 0 <= v < 1, "be in [0, 1)"),
    ("consistency_weight", lambda v, c: v >= 0, "not be negative"),
    ("rotation", lambda v, c: v >= 0, "not be negative"),
    ("translate", lambda v, c: v >= 0, "not be negative"),
    ("noise_std", lambda v, c: v >= 0, "not be negative"),
    ("workers", lambda v, c: v >= 0, "be >= 0 (0 = automatic)"),
    ("threads", lambda v, c: v >= 0, "be >= 0 (0 = automatic)"),
    ("eval_every", lambda v, c: v >= 0, "be >= 0 (0 = automatic)"),
    ("eval_batch_size", lambda v, c: v >= 1, "be at least 1"),
)


def _check_types(config: Any) -> None:
    """Every setting of the right type and finite, in one place for TOML and flags alike."""
    hints = typing.get_type_hints(type(config))
    for item in dataclasses.fields(config):
        if item.name in OWN_CHECKS:
            continue
        value = getattr(config, item.name)
        problem = type_problem(value, hints[item.name])
        if problem:
            raise UserError(f"{_label(item.name)} {problem}, got {value!r}")
    ratios = config.split_ratios
    if (not isinstance(ratios, list | tuple) or len(ratios) != 3
            or any(type_problem(r, float) for r in ratios)):
        raise UserError(f"split_ratios (--split-ratios) must be three finite numbers like "
                        f"0.7,0.1,0.2, got {ratios!r}")


def validate(config: Any, choices: dict[str, tuple[str, ...]], budgets: tuple[str, ...],
             engine_settings: frozenset[str]) -> None:
    """Check a :class:`~ssl_bench.config.run_config.RunConfig`'s types, ranges and ``choices``, that
    exactly one of ``budgets`` is set and that ``own_settings`` names only
    ``engine_settings`` (the tables are :mod:`ssl_bench.config.run_config`'s, passed in so that this
    module imports nothing of it); every problem is a :class:`UserError`."""
    _check_types(config)
    config.labeled = parse_labeled(config.labeled)
    if config.seed < 0:
        raise UserError(f"seed (--seed) must be >= 0, got {config.seed}")
    for name, allowed in choices.items():
        if getattr(config, name) not in allowed:
            raise UserError(
                f"{_label(name)} must be one of {', '.join(allowed)}; "
                f"got {getattr(config, name)!r}")
    config.split_ratios = tuple(float(r) for r in config.split_ratios)  # type: ignore
    config.log = ",".join(parse_log(config.log))
    if sum(getattr(config, budget) is not None for budget in budgets) != 1:
        raise UserError("set exactly one of " + ", ".join(_label(b) for b in budgets))
    if (not isinstance(config.own_settings, list | tuple)
            or not set(config.own_settings) <= engine_settings):
        raise UserError(f"own_settings must list engine settings, got {config.own_settings!r}")
    config.own_settings = sorted(config.own_settings)
    for name, fits, wanted in _RANGES:
        value = getattr(config, name)
        if value is not None and not fits(value, config):
            raise UserError(f"{_label(name)} must {wanted}, got {value!r}".replace(
                "{batch_size}", str(config.batch_size)))
