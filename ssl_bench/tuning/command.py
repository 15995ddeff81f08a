"""``ssl-bench tune SPEC``: tune every method of a sweep spec with the same budget."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..flags import Parser
from ..registry import load_plugin
from . import TUNED_TOML, TUNING_DIR, TUNING_JSON


def _parser() -> Parser:
    parser = Parser(prog="ssl-bench tune", description=(
        "Tune every method of a sweep spec with the same number of trials (Optuna TPE, "
        "median pruning), on a tuning seed no result is reported on and on validation "
        "only; writes <results>/<name>/tuning/{study.db,tuning.json,tuned.toml}. A stopped "
        "study continues where it stopped when run again."))
    parser.add_argument("spec", help="TOML sweep spec (benchmarks/*.toml); its [tune] table "
                        "holds trials, seed, labeled, pruner and [tune.run]")
    parser.add_argument("--trials", type=int, help="counted trials per method (default 20)")
    parser.add_argument("--tuning-seed", dest="seed", type=int,
                        help="the seed trials run on (default: the largest reported seed + 1)")
    parser.add_argument("--labeled", help="the labeled fraction or count to tune at "
                        "(default: the spec's only one)")
    parser.add_argument("--pruner", choices=("median", "none"),
                        help="stop trials below the median of earlier ones (default median)")
    parser.add_argument("--methods", help="comma-separated subset of the spec's methods")
    parser.add_argument("--name", help="the sweep name (default: the spec's)")
    parser.add_argument("--results", help="results folder (default: the spec's)")
    parser.add_argument("--threads", type=int, help="CPU threads of each trial")
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--dry-run", action="store_true",
                        help="show the spaces and what the study holds, and stop")
    return parser


def command_tune(argv: Sequence[str]) -> int:
    from rich.console import Console

    from ..sweep_plan import make_spec, read_spec
    from .settings import tune_settings
    from .study import Tuning, check_spaces, describe_space

    args = _parser().parse_args(argv)
    for plugin in args.plugin:
        load_plugin(plugin)
    values = read_spec(args.spec)
    for key in ("name", "results", "methods"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    if args.threads is not None:
        values.setdefault("run", {})["threads"] = args.threads
    spec = make_spec(values, args.spec)
    if spec.tuned_by:
        raise UserError(f"{args.spec} is a tuned spec (tuned_by = {spec.tuned_by!r}); tune "
                        "the spec it came from")
    settings = tune_settings(spec, spec.tune, {"trials": args.trials, "seed": args.seed,
                                               "labeled": args.labeled, "pruner": args.pruner},
                             args.spec)
    tuning = Tuning(spec, settings, Path(spec.results) / spec.name / TUNING_DIR, args.quiet)
    console = Console(soft_wrap=True)
    check_spaces(spec.methods)
    console.print(f"tune {spec.name}: {len(spec.methods)} methods x {settings.trials} trials "
                  f"on seed {settings.seed} (reported seeds {', '.join(map(str, spec.seeds))}),"
                  f" labeled {settings.labeled}, validation {tuning.metric} of the reported "
                  f"model, pruner {settings.pruner} -> {tuning.folder}", highlight=False)
    if args.dry_run:
        for method in spec.methods:
            space = ", ".join(f"{k} {v}" for k, v in describe_space(method).items())
            console.print(f"  {method}: {space}", highlight=False)
        return 0
    return _tune(tuning, console)


def _tune(tuning: Any, console: Any) -> int:
    from ..locks import FolderLock
    from .output import write_record, write_tuned_spec
    from .study import tune

    def echo(line: str) -> None:
        console.print(line, highlight=False)

    with FolderLock(tuning.folder):
        studies = tune(tuning, tuning.spec.methods, echo,
                       after_trial=lambda now: write_record(tuning, now))
        record = write_record(tuning, studies)
        path = write_tuned_spec(tuning, record)
    for label, entry in record["methods"].items():
        best = entry["best"]
        chosen = ("no trial finished: its defaults are kept" if best is None else
                  f"{tuning.metric} {best['value']:.4f} (#{best['number']}): " + ", ".join(
                      f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                      for k, v in best["params"].items()))
        echo(f"  {label}: {entry['counted']} trials; {chosen}")
    echo(f"wrote {tuning.folder / TUNING_JSON} and {path}; report with: "
         f"ssl-bench sweep {tuning.folder / TUNED_TOML}")
    return 0
