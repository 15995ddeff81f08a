"""``ssl-bench check-method FILE``: the method contract checks on a plug-in's methods.

Loads the file (as ``--plugin`` does), finds the methods it registers and runs every check
of :mod:`ssl_bench.training.contract` that applies on each built-in test data set whose task kind
the method supports; prints one line per check and exits 1 if any fails.
"""

from __future__ import annotations

import inspect
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ssl_bench.core.errors import UserError
from ssl_bench.core.interrupts import user_interrupts


def _source_of(cls: type) -> Path | None:
    try:
        return Path(inspect.getsourcefile(cls) or "").resolve()
    except TypeError:
        return None


def command_check_method(argv: Sequence[str]) -> int:
    from ssl_bench.cli.flags import Parser
    from ssl_bench.training.contract import CHECK_NAMES

    parser = Parser(prog="ssl-bench check-method", description=(
        "Run the method contract checks (gradients, teacher EMA, vanishing consistency, "
        "teacher normalisation, exact resume) on the methods a plug-in file registers; "
        "seconds per method on a CPU. See CONTRIBUTING.md, 'Adding a method'."))
    parser.add_argument("file", help="Python file registering methods (@register_method)")
    parser.add_argument("--method", action="append", default=[], metavar="NAME",
                        help="check only these of its methods (repeatable)")
    parser.add_argument("--checks", default=",".join(CHECK_NAMES),
                        help="comma-separated checks to run (default: all that apply)")
    args = parser.parse_args(argv)

    from rich.console import Console

    from ssl_bench.plugins.registry import load_plugin, method_registry

    load_plugin(args.file)
    source = Path(args.file).resolve()
    added = sorted(name for name, cls in method_registry.items()
                   if _source_of(cls) == source)
    if args.method:
        unknown = sorted(set(args.method) - set(added))
        if unknown:
            raise UserError(f"{args.file} does not register method(s) {', '.join(unknown)} "
                            f"(it registers: {', '.join(added) or 'none'})")
        added = sorted(args.method)
    if not added:
        raise UserError(f"{args.file} registers no method (decorate a Method subclass with "
                        "@register_method('name'))")
    wanted = {c.strip() for c in args.checks.split(",") if c.strip()}
    unknown = sorted(wanted - set(CHECK_NAMES))
    if unknown:
        raise UserError(f"--checks: unknown check(s) {', '.join(unknown)}; the checks are "
                        f"{', '.join(CHECK_NAMES)}")
    console = Console(stderr=True)
    with user_interrupts():  # a KeyboardInterrupt of the method's own is its failure
        failed = _run_checks(console, added, wanted)
    console.print(f"{failed} check(s) failed" if failed else "every check passed",
                  highlight=False)
    return 1 if failed else 0


def _run_checks(console: Any, methods: list[str], wanted: set[str]) -> int:
    """Run the wanted checks on every method and task kind; return how many failed."""
    from ssl_bench.plugins.registry import method_registry
    from ssl_bench.training.contract import CHECK_DATASETS, checks_for

    failed = 0
    for name in methods:
        cls = method_registry.get(name)
        for kind in cls.task_kinds:
            dataset = CHECK_DATASETS[kind]
            for check, run_check in checks_for(cls).items():
                if check not in wanted:
                    continue
                started = time.perf_counter()
                try:
                    run_check(name, dataset)
                    verdict = "ok"
                except AssertionError as exc:  # ContractError and plain asserts
                    verdict, failed = f"FAILED: {exc}", failed + 1
                except UserError as exc:  # e.g. the method ended the process: says where
                    verdict, failed = f"FAILED: {type(exc).__name__}: {exc}", failed + 1
                except Exception as exc:  # the method itself crashed
                    last = traceback.extract_tb(exc.__traceback__)[-1]
                    verdict = (f"FAILED: {type(exc).__name__}: {exc} "
                               f"({last.filename}:{last.lineno})")
                    failed += 1
                console.print(f"{name} on {dataset}: {check} {verdict} "
                              f"({time.perf_counter() - started:.1f} s)", highlight=False,
                              markup=False, soft_wrap=True)
    return failed
