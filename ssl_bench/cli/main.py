"""``ssl-bench``: the command line (run, sweep, tune, compare, report, predict, export,
list, split, check-method; each command's flags are built here or in its own module).

User mistakes (:class:`UserError`, bad flags) print one line and exit with code 2.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ssl_bench.cli.flags import (
    RUN_FLAGS,
    Parser,
    add_dataset_options,
    add_flags,
    add_grouped_flags,
    add_run_arguments,
    collect_options,
    dataset_and_plugins,
    parse_bool,
    parse_method_options,
)
from ssl_bench.cli.inference import command_export, command_predict
from ssl_bench.config.resolve import read_config_file, resolve_config
from ssl_bench.config.run_config import PRESETS, RunConfig
from ssl_bench.core.errors import UserError, show_warning_line
from ssl_bench.data.labeled import labeled_tag, parse_labeled
from ssl_bench.plugins.registry import load_plugin

EXIT_USER_ERROR = 2


def command_run(argv: Sequence[str]) -> int:
    from ssl_bench.runs.run_dir import CONFIG, RunDir
    from ssl_bench.training.records import stored_config

    # Phase 1: which method (and plug-ins) -- its options become flags in phase 2.
    pre = Parser(prog="ssl-bench run", add_help=False)
    pre.add_argument("--method")
    pre.add_argument("--dataset")
    pre.add_argument("--config")
    pre.add_argument("--plugin", action="append", default=[])
    pre.add_argument("--output", "-o")
    pre.add_argument("--resume", action="store_true")
    known, _ = pre.parse_known_args(argv)
    for plugin in known.plugin:
        load_plugin(plugin)
    file_values: dict[str, Any] = {}
    if known.resume and known.output and (Path(known.output) / CONFIG).is_file():
        file_values = stored_config(RunDir(known.output),
                                    "pass --overwrite to start the run again")
    if known.config:
        file_values.update(read_config_file(known.config))
    method = known.method or file_values.get("method") or RunConfig.method
    dataset = known.dataset or file_values.get("dataset") or RunConfig.dataset

    parser = Parser(prog="ssl-bench run", description=(
        "Train and evaluate one method. 'ssl-bench run --method NAME --help' shows a "
        "method's own options, '--dataset NAME --help' a data set's (ssl-bench list names "
        "them)."))
    add_run_arguments(parser, method)
    add_dataset_options(parser, dataset)
    args = parser.parse_args(argv)
    run_fields = {dest for _, dest, _, _ in RUN_FLAGS} | {"method", "preset"}
    cli_config = {k: v for k, v in vars(args).items() if k in run_fields}
    cli_config["method_options"] = collect_options(args, "method")
    cli_config["dataset_options"] = collect_options(args, "dataset")
    config = resolve_config(file_values, cli_config)
    output = args.output or (
        Path("runs") / config.dataset / config.method / f"labeled={labeled_tag(config.labeled)}"
        / f"seed={config.seed}"
    )
    from ssl_bench.core import distributed  # torch and the rest: only once the arguments are good
    from ssl_bench.training.runner import run

    world = distributed.setup(config.device)  # torchrun: one rank of a DDP run
    try:
        metrics = run(config, output, overwrite=args.overwrite, resume=args.resume,
                      quiet=args.quiet or not world.is_main)
    finally:
        distributed.teardown()
    assert metrics is not None
    if world.is_main:
        _print_result(metrics, Path(output))
    return 0


def _print_result(metrics: dict[str, Any], output: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{metrics['method']} on {metrics['dataset']} "
                  f"(labeled {labeled_tag(metrics['labeled'])}, seed {metrics['seed']})")
    table.add_column("model")
    table.add_column("best val step", justify="right")
    keys = [k for k in ("auc", "accuracy", "balanced_accuracy", "f1_macro")
            if k in metrics["student"]["test"]]
    for key in keys:
        table.add_column(f"test {key}", justify="right")
    for name in ("student", "teacher"):
        if name in metrics:
            record = metrics[name]
            table.add_row(name, str(record["best_step"]), *[
                "n/a" if record["test"].get(k) is None else f"{record['test'][k]:.4f}"
                for k in keys])
    console = Console()
    console.print(table)
    reported = metrics.get("reported", metrics["best"])
    rule = reported.get("rule", "best")
    why = (f"highest validation {metrics['selection']['metric']}" if rule == "best"
           else f"--report-model {rule}")
    console.print(f"reported: {reported['model']} ({why}); results in {output}")


def command_list(argv: Sequence[str]) -> int:
    from ssl_bench.cli.listing import command_list as list_command

    return list_command(argv)


#: Flags of ``ssl-bench split`` (a subset of the run flags).
SPLIT_FLAGS = [f for f in RUN_FLAGS if f[1] in {
    "data_root", "labeled", "seed", "split_ratios", "split_mode", "skip_bad_rows"}]


def command_split(argv: Sequence[str]) -> int:
    """Write a self-describing split file that runs can reuse with ``--split``."""
    from rich.console import Console
    from rich.table import Table

    dataset = dataset_and_plugins("ssl-bench split", argv)
    parser = Parser(prog="ssl-bench split",
                     description="Make a train/val/test split with a nested labeled subset.")
    parser.add_argument("--dataset", default=RunConfig.dataset, help="data set name")
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE")
    parser.add_argument("--output", "-o", required=True, help="split file to write (JSON)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file")
    add_flags(parser, SPLIT_FLAGS)
    add_dataset_options(parser, dataset)
    args = parser.parse_args(argv)
    values = {k: v for k, v in vars(args).items() if v is not None and ":" not in k and k in {
        "dataset", "data_root", "labeled", "seed", "split_ratios", "split_mode",
        "skip_bad_rows"}}
    values["dataset_options"] = collect_options(args, "dataset")
    config = resolve_config({}, values)
    output = Path(args.output)
    if output.exists() and not args.overwrite:
        raise UserError(f"{output} exists; pass --overwrite to replace it")
    from ssl_bench.data.splits import make_split, save_split
    from ssl_bench.training.prepare import load_dataset

    dataset = load_dataset(config)
    split = make_split(dataset, config.seed, config.labeled, config.split_ratios,
                       grouped=config.split_mode == "grouped")
    save_split(split, output)
    extra = (f"; {len(split.unlabeled_only):,} more images nobody labeled, all unlabeled"
             if split.unlabeled_only else "")
    table = Table(title=f"{dataset.name} split (seed {config.seed}, labeled "
                  f"{labeled_tag(config.labeled)}{extra}) -> {output}")
    table.add_column("class")
    parts = ["train", "labeled", "val", "test"]
    for part in parts:
        table.add_column(f"{part} ({len(getattr(split, part))})", justify="right")
    for name in dataset.class_names:
        table.add_row(name, *[str(split.class_counts[part][name]) for part in parts])
    Console().print(table)
    return 0


def command_sweep(argv: Sequence[str]) -> int:
    """Run methods x labeled fractions x seeds with identical settings otherwise."""
    from rich.console import Console

    from ssl_bench.sweeps.cluster import print_status, submit_command
    from ssl_bench.sweeps.executors import add_cluster_arguments, executor
    from ssl_bench.sweeps.plan import (
        code_provenance,
        exposure_notes,
        make_spec,
        overridden_defaults,
        plan,
        read_spec,
    )

    pre = Parser(prog="ssl-bench sweep", add_help=False)
    pre.add_argument("--dataset")
    pre.add_argument("--plugin", action="append", default=[])
    known, _ = pre.parse_known_args(argv)
    known.spec = argv[0] if argv and not argv[0].startswith("-") else None  # spec comes first
    for plugin in known.plugin:
        load_plugin(plugin)
    values = read_spec(known.spec) if known.spec else {}
    dataset = known.dataset or values.get("run", {}).get("dataset") or RunConfig.dataset

    parser = Parser(prog="ssl-bench sweep", description=(
        "Run every method x labeled fraction x seed on the same split, backbone and budget. "
        "Takes a TOML spec (see benchmarks/) and/or lists; any run setting applies to all."))
    parser.add_argument("spec", nargs="?", help="TOML sweep spec (benchmarks/*.toml), first")
    parser.add_argument("--name", help="sweep name (folder under --results); default: the "
                        "spec file's name")
    parser.add_argument("--methods", help="comma-separated methods, e.g. supervised,pi,mt,srcmt")
    parser.add_argument("--labeled", dest="labeled_list",
                        help="comma-separated fractions or counts, e.g. 0.05,0.1,0.2")
    parser.add_argument("--seeds", help="comma-separated seeds, e.g. 0,1,2")
    parser.add_argument("--results", help="results folder; default results/")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs in parallel on this machine (CPU threads are divided)")
    parser.add_argument("--keep-checkpoints", type=parse_bool, default=None,
                        help="keep best.pt of every run (default true; false for "
                        "reference results)")
    parser.add_argument("--overwrite", action="store_true", help="delete the sweep's folder "
                        "first (default: skip finished runs, resume interrupted ones)")
    parser.add_argument("--dry-run", action="store_true", help="list the runs and stop")
    parser.add_argument("--allow-uncommitted", action="store_true", help="run a reference "
                        "sweep from a tree with uncommitted code changes (recorded)")
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE")
    parser.add_argument("--preset", choices=sorted(PRESETS))
    add_cluster_arguments(parser)
    parser.add_argument("--method-option", action="append", default=[],
                        metavar="METHOD.OPTION=VALUE",
                        help="an option of one method of the sweep, e.g. fixmatch.threshold=0.9 "
                        "(repeatable; as [method_options.fixmatch] in a spec)")
    add_grouped_flags(parser, [f for f in RUN_FLAGS
                               if f[1] not in {"labeled", "seed", "split_file"}])
    add_dataset_options(parser, dataset)
    args = parser.parse_args(argv)
    if args.jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {args.jobs}")
    run_values = dict(values.get("run", {}))
    run_fields = {dest for _, dest, _, _ in RUN_FLAGS} | {"preset"}
    run_values.update({k: v for k, v in vars(args).items() if k in run_fields and v is not None})
    dataset_options = collect_options(args, "dataset")
    if dataset_options:
        run_values["dataset_options"] = {**run_values.get("dataset_options", {}),
                                         **dataset_options}
    values["run"] = run_values
    for method, options in parse_method_options(args.method_option).items():
        values.setdefault("method_options", {}).setdefault(method, {}).update(options)
    for key, flag in (("name", "name"), ("methods", "methods"), ("labeled", "labeled_list"),
                      ("seeds", "seeds"), ("results", "results"),
                      ("keep_checkpoints", "keep_checkpoints")):
        if getattr(args, flag) is not None:
            values[key] = getattr(args, flag)
    if "name" not in values:
        raise UserError("give the sweep a --name (or a spec file, whose name is the default)")
    spec = make_spec(values, known.spec or "command line")
    runs = plan(spec)
    console = Console()
    for note in overridden_defaults(spec) + exposure_notes(runs):
        console.print(f"[yellow]warning:[/yellow] {note}", highlight=False)
    console.print(f"sweep {spec.name}: {len({r.label for r in runs})} methods x "
                  f"{len(spec.labeled)} "
                  f"labeled x {len(spec.seeds)} seeds = {len(runs)} runs on "
                  f"{runs[0].config.dataset} -> {Path(spec.results) / spec.name}",
                  highlight=False)
    if args.dry_run:
        for planned in runs:
            console.print(f"  {planned.output}", highlight=False)
        return 0
    if args.status:
        print_status(Path(spec.results) / spec.name / "sweep.json", console)
        return 0
    from ssl_bench.sweeps.local import SweepInterrupted, print_summary, remove_sweep, run_sweep

    if args.overwrite:
        remove_sweep(spec)
    code = code_provenance(spec, args.allow_uncommitted)
    if executor(args.executor).submits:
        return submit_command(spec, runs, args, console)
    try:
        result = run_sweep(spec, runs, jobs=args.jobs, provenance=code)
    except SweepInterrupted as stopped:
        print_summary(stopped.result, console)
        print(f"ssl-bench: {stopped.describe()}", file=sys.stderr)
        return stopped.exit_code
    print_summary(result, console)
    return 1 if result.failed else 0


def command_compare(argv: Sequence[str]) -> int:
    """Tables and plots from finished runs: mean ± std over seeds, gains, paired tests."""
    from rich.console import Console

    from ssl_bench.compare.arguments import FORMATS, add_comparison_flags, parse_pairs

    parser = Parser(prog="ssl-bench compare", description=(
        "Read every finished run under FOLDERS and report mean ± std over seeds per data "
        "set x method x labeled fraction, the gain over supervised and paired tests."))
    parser.add_argument("folders", nargs="+", type=Path, help="folders holding runs")
    add_comparison_flags(parser)
    parser.add_argument("--format", dest="fmt", choices=FORMATS,
                        help="md, csv, latex or json instead of the rich table")
    parser.add_argument("--output", type=Path, help="write the table to this file")
    parser.add_argument("--plot", dest="plot_dir", type=Path,
                        help="write PNG plots (learning curves, per-class AUC) here")
    parser.add_argument("--fraction", type=parse_labeled,
                        help="only this labeled amount's per-class plot (default: one per "
                        "labeled amount)")
    args = parser.parse_args(argv)
    pairs = parse_pairs(args.pairs) if args.pairs is not None else None
    from ssl_bench.compare import compare_command

    return compare_command(args.folders, args.metric, args.model, args.fmt, args.output,
                           args.plot_dir, args.fraction, Console(), baseline=args.baseline,
                           pairs=pairs, error_bars=args.error_bars, views=args.views,
                           bootstrap=args.bootstrap)


def command_report(argv: Sequence[str]) -> int:
    """One self-contained HTML page: the comparison, its plots, curves and provenance."""
    from ssl_bench.compare.arguments import add_comparison_flags, parse_pairs

    parser = Parser(prog="ssl-bench report", description=(
        "Write one self-contained HTML page (figures embedded) from the finished runs under "
        "FOLDERS: the comparison table with paired tests, learning-curve and per-class "
        "plots, every run's validation curve (mean ± SD per method) and each settings "
        "group's settings and provenance."))
    parser.add_argument("folders", nargs="+", type=Path, help="folders holding runs")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="the HTML file to write, e.g. report.html")
    add_comparison_flags(parser)
    args = parser.parse_args(argv)
    pairs = parse_pairs(args.pairs) if args.pairs is not None else None
    from ssl_bench.compare.report import build_report

    path, warnings = build_report(args.folders, args.output, metric=args.metric,
                                  model=args.model, baseline=args.baseline, pairs=pairs,
                                  error_bars=args.error_bars, bootstrap=args.bootstrap)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {path}")
    return 0


def command_check_method(argv: Sequence[str]) -> int:
    from ssl_bench.cli.check_method import command_check_method as check

    return check(argv)


def command_pack(argv: Sequence[str]) -> int:
    from ssl_bench.cli.pack import command_pack as pack

    return pack(argv)


def command_tune(argv: Sequence[str]) -> int:
    from ssl_bench.cli.tune import command_tune as tune

    return tune(argv)


COMMANDS = {"run": command_run, "list": command_list, "split": command_split,
            "sweep": command_sweep, "tune": command_tune, "compare": command_compare,
            "report": command_report, "predict": command_predict, "export": command_export,
            "pack": command_pack, "check-method": command_check_method}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print("usage: ssl-bench {run,sweep,tune,compare,report,predict,export,list,split,"
              "pack,check-method} ...\n\n"
              "  run    train and evaluate one method on one data set\n"
              "  sweep  run methods x labeled fractions x seeds under identical settings\n"
              "  tune   the same tuning budget for every method of a sweep (validation only)\n"
              "  compare  tables and plots of finished runs (mean ± std, gains, tests)\n"
              "  report  one self-contained HTML page of finished runs (tables, plots, "
              "provenance)\n"
              "  predict  class probabilities of a finished run's model on new images\n"
              "  export  a finished run's model as ONNX or TorchScript (preprocessing beside)\n"
              "  list   show methods (with options), data sets and timm backbones\n"
              "  split  write a reusable split file (train/val/test + nested labeled set)\n"
              "  pack   one file of a data set's decoded images and splits, for --data-root\n"
              "  check-method  run the method contract checks on a plug-in file\n\n"
              "'ssl-bench COMMAND --help' shows a command's flags.")
        return 0 if argv else EXIT_USER_ERROR
    command, rest = argv[0], argv[1:]
    warnings.showwarning = show_warning_line
    try:
        if command not in COMMANDS:
            raise UserError(f"unknown command {command!r}; commands: {', '.join(COMMANDS)}")
        return COMMANDS[command](rest)
    except UserError as exc:
        from ssl_bench.core.rank_faults import PeerLost

        line = f"ssl-bench: error: {exc}"
        if (isinstance(exc, PeerLost) and command == "run" and exc.output is not None
                and exc.checkpoint_step is not None):
            line += f"; continue it with: {resume_command(rest, exc.output)}"
        print(line, file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:  # the file system refused (read-only, full, ...): one line too
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"ssl-bench: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as exc:
        from ssl_bench.core.interrupts import RunInterrupted

        if not isinstance(exc, RunInterrupted):  # before training started, or a 2nd Ctrl-C
            print("ssl-bench: interrupted", file=sys.stderr)
            return 130
        print(f"ssl-bench: {exc.describe()}", file=sys.stderr)
        if command == "run" and exc.checkpoint_step is not None and exc.output is not None:
            print(f"ssl-bench: continue it with: {resume_command(rest, exc.output)}",
                  file=sys.stderr)
        return exc.exit_code


def resume_command(argv: Sequence[str], output: Path,
                   environ: dict[str, str] | None = None) -> str:
    """The ``ssl-bench run`` command line that continues an interrupted run: the same
    arguments without ``--overwrite``, with ``--resume`` and the run's folder (under
    torchrun, through torchrun with as many processes)."""
    import os
    import shlex

    tokens = [a for a in argv if a != "--overwrite"]
    if not any(a in ("-o", "--output") or a.startswith("--output=") for a in tokens):
        tokens += ["--output", str(output)]
    if "--resume" not in tokens:
        tokens.append("--resume")
    from ssl_bench.core.distributed import launcher  # (a run has imported torch already)

    return f"{launcher(os.environ if environ is None else environ)} {shlex.join(tokens)}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
