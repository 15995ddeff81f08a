"""The command line's run settings: one table of flags (``RUN_FLAGS``) shared by ``run``,
``split`` and ``sweep``, the argparse helpers that add them and a method's or data set's
declared options, and a parser whose errors are one line like every user error."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, NoReturn

from ssl_bench.config.run_config import CHOICES, PRESETS
from ssl_bench.core.errors import UserError
from ssl_bench.data.labeled import parse_labeled
from ssl_bench.plugins.registry import method_registry

__all__ = ["FLAG_GROUPS", "RUN_FLAGS", "Parser", "add_dataset_options", "add_flags",
           "add_grouped_flags", "add_options", "add_run_arguments", "collect_options",
           "parse_bool", "parse_method_options", "parse_ratios"]


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (and exit code 2) like every user error."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see '{self.prog} --help')")


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def parse_ratios(text: str) -> tuple[float, float, float]:
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
    ("--split-ratios", "split_ratios", parse_ratios,
     "train,val,test fractions; default 0.7,0.1,0.2"),
    ("--split-mode", "split_mode", str,
     "grouped (default: a patient/lesion never spans two parts) or paper (ungrouped random "
     "split, as in SRC-MT)"),
    ("--split", "split_file", str,
     "reuse a split file from 'ssl-bench split' (its parts and labeled set)"),
    ("--cache-dir", "cache_dir", str,
     "folder of decoded-image caches; default $SSL_BENCH_CACHE or ~/.cache/ssl-bench"),
    ("--image-cache", "image_cache", parse_bool,
     "decode images once into the cache (default true); false decodes them at every step"),
    ("--skip-bad-images", "skip_bad_images", "flag",
     "leave out missing/unreadable images (listed in skipped_images.json) instead of failing"),
    ("--skip-bad-rows", "skip_bad_rows", "flag",
     "leave out CSV rows with missing/NaN-like/invalid labels (listed in skipped_rows.json) "
     "instead of failing"),
    ("--workers", "workers", int, "threads that decode images; default: CPU count, at most 8"),
    ("--backbone", "backbone", str, "any timm architecture; default resnet10t (cpu preset)"),
    ("--pretrained", "pretrained", parse_bool, "ImageNet weights from timm's cache (true/false)"),
    ("--weights", "weights", str, "local .pth/.safetensors weights file (implies pretrained)"),
    ("--drop-rate", "drop_rate", float, "dropout before the classifier; default 0.2"),
    ("--frozen-groups", "frozen_groups", int,
     "freeze the backbone's first N layer groups (timm's stem and stages, batch-norm "
     "statistics included) for partial fine-tuning; default 0 (train every layer)"),
    ("--sync-bn", "sync_bn", parse_bool,
     "under torchrun, batch-norm statistics over the global batch instead of each "
     "process's shard (torch's SyncBatchNorm, CUDA only); default false"),
    ("--image-size", "image_size", int, "square image size in pixels; default 32 (cpu)"),
    ("--iterations", "iterations", int, "training steps (instead of --epochs); default 400"),
    ("--epochs", "epochs", float, "training length in epochs (see --epoch-length)"),
    ("--labeled-epochs", "labeled_epochs", float,
     "training length in passes over the labeled images at the method's own labeled "
     "images per step (instead of --iterations): the same labeled exposure for every "
     "method and both supervised baselines"),
    ("--epoch-length", "epoch_length", str,
     "train (one pass over the training part in batches of --batch-size; default) or "
     "labeled (labeled images // --labeled-batch-size steps, the official SRC-MT epoch)"),
    ("--batch-size", "batch_size", int, "images per step (labeled + unlabeled); default 48"),
    ("--labeled-batch-size", "labeled_batch_size", int,
     "labeled images per step for SSL methods; default 12"),
    ("--supervised-batch", "supervised_batch", str,
     "batch of labeled-only methods: two-stream (the SSL batch, loss on its "
     "--labeled-batch-size labeled images, as the official SRC-MT baseline; default) or "
     "labeled (--batch-size labeled images per step: 4x the labeled exposure at equal "
     "steps; compared as <method>-labeled-batch)"),
    ("--eval-batch-size", "eval_batch_size", int,
     "images per evaluation batch; default 64 (on CPUs faster per image than larger ones)"),
    ("--eval-every", "eval_every", int,
     "steps between evaluations; 0 = 10 per run (or once per epoch with --epochs)"),
    ("--test-at", "test_at", str,
     "when the test part is scored (never changing what a run reports): end (once, with "
     "each model's best-validation weights; default), best (at each new best-validation "
     "step), every (at every evaluation: test curves in history.csv) or never (tuning "
     "trials)"),
    ("--patience", "patience", int,
     "early stopping: end training after this many evaluations without a better "
     "validation metric of the reported model; the budget is then a maximum; default 0 "
     "(off)"),
    ("--optimizer", "optimizer", str, f"one of {', '.join(CHOICES['optimizer'])}; default adam"),
    ("--lr", "lr", float, "learning rate; default 1e-3 (cpu) / 1e-4 (paper)"),
    ("--weight-decay", "weight_decay", float, "weight decay; default 5e-4"),
    ("--momentum", "momentum", float, "SGD momentum (--optimizer sgd only); default 0.9"),
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
     "official SRC-MT code; default), ema (EMA of the student's) or copy (the student's, "
     "as USB's EMA model; the default of methods whose teacher is only evaluated)"),
    ("--consistency-weight", "consistency_weight", float,
     "maximum weight lambda of unsupervised terms; default 1"),
    ("--consistency-class-weights", "consistency_class_weights", str,
     "none, balanced or inverse_frequency: per-class weights of the probability consistency "
     "(official SRC-MT: inverse_frequency); default none (cpu) / inverse_frequency (paper)"),
    ("--rampup", "rampup", float,
     "sigmoid ramp-up length as a fraction of training; default 0.3"),
    ("--rampup-per-epoch", "rampup_per_epoch", parse_bool,
     "evaluate the ramp-up at the start of each epoch, as the official code; default false "
     "(cpu) / true (paper)"),
    ("--unsupervised-start", "unsupervised_start", float,
     "epochs of labeled loss only before unsupervised terms count (official: 21); "
     "default 0 (cpu) / 21 (paper)"),
    ("--rotation", "rotation", float, "max random rotation in degrees; default 10"),
    ("--translate", "translate", float, "max random shift as a fraction of size; default 0.02"),
    ("--hflip", "hflip", parse_bool, "random horizontal flips (default: the data set's advice)"),
    ("--noise-std", "noise_std", float, "Gaussian noise added to normalised views; default 0"),
    ("--selection-metric", "selection_metric", str,
     "validation metric that picks the checkpoint; default auc"),
    ("--selection-rule", "selection_rule", str,
     "which checkpoint each model keeps: highest (default; earliest on ties), "
     "highest-latest (latest on ties), highest-mean-3 (the highest mean over the last 3 "
     "evaluations) or a registered rule (ssl-bench list)"),
    ("--report-model", "report_model", str,
     "the model a run reports: best (higher validation metric of student and teacher; "
     "default), student (official SRC-MT; paper preset) or teacher"),
    ("--device", "device", str, "auto, cpu, cuda or mps; default auto"),
    ("--threads", "threads", int,
     "torch threads of a run (intra- and inter-op); 0 (default): OMP_NUM_THREADS when set, "
     "else the cores this process may use (CPU affinity, cgroup quota), divided by --jobs "
     "in a sweep; 1 is often fastest on a busy machine"),
    ("--amp", "amp", parse_bool, "mixed precision on CUDA (bf16 where supported); default true"),
    ("--compile", "compile", "flag", "torch.compile the student and teacher (slow start)"),
    ("--channels-last", "channels_last", parse_bool,
     "channels-last memory format (faster convolutions on CPU and CUDA); default true"),
    ("--deterministic", "deterministic", parse_bool, "deterministic algorithms; default true"),
    ("--log", "log", str,
     "also log to tensorboard (event files in <run>/tb/) and/or mlflow (MLFLOW_TRACKING_URI, "
     "else mlflow.db/mlruns/ here), comma-separated; needs pip install "
     "'ssl-bench[tensorboard]' / '[mlflow]'; default: the run directory's files only"),
    ("--experiment", "experiment", str,
     "the tracker's experiment name; default: the sweep's name, or ssl-bench"),
]

#: Help sections of the run settings, in the order ``--help`` shows them; every flag of
#: ``RUN_FLAGS`` belongs to exactly one (checked by the tests).
FLAG_GROUPS: dict[str, tuple[str, ...]] = {
    "data and split": ("dataset", "data_root", "labeled", "seed", "split_ratios",
                       "split_mode", "split_file", "cache_dir", "image_cache",
                       "skip_bad_images", "skip_bad_rows", "workers"),
    "model": ("backbone", "pretrained", "weights", "drop_rate", "frozen_groups", "sync_bn",
              "image_size"),
    "schedule and optimiser": ("iterations", "epochs", "labeled_epochs", "epoch_length",
                               "batch_size",
                               "labeled_batch_size", "supervised_batch", "optimizer", "lr",
                               "weight_decay", "momentum", "lr_schedule", "lr_decay",
                               "class_weights"),
    "semi-supervised terms (every method)": (
        "ema_decay", "teacher_buffers", "consistency_weight", "consistency_class_weights",
        "rampup", "rampup_per_epoch", "unsupervised_start"),
    "augmentation": ("rotation", "translate", "hflip", "noise_std"),
    "evaluation and reporting": ("eval_batch_size", "eval_every", "test_at", "patience",
                                 "selection_metric", "selection_rule", "report_model"),
    "machine (never part of a comparison)": ("device", "threads", "amp", "compile",
                                             "channels_last", "deterministic"),
    "tracking (never part of a comparison)": ("log", "experiment"),
}


def add_grouped_flags(parser: argparse.ArgumentParser,
                      flags: list[tuple[str, str, Any, str]]) -> None:
    """``flags`` under the help sections of :data:`FLAG_GROUPS` (left-out flags skipped)."""
    by_dest = {dest: flag for flag in flags for dest in [flag[1]]}
    for title, dests in FLAG_GROUPS.items():
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
