"""Run configuration: one dataclass, presets, TOML files and their resolution (the checks
of a resolved configuration are :mod:`ssl_bench.config.checks`).

Precedence, lowest first: field defaults < preset < ``--config`` file < command-line flags.
The resolved configuration is written beside every result, so a run is reproducible from
its ``config.json``.
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssl_bench.config.checks import OWN_CHECKS, type_problem, validate
from ssl_bench.core.errors import UserError
from ssl_bench.plugins.options import coerce_options
from ssl_bench.plugins.registry import (
    dataset_option_specs,
    dataset_registry,
    method_registry,
    selection_registry,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


#: How class weights are computed from the labeled training images' class counts n_c
#: (N images, K classes): ``balanced`` N / (K n_c) as scikit-learn; ``inverse_frequency``
#: N / n_c, the scale of the official SRC-MT code's ``10000 / n_c`` (its n_c sum to 10,015).
CLASS_WEIGHTINGS: tuple[str, ...] = ("none", "balanced", "inverse_frequency")
#: What the EMA teacher's buffers (batch-norm statistics) follow: ``own`` its own
#: train-mode forwards (official SRC-MT / Mean Teacher code), ``ema`` an EMA of the
#: student's buffers (timm's ModelEmaV3), ``copy`` a copy of the student's (USB's EMA
#: model, the default of methods whose teacher is only evaluated: ``EMA_MODEL_DEFAULTS``).
TEACHER_BUFFERS: tuple[str, ...] = ("own", "ema", "copy")


@dataclass
class RunConfig:
    """Everything that defines one training run (method options included).

    Build it with :func:`resolve_config`, which applies the preset and the method's own
    defaults (``Method.defaults``) below files and flags; constructing it directly gets
    the field defaults only.
    """

    # what
    method: str = "srcmt"
    method_options: dict[str, Any] = field(default_factory=dict)
    dataset: str = "digits"
    dataset_options: dict[str, Any] = field(default_factory=dict)
    data_root: str | None = None
    labeled: float | int = 0.2
    seed: int = 0
    split_ratios: tuple[float, float, float] = (0.7, 0.1, 0.2)
    split_mode: str = "grouped"
    split_file: str | None = None
    # images
    cache_dir: str | None = None
    image_cache: bool = True
    skip_bad_images: bool = False
    skip_bad_rows: bool = False
    workers: int = 0
    # model
    backbone: str = "resnet10t"
    pretrained: bool = False
    weights: str | None = None
    drop_rate: float = 0.2
    frozen_groups: int = 0
    sync_bn: bool = False
    image_size: int = 32
    # budget and batches
    iterations: int | None = 400
    epochs: float | None = None
    labeled_epochs: float | None = None
    epoch_length: str = "train"
    batch_size: int = 48
    labeled_batch_size: int = 12
    supervised_batch: str = "two-stream"
    eval_batch_size: int = 64
    eval_every: int = 0
    test_at: str = "end"
    patience: int = 0
    # optimisation
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 5e-4
    momentum: float = 0.9
    lr_schedule: str = "constant"
    lr_decay: float = 0.9
    class_weights: str = "none"
    # self-ensembling
    ema_decay: float = 0.99
    teacher_buffers: str = "own"
    consistency_weight: float = 1.0
    consistency_class_weights: str = "none"
    rampup: float = 0.3
    rampup_per_epoch: bool = False
    unsupervised_start: float = 0.0
    # perturbations
    rotation: float = 10.0
    translate: float = 0.02
    hflip: bool | None = None
    noise_std: float = 0.0
    # evaluation
    selection_metric: str = "auc"
    #: Which checkpoint each model keeps (ssl_bench.training.selection): highest, highest-latest,
    #: highest-mean-3 or a registered rule.
    selection_rule: str = "highest"
    report_model: str = "best"
    # machinery
    device: str = "auto"
    amp: bool = True
    compile: bool = False
    channels_last: bool = True
    deterministic: bool = True
    threads: int = 0
    preset: str = "cpu"
    # tracking (ssl_bench/tracking): where else the run's curves go
    log: str = ""
    experiment: str = ""
    #: Engine settings this run's method sets for itself in its comparison (a sweep's
    #: ``[method_run.<method>]`` table, e.g. a tuned learning rate): like the method's own
    #: defaults, they are not compared across methods.
    own_settings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        record["split_ratios"] = list(self.split_ratios)
        return record


#: What a setting is to a comparison -- declared here once; resume, sweep and compare
#: read it. ``VARIED_SETTINGS``: what a sweep varies between runs (a comparison's rows).
#: ``MACHINE_SETTINGS``: where and how a run executes (may change on ``--resume``, never
#: part of a comparison). Every other field defines the comparison: runs that differ in
#: one are never averaged together.
#: ``supervised_batch`` only changes labeled-only methods, whose baseline it names
#: (:func:`ssl_bench.config.budget.method_label`); ``own_settings`` lists what a method set alone.
VARIED_SETTINGS: frozenset[str] = frozenset(
    {"method", "method_options", "labeled", "seed", "split_file", "supervised_batch",
     "own_settings"})
MACHINE_SETTINGS: frozenset[str] = frozenset(
    {"device", "amp", "compile", "channels_last", "deterministic", "cache_dir", "workers",
     "image_cache", "data_root", "eval_batch_size", "test_at", "preset", "threads", "log",
     "experiment"})


#: Fields added after runs were recorded whose value reproduces what older code did: a
#: stored configuration without them counts as having this value. A missing field *not*
#: listed here makes a stored run differ (``teacher_buffers``: older runs copied the
#: student's batch-norm statistics, which the default ``own`` does not).
SINCE_ADDED: dict[str, Any] = {"skip_bad_rows": False, "frozen_groups": 0, "sync_bn": False,
                               "threads": 0, "log": "", "experiment": "",
                               "labeled_epochs": None, "patience": 0, "own_settings": [],
                               "selection_rule": "highest"}


def with_field_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """A stored configuration completed with :data:`SINCE_ADDED` fields it predates."""
    return {**{k: v for k, v in SINCE_ADDED.items() if k not in config}, **config}


def comparison_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The settings of a configuration (``to_dict`` form) that define a comparison (a
    stored one completed by :func:`with_field_defaults`)."""
    return {k: v for k, v in with_field_defaults(config).items()
            if k not in VARIED_SETTINGS and k not in MACHINE_SETTINGS}


def parallel_settings(document: dict[str, Any]) -> dict[str, Any]:
    """What a run's ``config.json`` adds to its comparison settings from how it ran: the
    process count (``schedule.processes``; 1 in records that predate it) and the scope of
    its batch-norm statistics. Under torchrun each process mixes its own shard (MixUp
    partners, batch-norm statistics unless ``sync_bn``), which changes the algorithm, so
    runs that differ in either are never averaged together or called one sweep."""
    schedule = document.get("schedule")
    processes = schedule.get("processes", 1) if isinstance(schedule, dict) else 1
    if not isinstance(processes, int) or isinstance(processes, bool) or processes < 1:
        processes = 1
    config = document.get("config")
    synced = bool(isinstance(config, dict) and config.get("sync_bn"))
    scope = ("one process" if processes == 1 else "synchronised" if synced
             else "per process")
    return {"processes": processes, "batch_norm": scope}


#: Presets: overrides of the field defaults. ``cpu`` trains small models from scratch in
#: minutes; ``paper`` is the protocol of the official SRC-MT code (``train_SRC_MT.py``):
#: DenseNet-121 with torchvision's ImageNet weights, 224 px, 100 official epochs (labeled
#: images / labeled batch), Adam 1e-4 decayed by 0.9 per epoch, class-weighted
#: cross-entropy and consistency, no unsupervised loss before epoch 21, ramp-up over 30
#: epochs evaluated per epoch, the supervised baseline on the SSL batch, the student
#: reported. Meant for a GPU; ``methods/srcmt.py`` lists every remaining difference.
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {},
    "paper": {
        "backbone": "densenet121.tv_in1k",
        "pretrained": True,
        "drop_rate": 0.2,
        "image_size": 224,
        "iterations": None,
        "epochs": 100,
        "epoch_length": "labeled",
        "batch_size": 48,
        "labeled_batch_size": 12,
        "supervised_batch": "two-stream",
        "optimizer": "adam",
        "lr": 1e-4,
        "weight_decay": 5e-4,
        "lr_schedule": "exponential",
        "lr_decay": 0.9,
        "class_weights": "inverse_frequency",
        "ema_decay": 0.99,
        "teacher_buffers": "own",
        "consistency_weight": 1.0,
        "consistency_class_weights": "inverse_frequency",
        "rampup": 0.3,
        "rampup_per_epoch": True,
        "unsupervised_start": 21.0,
        "report_model": "student",
        "rotation": 10.0,
        "translate": 0.02,
        "hflip": True,
    },
}

CHOICES: dict[str, tuple[str, ...]] = {
    "optimizer": ("adam", "adamw", "sgd"),
    "lr_schedule": ("constant", "cosine", "exponential"),
    "class_weights": CLASS_WEIGHTINGS,
    "consistency_class_weights": CLASS_WEIGHTINGS,
    "teacher_buffers": TEACHER_BUFFERS,
    "epoch_length": ("train", "labeled"),
    "supervised_batch": ("labeled", "two-stream"),
    "report_model": ("best", "student", "teacher"),
    "device": ("auto", "cpu", "cuda", "mps"),
    "selection_metric": ("auc", "accuracy", "balanced_accuracy", "f1_macro"),
    "preset": tuple(PRESETS),
    "split_mode": ("grouped", "paper"),
    "test_at": ("end", "best", "every", "never"),
}

#: The ways to set a run's length (exactly one is set): optimisation steps, epochs of
#: ``epoch_length`` steps, or labeled epochs (passes over the labeled images at the
#: method's own labeled images per step: equal labeled exposure for every method).
BUDGETS: tuple[str, ...] = ("iterations", "epochs", "labeled_epochs")

FIELD_NAMES = tuple(f.name for f in dataclasses.fields(RunConfig))


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """A TOML file's table; a missing or malformed file is a UserError naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{what} {path} is not valid TOML: {exc}") from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML run configuration; unknown keys name the file and the key."""
    path = Path(path)
    data = read_toml(path, "config file")
    data = {key.replace("-", "_"): value for key, value in data.items()}
    unknown = sorted(set(data) - set(FIELD_NAMES))
    if unknown:
        raise UserError(
            f"config file {path}: unknown key(s) {', '.join(unknown)}; "
            f"known keys: {', '.join(FIELD_NAMES)}"
        )
    for table in ("method_options", "dataset_options"):
        if table in data and not isinstance(data[table], dict):
            raise UserError(f"config file {path}: {table} must be a table")
    hints = typing.get_type_hints(RunConfig)
    for key, value in data.items():
        problem = None if key in OWN_CHECKS else type_problem(value, hints[key])
        if problem:
            raise UserError(f"config file {path}: {key} {problem}, got {value!r}")
    return data


def method_defaults(method: str, imported: bool = False) -> dict[str, Any]:
    """The engine settings a method's paper sets differently (``Method.defaults``): from
    its card (the registry index, no torch) or, ``imported``, from its imported class."""
    try:
        if imported:
            method_registry.discover()  # (so that the name is resolved by the classes)
            return dict(method_registry.get(method).defaults)
        return dict(method_registry.card(method).defaults)
    except UserError:  # an unknown name: reported (with a hint) when the run is prepared
        return {}


def resolve_config(file_values: dict[str, Any], cli_values: dict[str, Any]) -> RunConfig:
    """Merge preset, the method's defaults, file and command line (in that order) and
    validate the result.

    It is done twice: with the method's card, which the registry index answers without
    torch, so that a bad setting fails fast; then, the configuration being good, with the
    imported method class, so that a run never takes an option default or an own setting
    (``Method.defaults``) from a card that could be stale.
    """
    _resolve(file_values, cli_values, imported=False)
    return _resolve(file_values, cli_values, imported=True)


def _resolve(file_values: dict[str, Any], cli_values: dict[str, Any],
             imported: bool) -> RunConfig:
    """One :func:`resolve_config` pass, the method described by its card or its class."""
    preset = cli_values.get("preset") or file_values.get("preset") or "cpu"
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    values: dict[str, Any] = {}
    tables: dict[str, dict[str, Any]] = {"method_options": {}, "dataset_options": {}}
    method = cli_values.get("method") or file_values.get("method") or RunConfig.method
    for source in (PRESETS[preset], method_defaults(method, imported), file_values,
                   cli_values):
        for key, value in source.items():
            if key in tables:
                tables[key].update(value or {})
            elif value is not None:
                values[key] = value
        # The budgets are alternatives: a source that sets one clears the others.
        if any(source.get(budget) is not None for budget in BUDGETS):
            for budget in BUDGETS:
                if source.get(budget) is None:
                    values[budget] = None
    values["preset"] = preset
    values.update(tables)
    try:
        config = RunConfig(**values)
    except TypeError as exc:
        raise UserError(f"bad configuration: {exc}") from None
    validate(config, CHOICES, BUDGETS, frozenset(FIELD_NAMES) - VARIED_SETTINGS)
    _resolve_options(config, imported)
    return config


def _resolve_options(config: RunConfig, imported: bool = False) -> None:
    """Canonical method name; method and data set options checked and completed with
    their defaults (the cards' or, ``imported``, those the imported entries declare), so
    a configuration reads the same as the run records it."""

    if imported:  # imported first: the cards (names, aliases) then describe the entries
        method_registry.discover()
        dataset_registry.discover()
        name = method_registry.resolve(config.method)
        options = tuple(method_registry.get(name).options)
    else:
        card = method_registry.card(config.method)
        name, options = card.name, card.options
    config.method = name
    config.selection_rule = selection_registry.resolve(config.selection_rule)
    config.method_options = coerce_options(options, config.method_options,
                                           f"method {config.method!r}")
    config.dataset_options = coerce_options(dataset_option_specs(config.dataset),
                                            config.dataset_options,
                                            f"data set {config.dataset!r}")
