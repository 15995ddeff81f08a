"""One declaration per run setting, from which everything else about it is derived.

Each field of :class:`~ssl_bench.config.run_config.RunConfig` is declared with
:func:`setting`: its default, its help section and text, its flag (``--image-size`` unless
named otherwise), how the flag's text is parsed, its allowed values or range, what it is
to a comparison (compared, varied by a sweep, or a machine setting) and the values it has
in the ``paper`` preset and in records written before it existed. Validation
(:mod:`ssl_bench.config.checks`), the command line's flags and help sections
(:mod:`ssl_bench.cli.flags`), sweep fairness and compare all read these declarations, so
adding a setting touches its declaration and the code that uses it.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: What a setting is to a comparison: ``compared`` (runs that differ in it are never
#: averaged together), ``varied`` (what a sweep varies between runs: a comparison's rows)
#: or ``machine`` (where and how a run executes: may change on ``--resume``, never part
#: of a comparison).
ROLES = ("compared", "varied", "machine")
#: The help sections of ``ssl-bench run --help``, in the order it shows them.
DATA = "data and split"
MODEL = "model"
SCHEDULE = "schedule and optimiser"
SSL_TERMS = "semi-supervised terms (every method)"
AUGMENTATION = "augmentation"
EVALUATION = "evaluation and reporting"
MACHINE = "machine (never part of a comparison)"
TRACKING = "tracking (never part of a comparison)"
GROUPS = (DATA, MODEL, SCHEDULE, SSL_TERMS, AUGMENTATION, EVALUATION, MACHINE, TRACKING)
#: The preset names (``--preset``); the ``paper`` values are declared on each setting.
PRESET_NAMES = ("cpu", "paper")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: A declaration's "no value" (``None`` is a value settings can have). Not
#: ``dataclasses.MISSING``: as the default of :class:`Setting`'s own fields that would
#: mean "no default".
MISSING: Any = _Missing()


def parse_bool(text: str) -> bool:
    """A flag's ``true``/``false`` (also 1/0, yes/no, on/off)."""
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def parse_ratios(text: str) -> tuple[float, float, float]:
    """``--split-ratios 0.7,0.1,0.2``."""
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected three numbers like 0.7,0.1,0.2: {text!r}") from None
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected three numbers like 0.7,0.1,0.2: {text!r}")
    return parts  # type: ignore[return-value]


@dataclass(frozen=True)
class Setting:
    """Everything about one run setting except its name, type and default (the field's).

    ``group``/``help``: its help section and text (no ``group``: it has no flag of
    ``ssl-bench run``; ``--method`` and ``--preset`` are added by the command itself).
    ``flag``: the flag when it is not ``--<name-with-dashes>``. ``parse``: how the flag's
    text becomes a value when the field's type does not say (``"switch"``: a flag without a
    value that sets true).
    ``choices``: the allowed values. ``check``: ``(fits(value, config), what it must
    be)`` for a range. ``role``: see :data:`ROLES`. ``paper``: its value in the ``paper``
    preset. ``since_added``: the value a stored record without it counts as having (it
    reproduces what older code did); a setting added without one makes older runs differ.
    """

    group: str | None
    help: str
    flag: str | None = None
    parse: Any = None
    choices: tuple[Any, ...] | None = None
    check: tuple[Callable[[Any, Any], bool], str] | None = None
    role: str = "compared"
    paper: Any = MISSING
    since_added: Any = MISSING

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {self.role!r}")
        if self.group is not None and self.group not in GROUPS:
            raise ValueError(f"group must be one of {GROUPS}, got {self.group!r}")


def setting(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING,
            group: str | None = None, help: str = "", **declared: Any) -> Any:
    """A :class:`RunConfig` field with its :class:`Setting` declaration."""
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata={"setting": Setting(group, help, **declared)})


def declarations(config_class: type) -> dict[str, Setting]:
    """Every field's declaration, in field order."""
    return {f.name: f.metadata["setting"] for f in dataclasses.fields(config_class)}


def flag_of(name: str, declared: Setting) -> str:
    """The command-line flag of setting ``name``."""
    return declared.flag or "--" + name.replace("_", "-")


def parser_of(declared: Setting, annotation: Any) -> Any:
    """What turns the flag's text into the value: the declared parser, else one for the
    field's type (``bool`` -> true/false, ``float``, ``int``, otherwise the text)."""
    if declared.parse is not None:
        return declared.parse
    kinds = typing.get_args(annotation) or (annotation,)
    for kind, parse in ((bool, parse_bool), (float, float), (int, int)):
        if kind in kinds:
            return parse
    return str
