"""A run's configuration from its sources: field defaults < preset < the method's own
defaults < ``--config`` file < command-line flags, checked before anything runs.

TOML files are read here (``read_toml``, ``read_config_file``); :func:`resolve_config`
merges the sources into a checked :class:`~ssl_bench.config.run_config.RunConfig` with
the method's and data set's options coerced to their declared types.
"""

from __future__ import annotations

import sys
import typing
from pathlib import Path
from typing import Any

from ssl_bench.config.checks import OWN_CHECKS, type_problem, validate
from ssl_bench.config.run_config import (
    BUDGETS,
    FIELD_NAMES,
    PRESETS,
    VARIED_SETTINGS,
    RunConfig,
)
from ssl_bench.core.errors import UserError
from ssl_bench.plugins.options import coerce_options
from ssl_bench.plugins.registry import (
    dataset_option_specs,
    dataset_registry,
    method_registry,
    selection_registry,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """A TOML file's table; a missing or malformed file is a UserError naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{what} {path} is not valid TOML: {exc}") from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML run configuration; unknown keys name the file and the key."""
    path = Path(path)
    data = read_toml(path, "config file")
    data = {key.replace("-", "_"): value for key, value in data.items()}
    unknown = sorted(set(data) - set(FIELD_NAMES))
    if unknown:
        raise UserError(
            f"config file {path}: unknown key(s) {', '.join(unknown)}; "
            f"known keys: {', '.join(FIELD_NAMES)}"
        )
    for table in ("method_options", "dataset_options"):
        if table in data and not isinstance(data[table], dict):
            raise UserError(f"config file {path}: {table} must be a table")
    hints = typing.get_type_hints(RunConfig)
    for key, value in data.items():
        problem = None if key in OWN_CHECKS else type_problem(value, hints[key])
        if problem:
            raise UserError(f"config file {path}: {key} {problem}, got {value!r}")
    return data


def method_defaults(method: str, imported: bool = False) -> dict[str, Any]:
    """The engine settings a method's paper sets differently (``Method.defaults``): from
    its card (the registry index, no torch) or, ``imported``, from its imported class."""
    try:
        if imported:
            method_registry.discover()  # (so that the name is resolved by the classes)
            return dict(method_registry.get(method).defaults)
        return dict(method_registry.card(method).defaults)
    except UserError:  # an unknown name: reported (with a hint) when the run is prepared
        return {}


def resolve_config(file_values: dict[str, Any], cli_values: dict[str, Any]) -> RunConfig:
    """Merge preset, the method's defaults, file and command line (in that order) and
    validate the result.

    It is done twice: with the method's card, which the registry index answers without
    torch, so that a bad setting fails fast; then, the configuration being good, with the
    imported method class, so that a run never takes an option default or an own setting
    (``Method.defaults``) from a card that could be stale.
    """
    _resolve(file_values, cli_values, imported=False)
    return _resolve(file_values, cli_values, imported=True)


def _resolve(file_values: dict[str, Any], cli_values: dict[str, Any],
             imported: bool) -> RunConfig:
    """One :func:`resolve_config` pass, the method described by its card or its class."""
    preset = cli_values.get("preset") or file_values.get("preset") or "cpu"
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    values: dict[str, Any] = {}
    tables: dict[str, dict[str, Any]] = {"method_options": {}, "dataset_options": {}}
    method = cli_values.get("method") or file_values.get("method") or RunConfig.method
    for source in (PRESETS[preset], method_defaults(method, imported), file_values,
                   cli_values):
        for key, value in source.items():
            if key in tables:
                tables[key].update(value or {})
            elif value is not None:
                values[key] = value
        # The budgets are alternatives: a source that sets one clears the others.
        if any(source.get(budget) is not None for budget in BUDGETS):
            for budget in BUDGETS:
                if source.get(budget) is None:
                    values[budget] = None
    values["preset"] = preset
    values.update(tables)
    try:
        config = RunConfig(**values)
    except TypeError as exc:
        raise UserError(f"bad configuration: {exc}") from None
    validate(config, BUDGETS, frozenset(FIELD_NAMES) - VARIED_SETTINGS)
    _resolve_options(config, imported)
    return config


def _resolve_options(config: RunConfig, imported: bool = False) -> None:
    """Canonical method name; method and data set options checked and completed with
    their defaults (the cards' or, ``imported``, those the imported entries declare), so
    a configuration reads the same as the run records it."""

    if imported:  # imported first: the cards (names, aliases) then describe the entries
        method_registry.discover()
        dataset_registry.discover()
        name = method_registry.resolve(config.method)
        options = tuple(method_registry.get(name).options)
    else:
        card = method_registry.card(config.method)
        name, options = card.name, card.options
    config.method = name
    config.selection_rule = selection_registry.resolve(config.selection_rule)
    config.method_options = coerce_options(options, config.method_options,
                                           f"method {config.method!r}")
    config.dataset_options = coerce_options(dataset_option_specs(config.dataset),
                                            config.dataset_options,
                                            f"data set {config.dataset!r}")
