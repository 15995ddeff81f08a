"""The command line's run settings: one table of flags (``RUN_FLAGS``, derived from the
settings' declarations) shared by ``run``, ``split`` and ``sweep``, the argparse helpers
that add them and a method's or data set's declared options, and a parser whose errors
are one line like every user error."""

from __future__ import annotations

import argparse
import typing
from collections.abc import Sequence
from typing import Any, NoReturn

from ssl_bench.config.run_config import PRESETS, RunConfig
from ssl_bench.config.settings import (
    GROUPS,
    declarations,
    flag_of,
    parse_bool,
    parse_ratios,
    parser_of,
)
from ssl_bench.core.errors import UserError
from ssl_bench.plugins.registry import method_registry

__all__ = ["FLAG_GROUPS", "RUN_FLAGS", "Parser", "add_dataset_options", "add_flags",
           "dataset_and_plugins",
           "add_grouped_flags", "add_options", "add_run_arguments", "collect_options",
           "flag_groups", "parse_bool", "parse_method_options", "parse_ratios", "run_flags"]


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (and exit code 2) like every user error."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see '{self.prog} --help')")


def run_flags(config_class: type = RunConfig) -> list[tuple[str, str, Any, str]]:
    """(flag, setting, parser or ``"flag"``, help) of every setting of ``config_class``
    declared with a help section, in declaration order."""
    hints = typing.get_type_hints(config_class)
    return [(flag_of(name, declared), name,
             "flag" if declared.parse == "switch" else parser_of(declared, hints[name]),
             declared.help)
            for name, declared in declarations(config_class).items()
            if declared.group is not None]


#: (flag, config field, type, help): derived from the settings' declarations
#: (:mod:`ssl_bench.config.settings`). Defaults come from RunConfig and the preset.
RUN_FLAGS: list[tuple[str, str, Any, str]] = run_flags()
def flag_groups(config_class: type = RunConfig) -> dict[str, tuple[str, ...]]:
    """The help sections of ``config_class``'s settings, in the order ``--help`` shows
    them, each with its settings in declaration order."""
    settings = declarations(config_class)
    return {group: tuple(name for name, declared in settings.items() if declared.group == group)
            for group in GROUPS}


#: Help sections of the run settings (:func:`flag_groups`).
FLAG_GROUPS: dict[str, tuple[str, ...]] = flag_groups()


def add_grouped_flags(parser: argparse.ArgumentParser, flags: list[tuple[str, str, Any, str]],
                      groups: dict[str, tuple[str, ...]] | None = None) -> None:
    """``flags`` under the help sections of ``groups`` (default :data:`FLAG_GROUPS`;
    left-out flags skipped)."""
    by_dest = {dest: flag for flag in flags for dest in [flag[1]]}
    for title, dests in (FLAG_GROUPS if groups is None else groups).items():
        chosen = [by_dest[d] for d in dests if d in by_dest]
        if chosen:
            add_flags(parser.add_argument_group(title), chosen)


def add_run_arguments(parser: argparse.ArgumentParser, method: str | None) -> None:
    parser.add_argument("--method", help="method name (ssl-bench list --methods); default srcmt")
    parser.add_argument("--config", help="TOML file of run settings (flags override it)")
    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help="cpu (default: small models, minutes) or paper (SRC-MT, GPU)")
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE",
                        help="Python file registering extra methods/data sets (repeatable)")
    parser.add_argument("--output", "-o", help="run directory; default "
                        "runs/<dataset>/<method>/labeled=<l>/seed=<s>")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run")
    parser.add_argument("--resume", action="store_true",
                        help="continue the unfinished run in --output (an empty or new "
                        "--output starts it, so a requeued job can always pass --resume)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    add_grouped_flags(parser, RUN_FLAGS)
    if method:
        card = method_registry.card(method)
        add_options(parser, f"options of method {card.name!r}", card.options, "method")


def add_flags(group: Any, flags: list[tuple[str, str, Any, str]]) -> None:
    for flag, dest, kind, text in flags:
        if kind == "flag":
            group.add_argument(flag, dest=dest, action="store_const", const=True, default=None,
                               help=text)
        else:
            group.add_argument(flag, dest=dest, type=kind, default=None, help=text)


def add_options(parser: argparse.ArgumentParser, title: str, options: Sequence[Any],
                 prefix: str) -> None:
    """Declared method/data set options as flags; their values land in ``prefix:name``."""
    group = parser.add_argument_group(title)
    for option in options:
        group.add_argument(option.flag, dest=f"{prefix}:{option.name}", default=None,
                           metavar=option.type.__name__.upper(),
                           help=f"{option.help} (default {option.default})")


def add_dataset_options(parser: argparse.ArgumentParser, dataset: str) -> None:
    from ssl_bench.plugins.registry import dataset_option_specs, dataset_registry

    name = dataset_registry.resolve(dataset)
    specs = dataset_option_specs(name)
    if specs:
        add_options(parser, f"options of data set {name!r}", specs, "dataset")


def collect_options(namespace: argparse.Namespace, prefix: str) -> dict[str, Any]:
    return {k.split(":", 1)[1]: v for k, v in vars(namespace).items()
            if k.startswith(prefix + ":") and v is not None}


def parse_method_options(items: Sequence[str]) -> dict[str, dict[str, str]]:
    """``["fixmatch.threshold=0.9", ...]`` (``--method-option``) -> ``{"fixmatch":
    {"threshold": "0.9"}}``; values are converted by each option's declared type later."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        method, dot, name = key.strip().partition(".")
        if not sep or not dot or not method or not name:
            raise UserError(f"--method-option {item!r} is not METHOD.OPTION=VALUE (e.g. "
                            "--method-option fixmatch.threshold=0.9)")
        out.setdefault(method, {})[name.strip().replace("-", "_")] = value.strip()
    return out


def dataset_and_plugins(prog: str, argv: Sequence[str]) -> str:
    """Phase 1 of a command whose data set's options become flags: load the ``--plugin``
    files and return the ``--dataset`` named (or the default)."""
    from ssl_bench.plugins.registry import load_plugin

    pre = Parser(prog=prog, add_help=False)
    pre.add_argument("--dataset", default=RunConfig.dataset)
    pre.add_argument("--plugin", action="append", default=[])
    known, _ = pre.parse_known_args(argv)
    for plugin in known.plugin:
        load_plugin(plugin)
    return known.dataset
