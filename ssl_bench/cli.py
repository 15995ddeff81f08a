"""``ssl-bench``: the command line (run, list).

User mistakes (:class:`UserError`, bad flags) print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from .config import CHOICES, PRESETS, RunConfig, read_config_file, resolve_config
from .errors import UserError
from .registry import dataset_registry, get_method_class, load_plugin, method_registry
from .splits import labeled_tag, parse_labeled

EXIT_USER_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (and exit code 2) like every user error."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see '{self.prog} --help')")


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _ratios(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected three numbers like 0.7,0.1,0.2: {text!r}") from None
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected three numbers like 0.7,0.1,0.2: {text!r}")
    return parts  # type: ignore[return-value]


#: (flag, config field, type, help). Defaults come from RunConfig and the preset.
RUN_FLAGS: list[tuple[str, str, Any, str]] = [
    ("--dataset", "dataset", str, "data set name (ssl-bench list --datasets); default digits"),
    ("--data-root", "data_root", str, "folder of the data set (or $SSL_BENCH_DATA)"),
    ("--labeled", "labeled", parse_labeled,
     "labeled images: a fraction in (0, 1] (0.2) or a count (250); default 0.2"),
    ("--seed", "seed", int, "seed of the split, initialisation and batches; default 0"),
    ("--split-ratios", "split_ratios", _ratios, "train,val,test fractions; default 0.7,0.1,0.2"),
    ("--split-mode", "split_mode", str,
     "grouped (default: a patient/lesion never spans two parts) or paper (ungrouped random "
     "split, as in SRC-MT)"),
    ("--split", "split_file", str,
     "reuse a split file from 'ssl-bench split' (its parts and labeled set)"),
    ("--cache-dir", "cache_dir", str,
     "folder of decoded-image caches; default $SSL_BENCH_CACHE or ~/.cache/ssl-bench"),
    ("--image-cache", "image_cache", _bool,
     "decode images once into the cache (default true); false decodes them at every step"),
    ("--skip-bad-images", "skip_bad_images", "flag",
     "leave out missing/unreadable images (listed in skipped_images.json) instead of failing"),
    ("--skip-bad-rows", "skip_bad_rows", "flag",
     "leave out CSV rows with missing/NaN-like/invalid labels (listed in skipped_rows.json) "
     "instead of failing"),
    ("--workers", "workers", int, "threads that decode images; default: CPU count, at most 8"),
    ("--backbone", "backbone", str, "any timm architecture; default resnet10t (cpu preset)"),
    ("--pretrained", "pretrained", _bool, "ImageNet weights from timm's cache (true/false)"),
    ("--weights", "weights", str, "local .pth/.safetensors weights file (implies pretrained)"),
    ("--drop-rate", "drop_rate", float, "dropout before the classifier; default 0.2"),
    ("--frozen-groups", "frozen_groups", int,
     "freeze the backbone's first N layer groups (timm's stem and stages, batch-norm "
     "statistics included) for partial fine-tuning; default 0 (train every layer)"),
    ("--image-size", "image_size", int, "square image size in pixels; default 32 (cpu)"),
    ("--iterations", "iterations", int, "training steps (instead of --epochs); default 400"),
    ("--epochs", "epochs", float, "training length in epochs (see --epoch-length)"),
    ("--epoch-length", "epoch_length", str,
     "train (one pass over the training part in batches of --batch-size; default) or "
     "labeled (labeled images // --labeled-batch-size steps, the official SRC-MT epoch)"),
    ("--batch-size", "batch_size", int, "images per step (labeled + unlabeled); default 48"),
    ("--labeled-batch-size", "labeled_batch_size", int,
     "labeled images per step for SSL methods; default 12"),
    ("--supervised-batch", "supervised_batch", str,
     "batch of labeled-only methods: labeled (--batch-size labeled images; default) or "
     "two-stream (the SSL batch, loss on its labeled images, as the official baseline)"),
    ("--eval-batch-size", "eval_batch_size", int,
     "images per evaluation batch; default 64 (on CPUs faster per image than larger ones)"),
    ("--eval-every", "eval_every", int,
     "steps between evaluations; 0 = 10 per run (or once per epoch with --epochs)"),
    ("--test-at", "test_at", str,
     "when the test part is scored (never changing what a run reports): end (once, with "
     "each model's best-validation weights; default), best (at each new best-validation "
     "step) or every (at every evaluation: test curves in history.csv)"),
    ("--optimizer", "optimizer", str, f"one of {', '.join(CHOICES['optimizer'])}; default adam"),
    ("--lr", "lr", float, "learning rate; default 1e-3 (cpu) / 1e-4 (paper)"),
    ("--weight-decay", "weight_decay", float, "weight decay; default 5e-4"),
    ("--lr-schedule", "lr_schedule", str,
     "constant, cosine, or exponential (lr * lr_decay^epoch, official SRC-MT); "
     "default constant (cpu) / exponential (paper)"),
    ("--lr-decay", "lr_decay", float,
     "learning-rate factor per epoch of --lr-schedule exponential; default 0.9"),
    ("--class-weights", "class_weights", str,
     "none, balanced (N/(K n_c)) or inverse_frequency (N/n_c) weights of the single-label "
     "cross-entropy, counted on the labeled images; default none (cpu) / inverse_frequency "
     "(paper)"),
    ("--ema-decay", "ema_decay", float, "teacher EMA decay; default 0.99"),
    ("--teacher-buffers", "teacher_buffers", str,
     "the teacher's batch-norm statistics: own (its own train-mode forwards, as the "
     "official code; default), ema (EMA of the student's) or copy (the student's)"),
    ("--consistency-weight", "consistency_weight", float,
     "maximum weight lambda of unsupervised terms; default 1"),
    ("--consistency-class-weights", "consistency_class_weights", str,
     "none, balanced or inverse_frequency: per-class weights of the probability consistency "
     "(official SRC-MT: inverse_frequency); default none (cpu) / inverse_frequency (paper)"),
    ("--rampup", "rampup", float,
     "sigmoid ramp-up length as a fraction of training; default 0.3"),
    ("--rampup-per-epoch", "rampup_per_epoch", _bool,
     "evaluate the ramp-up at the start of each epoch, as the official code; default false "
     "(cpu) / true (paper)"),
    ("--unsupervised-start", "unsupervised_start", float,
     "epochs of labeled loss only before unsupervised terms count (official: 21); "
     "default 0 (cpu) / 21 (paper)"),
    ("--rotation", "rotation", float, "max random rotation in degrees; default 10"),
    ("--translate", "translate", float, "max random shift as a fraction of size; default 0.02"),
    ("--hflip", "hflip", _bool, "random horizontal flips (default: the data set's advice)"),
    ("--noise-std", "noise_std", float, "Gaussian noise added to normalised views; default 0"),
    ("--selection-metric", "selection_metric", str,
     "validation metric that picks the checkpoint; default auc"),
    ("--report-model", "report_model", str,
     "the model a run reports: best (higher validation metric of student and teacher; "
     "default), student (official SRC-MT; paper preset) or teacher"),
    ("--device", "device", str, "auto, cpu, cuda or mps; default auto"),
    ("--amp", "amp", _bool, "mixed precision on CUDA (bf16 where supported); default true"),
    ("--compile", "compile", "flag", "torch.compile the student and teacher (slow start)"),
    ("--deterministic", "deterministic", _bool, "deterministic algorithms; default true"),
]


def _add_run_arguments(parser: argparse.ArgumentParser, method: str | None) -> None:
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
    group = parser.add_argument_group("run settings")
    _add_flags(group, RUN_FLAGS)
    if method:
        cls = get_method_class(method)
        _add_options(parser, f"options of method {cls.registry_name!r}", cls.options, "method")


def _add_flags(group: Any, flags: list[tuple[str, str, Any, str]]) -> None:
    for flag, dest, kind, text in flags:
        if kind == "flag":
            group.add_argument(flag, dest=dest, action="store_const", const=True, default=None,
                               help=text)
        else:
            group.add_argument(flag, dest=dest, type=kind, default=None, help=text)


def _add_options(parser: argparse.ArgumentParser, title: str, options: Sequence[Any],
                 prefix: str) -> None:
    """Declared method/data set options as flags; their values land in ``prefix:name``."""
    group = parser.add_argument_group(title)
    for option in options:
        group.add_argument(option.flag, dest=f"{prefix}:{option.name}", default=None,
                           metavar=option.type.__name__.upper(),
                           help=f"{option.help} (default {option.default})")


def _dataset_flags(parser: argparse.ArgumentParser, dataset: str) -> None:
    from .registry import dataset_option_specs, dataset_registry

    name = dataset_registry.resolve(dataset)
    specs = dataset_option_specs(name)
    if specs:
        _add_options(parser, f"options of data set {name!r}", specs, "dataset")


def _collect(namespace: argparse.Namespace, prefix: str) -> dict[str, Any]:
    return {k.split(":", 1)[1]: v for k, v in vars(namespace).items()
            if k.startswith(prefix + ":") and v is not None}


def command_run(argv: Sequence[str]) -> int:
    from .records import stored_config
    from .run_dir import CONFIG, RunDir
    from .runner import run

    # Phase 1: which method (and plug-ins) -- its options become flags in phase 2.
    pre = _Parser(prog="ssl-bench run", add_help=False)
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

    parser = _Parser(prog="ssl-bench run", description="Train and evaluate one method.")
    _add_run_arguments(parser, method)
    _dataset_flags(parser, dataset)
    args = parser.parse_args(argv)
    run_fields = {dest for _, dest, _, _ in RUN_FLAGS} | {"method", "preset"}
    cli_config = {k: v for k, v in vars(args).items() if k in run_fields}
    cli_config["method_options"] = _collect(args, "method")
    cli_config["dataset_options"] = _collect(args, "dataset")
    config = resolve_config(file_values, cli_config)
    output = args.output or (
        Path("runs") / config.dataset / config.method / f"labeled={labeled_tag(config.labeled)}"
        / f"seed={config.seed}"
    )
    metrics = run(config, output, overwrite=args.overwrite, resume=args.resume, quiet=args.quiet)
    assert metrics is not None
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
    from rich.console import Console
    from rich.table import Table

    parser = _Parser(prog="ssl-bench list", description="List methods, data sets, backbones.")
    parser.add_argument("--methods", action="store_true", help="list methods and their options")
    parser.add_argument("--datasets", action="store_true", help="list data sets")
    parser.add_argument("--backbones", nargs="?", const="*", metavar="PATTERN",
                        help="list timm backbones matching PATTERN (e.g. 'resnet*')")
    parser.add_argument("--pretrained-only", action="store_true",
                        help="only backbones with pretrained weights")
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE")
    args = parser.parse_args(argv)
    for plugin in args.plugin:
        load_plugin(plugin)
    show_all = not (args.methods or args.datasets or args.backbones)
    console = Console()
    if args.methods or show_all:
        table = Table(title="methods")
        for column in ("name", "teacher", "unlabeled", "summary"):
            table.add_column(column)
        for name, cls in method_registry.items():
            table.add_row(name, "yes" if cls.needs_teacher else "no",
                          "yes" if cls.uses_unlabeled else "no", cls.summary)
        console.print(table)
        for name, cls in method_registry.items():
            console.print(f"  {name} {_method_contract(cls)}", highlight=False, markup=False,
                          soft_wrap=True)
        for name, cls in method_registry.items():
            for o in cls.options:
                console.print(f"  {name} option {o.flag} {o.type.__name__.upper()} "
                              f"(default {o.default}): {o.help}", highlight=False,
                              soft_wrap=True)
    if args.datasets or show_all:
        table = Table(title="data sets")
        table.add_column("name")
        table.add_column("description")
        for name, factory in dataset_registry.items():
            table.add_row(name, (factory.__doc__ or "").strip().splitlines()[0])
        console.print(table)
    if args.backbones or show_all:
        from .backbones import list_backbones

        pattern = args.backbones or "*"
        names = list_backbones(pattern, pretrained_only=args.pretrained_only)
        if show_all:
            console.print(f"backbones: {len(names)} timm architectures "
                          "(ssl-bench list --backbones 'PATTERN' to list them)", soft_wrap=True)
        else:
            for name in names:
                console.print(_backbone_line(name), highlight=False, markup=False,
                              soft_wrap=True)
            console.print(f"{len(names)} backbones match {pattern!r}", highlight=False)
    return 0


def _method_contract(cls: Any) -> str:
    """What a method asks of the engine: its views, state and own defaults, one line."""
    views = ", ".join(f"{n}={v.augmentation}" + ("" if v.rows == "all" else f"[{v.rows}]")
                      for n, v in cls.view_specs().items())
    state = ", ".join(sorted(cls().state_dict())) or "none"
    defaults = ", ".join(f"{k}={v}" for k, v in cls.defaults.items()) or "none"
    kinds = ", ".join({"single": "single-label", "multi": "multi-label"}[k]
                      for k in cls.task_kinds)
    return f"tasks: {kinds}; views: {views}; state: {state}; own defaults: {defaults}"


def _backbone_line(name: str) -> str:
    """A backbone or pretrained tag, and whether its weights are available offline."""
    from .weights import availability, pretrained_tag

    tag = pretrained_tag(name)
    if tag is None:  # an architecture without published weights
        return name
    found = availability(tag)
    where = f"{found.source}: {found.detail}" if found.offline else found.detail
    label = f"{name:<40}" if tag == name else f"{name:<32} {tag:<40}"
    return f"{label} available offline: {'yes' if found.offline else 'no'}" + (
        f" ({where})" if where else "")


#: Flags of ``ssl-bench split`` (a subset of the run flags).
SPLIT_FLAGS = [f for f in RUN_FLAGS if f[1] in {
    "data_root", "labeled", "seed", "split_ratios", "split_mode", "skip_bad_rows"}]


def command_split(argv: Sequence[str]) -> int:
    """Write a self-describing split file that runs can reuse with ``--split``."""
    from rich.console import Console
    from rich.table import Table

    from .prepare import load_dataset
    from .splits import make_split, save_split

    pre = _Parser(prog="ssl-bench split", add_help=False)
    pre.add_argument("--dataset", default=RunConfig.dataset)
    pre.add_argument("--plugin", action="append", default=[])
    known, _ = pre.parse_known_args(argv)
    for plugin in known.plugin:
        load_plugin(plugin)
    parser = _Parser(prog="ssl-bench split",
                     description="Make a train/val/test split with a nested labeled subset.")
    parser.add_argument("--dataset", default=RunConfig.dataset, help="data set name")
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE")
    parser.add_argument("--output", "-o", required=True, help="split file to write (JSON)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file")
    _add_flags(parser, SPLIT_FLAGS)
    _dataset_flags(parser, known.dataset)
    args = parser.parse_args(argv)
    values = {k: v for k, v in vars(args).items() if v is not None and ":" not in k and k in {
        "dataset", "data_root", "labeled", "seed", "split_ratios", "split_mode",
        "skip_bad_rows"}}
    values["dataset_options"] = _collect(args, "dataset")
    config = resolve_config({}, values)
    output = Path(args.output)
    if output.exists() and not args.overwrite:
        raise UserError(f"{output} exists; pass --overwrite to replace it")
    dataset = load_dataset(config)
    split = make_split(dataset, config.seed, config.labeled, config.split_ratios,
                       grouped=config.split_mode == "grouped")
    save_split(split, output)
    table = Table(title=f"{dataset.name} split (seed {config.seed}, labeled "
                  f"{labeled_tag(config.labeled)}) -> {output}")
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

    from .sweep import (
        make_spec,
        overridden_defaults,
        plan,
        print_summary,
        read_spec,
        remove_sweep,
        run_sweep,
    )

    pre = _Parser(prog="ssl-bench sweep", add_help=False)
    pre.add_argument("--dataset")
    pre.add_argument("--plugin", action="append", default=[])
    known, _ = pre.parse_known_args(argv)
    known.spec = argv[0] if argv and not argv[0].startswith("-") else None  # spec comes first
    for plugin in known.plugin:
        load_plugin(plugin)
    values = read_spec(known.spec) if known.spec else {}
    dataset = known.dataset or values.get("run", {}).get("dataset") or RunConfig.dataset

    parser = _Parser(prog="ssl-bench sweep", description=(
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
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per run; default CPU count / jobs")
    parser.add_argument("--keep-checkpoints", type=_bool, default=None,
                        help="keep best.pt of every run (default true; false for "
                        "reference results)")
    parser.add_argument("--overwrite", action="store_true", help="delete the sweep's folder "
                        "first (default: skip finished runs, resume interrupted ones)")
    parser.add_argument("--dry-run", action="store_true", help="list the runs and stop")
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE")
    parser.add_argument("--preset", choices=sorted(PRESETS))
    group = parser.add_argument_group("run settings shared by every run")
    _add_flags(group, [f for f in RUN_FLAGS if f[1] not in {"labeled", "seed", "split_file"}])
    _dataset_flags(parser, dataset)
    args = parser.parse_args(argv)
    if args.jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {args.jobs}")
    run_values = dict(values.get("run", {}))
    run_fields = {dest for _, dest, _, _ in RUN_FLAGS} | {"preset"}
    run_values.update({k: v for k, v in vars(args).items() if k in run_fields and v is not None})
    dataset_options = _collect(args, "dataset")
    if dataset_options:
        run_values["dataset_options"] = {**run_values.get("dataset_options", {}),
                                         **dataset_options}
    values["run"] = run_values
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
    for note in overridden_defaults(spec):
        console.print(f"[yellow]warning:[/yellow] {note}", highlight=False)
    console.print(f"sweep {spec.name}: {len(spec.methods)} methods x {len(spec.labeled)} "
                  f"labeled x {len(spec.seeds)} seeds = {len(runs)} runs on "
                  f"{runs[0].config.dataset} -> {Path(spec.results) / spec.name}",
                  highlight=False)
    if args.dry_run:
        for planned in runs:
            console.print(f"  {planned.output}", highlight=False)
        return 0
    if args.overwrite:
        remove_sweep(spec)
    result = run_sweep(spec, runs, jobs=args.jobs, threads=args.threads)
    print_summary(result, console)
    return 1 if result.failed else 0


def command_compare(argv: Sequence[str]) -> int:
    """Tables and plots from finished runs: mean ± std over seeds, gains, paired tests."""
    from rich.console import Console

    from .compare import FORMATS, MODELS, compare_command, parse_pairs

    parser = _Parser(prog="ssl-bench compare", description=(
        "Read every finished run under FOLDERS and report mean ± std over seeds per data "
        "set x method x labeled fraction, the gain over supervised and paired tests."))
    parser.add_argument("folders", nargs="+", type=Path, help="folders holding runs")
    parser.add_argument("--metric", default="auc",
                        help="any recorded test metric (auc, accuracy, f1_macro, auc_MEL, ...)")
    parser.add_argument("--model", default="reported", choices=MODELS,
                        help="reported (default: the model each run's --report-model names), "
                        "student, teacher, or best (the one with the higher validation metric)")
    parser.add_argument("--format", dest="fmt", choices=FORMATS,
                        help="md, csv, latex or json instead of the rich table")
    parser.add_argument("--output", type=Path, help="write the table to this file")
    parser.add_argument("--plot", dest="plot_dir", type=Path,
                        help="write PNG plots (learning curves, per-class AUC) here")
    parser.add_argument("--fraction", type=parse_labeled,
                        help="labeled fraction of the per-class plot (default: the largest)")
    parser.add_argument("--baseline", help="method every other is tested against, runs "
                        "paired by seed, Holm-corrected (default: supervised)")
    parser.add_argument("--pairs", help="further paired tests, METHOD:METHOD,... "
                        "(default: srcmt:mt where both ran; 'none' for none)")
    args = parser.parse_args(argv)
    pairs = parse_pairs(args.pairs) if args.pairs is not None else None
    return compare_command(args.folders, args.metric, args.model, args.fmt, args.output,
                           args.plot_dir, args.fraction, Console(), baseline=args.baseline,
                           pairs=pairs)


COMMANDS = {"run": command_run, "list": command_list, "split": command_split,
            "sweep": command_sweep, "compare": command_compare}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print("usage: ssl-bench {run,sweep,compare,list,split} ...\n\n"
              "  run    train and evaluate one method on one data set\n"
              "  sweep  run methods x labeled fractions x seeds under identical settings\n"
              "  compare  tables and plots of finished runs (mean ± std, gains, tests)\n"
              "  list   show methods (with options), data sets and timm backbones\n"
              "  split  write a reusable split file (train/val/test + nested labeled set)\n\n"
              "'ssl-bench COMMAND --help' shows a command's flags.")
        return 0 if argv else EXIT_USER_ERROR
    command, rest = argv[0], argv[1:]
    try:
        if command not in COMMANDS:
            raise UserError(f"unknown command {command!r}; commands: {', '.join(COMMANDS)}")
        return COMMANDS[command](rest)
    except UserError as exc:
        print(f"ssl-bench: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:  # the file system refused (read-only, full, ...): one line too
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"ssl-bench: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("ssl-bench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
