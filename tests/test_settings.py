"""Each run setting declared once (``ssl_bench.config.settings``): every field has a
declaration, the tables the rest of the code reads are derived from them, the help
sections agree with what a comparison ignores, and a new setting declared in one place
gets its flag, help section, range check and comparison role without touching anything
else."""

from __future__ import annotations

import argparse
import dataclasses
import typing

import pytest

from ssl_bench.cli.flags import FLAG_GROUPS, RUN_FLAGS, add_grouped_flags, flag_groups, run_flags
from ssl_bench.config.checks import OWN_CHECKS, validate
from ssl_bench.config.run_config import (
    BUDGETS,
    CHOICES,
    MACHINE_SETTINGS,
    PRESETS,
    SETTINGS,
    SINCE_ADDED,
    VARIED_SETTINGS,
    RunConfig,
)
from ssl_bench.config.settings import (
    MACHINE,
    MODEL,
    TRACKING,
    declarations,
    parse_bool,
    setting,
)
from ssl_bench.core.errors import UserError


def test_every_field_is_declared() -> None:
    fields = [f.name for f in dataclasses.fields(RunConfig)]
    assert list(SETTINGS) == fields
    assert all("setting" in f.metadata for f in dataclasses.fields(RunConfig))


def test_the_tables_are_read_from_the_declarations() -> None:
    assert MACHINE_SETTINGS == {n for n, s in SETTINGS.items() if s.role == "machine"}
    assert VARIED_SETTINGS == {n for n, s in SETTINGS.items() if s.role == "varied"}
    assert set(CHOICES) == {n for n, s in SETTINGS.items() if s.choices}
    assert set(PRESETS["paper"]) <= set(SETTINGS) and PRESETS["cpu"] == {}
    assert set(SINCE_ADDED) <= set(SETTINGS)
    assert sorted(d for dests in FLAG_GROUPS.values() for d in dests) == sorted(
        d for _, d, _, _ in RUN_FLAGS)
    parsers = {dest: parse for _, dest, parse, _ in RUN_FLAGS}
    assert (parsers["amp"], parsers["hflip"], parsers["lr"], parsers["iterations"],
            parsers["backbone"], parsers["compile"]) == (
        parse_bool, parse_bool, float, int, str, "flag")  # from the fields' types


def test_a_machine_setting_is_shown_as_one() -> None:
    """--help's machine and tracking sections hold exactly the settings a comparison
    ignores (that have a flag of their own)."""
    shown = set(FLAG_GROUPS[MACHINE]) | set(FLAG_GROUPS[TRACKING])
    flagged_machine = {n for n in MACHINE_SETTINGS if SETTINGS[n].group is not None}
    assert shown == flagged_machine


def test_every_number_has_a_range() -> None:
    hints = typing.get_type_hints(RunConfig)
    numeric = [n for n in SETTINGS if n not in OWN_CHECKS
               and any(t in (int, float) for t in typing.get_args(hints[n]) or (hints[n],))]
    assert numeric and all(SETTINGS[n].check is not None for n in numeric), [
        n for n in numeric if SETTINGS[n].check is None]


@dataclasses.dataclass
class _WithNewSetting(RunConfig):
    """RunConfig plus one setting, declared once: what adding a setting looks like."""

    warmup_steps: int = setting(
        5, group=MODEL, help="steps of warm-up; default 5",
        check=(lambda v, c: v >= 1, "be at least 1"), paper=10, since_added=5)


def test_a_new_setting_declared_once_has_all_it_needs() -> None:
    declared = declarations(_WithNewSetting)["warmup_steps"]
    assert declared.role == "compared" and declared.paper == 10
    flag = next(f for f in run_flags(_WithNewSetting) if f[1] == "warmup_steps")
    assert flag[0] == "--warmup-steps" and flag[2] is int
    parser = argparse.ArgumentParser()
    add_grouped_flags(parser, [flag], flag_groups(_WithNewSetting))
    assert parser.parse_args(["--warmup-steps", "7"]).warmup_steps == 7
    assert "model:\n  --warmup-steps WARMUP_STEPS\n" in parser.format_help()
    config = _WithNewSetting(warmup_steps=0)
    with pytest.raises(UserError, match=r"^warmup_steps \(--warmup-steps\) must be at least 1, "
                                        r"got 0$"):
        validate(config, BUDGETS, frozenset())
    with pytest.raises(UserError, match=r"warmup_steps \(--warmup-steps\) must be an integer"):
        validate(_WithNewSetting(warmup_steps="many"), BUDGETS, frozenset())


def test_a_declaration_with_an_unknown_group_or_role_is_refused() -> None:
    with pytest.raises(ValueError, match="group must be one of"):
        setting(1, group="misc", help="x")
    with pytest.raises(ValueError, match="role must be one of"):
        setting(1, group=MODEL, help="x", role="sometimes")
