"""``ssl-bench tune SPEC``: tune every method of a sweep spec with the same budget."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ssl_bench.cli.flags import Parser
from ssl_bench.core.errors import UserError
from ssl_bench.plugins.registry import load_plugin
from ssl_bench.sweeps.executors import add_cluster_arguments, executor, options_from_args
from ssl_bench.tuning import TUNED_TOML, TUNING_DIR, TUNING_JSON


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
    parser.add_argument("--jobs", type=int, default=1, help="methods tuned at once on this "
                        "machine, one study per process (CPU threads are divided); every "
                        "choice is the one --jobs 1 makes")
    parser.add_argument("--threads", type=int, help="CPU threads of each trial")
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--dry-run", action="store_true",
                        help="show the spaces and what the study holds, and stop")
    parser.add_argument("--allow-uncommitted", action="store_true", help="tune a reference "
                        "spec (reference = true) although ssl_bench/ or methods/ has "
                        "uncommitted changes (tuning.json records the dirty commit)")
    add_cluster_arguments(parser, status=False)
    return parser


def command_tune(argv: Sequence[str]) -> int:
    from rich.console import Console

    from ssl_bench.sweeps.plan import code_provenance, make_spec, read_spec
    from ssl_bench.tuning.settings import tune_settings
    from ssl_bench.tuning.study import Tuning, check_spaces, describe_space

    args = _parser().parse_args(argv)
    if args.jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {args.jobs}")
    cluster = options_from_args(args)  # None: trials run on this machine
    for plugin in args.plugin:
        load_plugin(plugin)
    values = read_spec(args.spec)
    for key in ("name", "results", "methods"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    if args.threads is not None:
        values.setdefault("run", {})["threads"] = args.threads
    elif args.jobs > 1 and not values.get("run", {}).get("threads"):
        from ssl_bench.core.threads import (
            default_threads,  # (threads are a machine setting: the study
        )
        values.setdefault("run", {})["threads"] = default_threads(args.jobs)  # is the same)
    spec = make_spec(values, args.spec)
    if spec.tuned_by:
        raise UserError(f"{args.spec} is a tuned spec (tuned_by = {spec.tuned_by!r}); tune "
                        "the spec it came from")
    code_provenance(spec, args.allow_uncommitted)  # a reference spec: one clean commit
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
    return _tune(tuning, console, args.jobs, cluster, args.wait)


def _tune(tuning: Any, console: Any, jobs: int, cluster: Any, wait: bool) -> int:
    from ssl_bench.runs.locks import FolderLock
    from ssl_bench.tuning.execution import job_outcome, submit_studies, tune_here, tune_in_workers
    from ssl_bench.tuning.output import write_outputs

    def echo(line: str) -> None:
        console.print(line, highlight=False)

    methods = tuning.spec.methods
    with FolderLock(tuning.folder):
        if cluster is not None:
            submitted = submit_studies(tuning, methods, cluster)
            if not submitted:
                echo("nothing to submit: every method has its budget")
            else:
                echo(f"submitted {len(submitted)} stud(y/ies) ({', '.join(submitted)}) as "
                     f"{cluster.executor} jobs "
                     f"{', '.join(str(j.job_id) for j in submitted.values())}; logs in "
                     f"{tuning.folder / 'submitit'}; each job rewrites tuning.json after "
                     "every trial, and the last one writes tuned.toml")
                if not (wait or executor(cluster.executor).always_waits):
                    return 0
            outcomes = {method: job_outcome(job) for method, job in submitted.items()}
        elif jobs > 1:
            outcomes = tune_in_workers(tuning, methods, jobs, echo)
        else:
            outcomes = tune_here(tuning, methods, echo)
        record = write_outputs(tuning)
    return _summary(tuning, record, outcomes, echo)


def _summary(tuning: Any, record: dict[str, Any], outcomes: dict[str, dict[str, Any]],
             echo: Any) -> int:
    """Each method's budget and choice; 1 if a study did not reach its budget."""
    from ssl_bench.core.interrupts import EXIT_CODES

    for method, outcome in outcomes.items():
        if outcome["status"] != "done":
            echo(f"  {method}: {outcome['status']}: {outcome.get('error', '')}")
            if outcome.get("traceback"):
                echo(outcome["traceback"].rstrip())
    for label, entry in record["methods"].items():
        best = entry["best"]
        chosen = ("no trial finished: its defaults are kept" if best is None else
                  f"{tuning.metric} {best['value']:.4f} (#{best['number']}): " + ", ".join(
                      f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                      for k, v in best["params"].items()))
        echo(f"  {label}: {entry['counted']} trials; {chosen}")
    stopped = [o["signal"] for o in outcomes.values() if o["status"] == "interrupted"]
    if stopped:
        echo("tuning stopped; the same command continues it (stopped trials resume from "
             "their checkpoints)")
        return EXIT_CODES.get(stopped[0], 130)
    if not record["complete"]:
        echo(f"wrote {tuning.folder / TUNING_JSON}; the budget is not spent yet, so no "
             f"{TUNED_TOML}: run the same command again once the busy or failed studies "
             "are settled")
        return 1
    echo(f"wrote {tuning.folder / TUNING_JSON} and {tuning.folder / TUNED_TOML}; report "
         f"with: ssl-bench sweep {tuning.folder / TUNED_TOML}")
    return 0
