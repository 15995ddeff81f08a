"""Declared options of methods and data sets (name, type, default, help).

Declaring options, as USB's ``get_argument`` does, lets the CLI turn them into flags and
config files set them, with one place that converts and checks their values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ssl_bench.core.errors import UserError


@dataclass(frozen=True)
class Option:
    """A method option: exposed as ``--<name-with-dashes>`` and in config files."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def coerce(self, value: Any, owner: str) -> Any:
        """Convert a CLI string or config value to this option's type, loudly."""
        if value is None:
            return None
        try:
            if self.type is bool:
                if isinstance(value, str):
                    lowered = value.strip().lower()
                    if lowered not in {"true", "false", "1", "0", "yes", "no"}:
                        raise ValueError(value)
                    value = lowered in {"true", "1", "yes"}
                elif not isinstance(value, bool):
                    raise ValueError(value)
            elif isinstance(value, bool):
                raise ValueError(value)  # True is not a number here
            elif self.type is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            value = self.type(value)
        except (TypeError, ValueError):
            raise UserError(
                f"option {self.name!r} of {owner} expects {self.type.__name__}, "
                f"got {value!r}"
            ) from None
        if self.choices is not None and value not in self.choices:
            raise UserError(
                f"option {self.name!r} of {owner} must be one of "
                f"{', '.join(map(str, self.choices))}; got {value!r}"
            )
        return value


def coerce_options(
    declared: Iterable[Option], given: dict[str, Any], owner: str
) -> dict[str, Any]:
    """Every declared option's value (given or default); unknown names are an error."""
    declared = {option.name: option for option in declared}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        known = ", ".join(declared) or "none"
        raise UserError(f"{owner} has no option(s) {', '.join(unknown)} (its options: {known})")
    return {
        name: option.coerce(given.get(name, option.default), owner)
        for name, option in declared.items()
    }
