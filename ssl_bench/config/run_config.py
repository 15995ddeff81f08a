"""Run configuration: :class:`RunConfig`, one field per setting, each declared once
(:func:`~ssl_bench.config.settings.setting`), and the tables derived from the
declarations (what a comparison compares, ignores and varies; presets; choices).

Resolution from files and flags is :mod:`ssl_bench.config.resolve`, the checks
:mod:`ssl_bench.config.checks`. The resolved configuration is written beside every
result, so a run is reproducible from its ``config.json``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ssl_bench.config.settings import (
    AUGMENTATION,
    DATA,
    EVALUATION,
    MACHINE,
    MISSING,
    MODEL,
    PRESET_NAMES,
    SCHEDULE,
    SSL_TERMS,
    TRACKING,
    Setting,
    declarations,
    parse_ratios,
    setting,
)
from ssl_bench.data.labeled import parse_labeled

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

    method: str = setting("srcmt", role="varied")
    method_options: dict[str, Any] = setting(default_factory=dict, role="varied")
    dataset: str = setting(
        "digits", group=DATA,
        help="data set name (ssl-bench list --datasets); default digits")
    dataset_options: dict[str, Any] = setting(default_factory=dict)
    data_root: str | None = setting(
        None, group=MACHINE,
        help="folder of the data set, or a data pack from ssl-bench pack (or "
        "$SSL_BENCH_DATA)",
        role="machine")
    labeled: float | int = setting(
        0.2, group=DATA,
        help="labeled images: a fraction in (0, 1] (0.2) or a count (250); default 0.2",
        parse=parse_labeled, role="varied")
    seed: int = setting(
        0, group=DATA,
        help="seed of the split, initialisation and batches; default 0",
        check=(lambda v, c: v >= 0, "be >= 0"), role="varied")
    split_ratios: tuple[float, float, float] = setting(
        (0.7, 0.1, 0.2), group=DATA,
        help="train,val,test fractions; default 0.7,0.1,0.2",
        parse=parse_ratios)
    split_mode: str = setting(
        "grouped", group=DATA,
        help="grouped (default: a patient/lesion never spans two parts) or paper (ungrouped random"
             " split, as in SRC-MT)",
        choices=("grouped", "paper"))
    split_file: str | None = setting(
        None, group=DATA,
        help="reuse a split file from 'ssl-bench split' (its parts and labeled set)",
        flag="--split", role="varied")
    cache_dir: str | None = setting(
        None, group=MACHINE,
        help="folder of decoded-image caches; default $SSL_BENCH_CACHE or ~/.cache/ssl-bench",
        role="machine")
    image_cache: bool = setting(
        True, group=MACHINE,
        help="decode images once into the cache (default true); false decodes them at every step",
        role="machine")
    images_on_device: bool = setting(
        False, group=MACHINE,
        help="hold the decoded images in the training device's memory and take batches "
             "there: no host-to-device copy of pixels per step (CUDA; needs the image cache); "
             "default false",
        role="machine", since_added=False)
    skip_bad_images: bool = setting(
        False, group=DATA,
        help="leave out missing/unreadable images (listed in skipped_images.json) instead of "
             "failing",
        parse="switch")
    skip_bad_rows: bool = setting(
        False, group=DATA,
        help="leave out CSV rows with missing/NaN-like/invalid labels (listed in "
             "skipped_rows.json) instead of failing",
        parse="switch", since_added=False)
    workers: int = setting(
        0, group=MACHINE,
        help="threads that decode images; default: CPU count, at most 8",
        check=(lambda v, c: v >= 0, "be >= 0 (0 = automatic)"), role="machine")
    backbone: str = setting(
        "resnet10t", group=MODEL,
        help="any timm architecture; default resnet10t (cpu preset)",
        paper="densenet121.tv_in1k")
    pretrained: bool = setting(
        False, group=MODEL,
        help="ImageNet weights from timm's cache (true/false)",
        paper=True)
    weights: str | None = setting(
        None, group=MODEL,
        help="local .pth/.safetensors weights file (implies pretrained)")
    drop_rate: float = setting(
        0.2, group=MODEL,
        help="dropout before the classifier; default 0.2",
        check=(lambda v, c: 0 <= v < 1, "lie in [0, 1)"), paper=0.2)
    frozen_groups: int = setting(
        0, group=MODEL,
        help="freeze the backbone's first N layer groups (timm's stem and stages, batch-norm "
             "statistics included) for partial fine-tuning; default 0 (train every layer)",
        check=(lambda v, c: v >= 0, "be >= 0 (0 = fine-tune every layer)"), since_added=0)
    sync_bn: bool = setting(
        False, group=MODEL,
        help="under torchrun, batch-norm statistics over the global batch instead of each "
             "process's shard (torch's SyncBatchNorm, CUDA only); default false",
        since_added=False)
    image_size: int = setting(
        32, group=MODEL,
        help="square image size in pixels; default 32 (cpu)",
        check=(lambda v, c: v >= 8, "be at least 8 pixels"), paper=224)
    iterations: int | None = setting(
        400, group=SCHEDULE,
        help="training steps (instead of --epochs); default 400",
        check=(lambda v, c: v >= 1, "be at least 1"), paper=None)
    epochs: float | None = setting(
        None, group=SCHEDULE,
        help="training length in epochs (see --epoch-length)",
        check=(lambda v, c: v > 0, "be positive"), paper=100)
    labeled_epochs: float | None = setting(
        None, group=SCHEDULE,
        help="training length in passes over the labeled images at the method's own labeled images"
             " per step (instead of --iterations): the same labeled exposure for every method and "
             "both supervised baselines",
        check=(lambda v, c: v > 0, "be positive"), since_added=None)
    epoch_length: str = setting(
        "train", group=SCHEDULE,
        help="train (one pass over the training part in batches of --batch-size; default) or "
             "labeled (labeled images // --labeled-batch-size steps, the official SRC-MT epoch)",
        choices=("train", "labeled"), paper="labeled")
    batch_size: int = setting(
        48, group=SCHEDULE,
        help="images per step (labeled + unlabeled); default 48",
        check=(lambda v, c: v >= 2, "be at least 2"), paper=48)
    labeled_batch_size: int = setting(
        12, group=SCHEDULE,
        help="labeled images per step for SSL methods; default 12",
        check=(lambda v, c: 1 <= v <= c.batch_size, "lie in [1, batch_size={batch_size}]"),
        paper=12)
    supervised_batch: str = setting(
        "two-stream", group=SCHEDULE,
        help="batch of labeled-only methods: two-stream (the SSL batch, loss on its "
             "--labeled-batch-size labeled images, as the official SRC-MT baseline; default) or "
             "labeled (--batch-size labeled images per step: 4x the labeled exposure at equal "
             "steps; compared as <method>-labeled-batch)",
        choices=("labeled", "two-stream"), role="varied", paper="two-stream")
    eval_batch_size: int = setting(
        64, group=MACHINE,
        help="images per evaluation batch; default 64 (on CPUs faster per image than larger ones)",
        check=(lambda v, c: v >= 1, "be at least 1"), role="machine")
    eval_every: int = setting(
        0, group=EVALUATION,
        help="steps between evaluations; 0 = 10 per run (or once per epoch with --epochs)",
        check=(lambda v, c: v >= 0, "be >= 0 (0 = automatic)"))
    test_at: str = setting(
        "end", group=MACHINE,
        help="when the test part is scored (never changing what a run reports): end (once, with "
             "each model's best-validation weights; default), best (at each new best-validation "
             "step), every (at every evaluation: test curves in history.csv) or never (tuning "
             "trials)",
        choices=("end", "best", "every", "never"), role="machine")
    patience: int = setting(
        0, group=EVALUATION,
        help="early stopping: end training after this many evaluations without a better validation"
             " metric of the reported model; the budget is then a maximum; default 0 (off)",
        check=(lambda v, c: v >= 0, "be >= 0 evaluations (0 = no early stopping)"), since_added=0)
    optimizer: str = setting(
        "adam", group=SCHEDULE,
        help="one of adam, adamw, sgd; default adam",
        choices=("adam", "adamw", "sgd"), paper="adam")
    lr: float = setting(
        1e-3, group=SCHEDULE,
        help="learning rate; default 1e-3 (cpu) / 1e-4 (paper)",
        check=(lambda v, c: v > 0, "be positive"), paper=0.0001)
    weight_decay: float = setting(
        5e-4, group=SCHEDULE,
        help="weight decay; default 5e-4",
        check=(lambda v, c: v >= 0, "not be negative"), paper=0.0005)
    momentum: float = setting(
        0.9, group=SCHEDULE,
        help="SGD momentum (--optimizer sgd only); default 0.9",
        check=(lambda v, c: 0 <= v < 1, "be in [0, 1)"))
    lr_schedule: str = setting(
        "constant", group=SCHEDULE,
        help="constant, cosine, or exponential (lr * lr_decay^epoch, official SRC-MT); default "
             "constant (cpu) / exponential (paper)",
        choices=("constant", "cosine", "exponential"), paper="exponential")
    lr_decay: float = setting(
        0.9, group=SCHEDULE,
        help="learning-rate factor per epoch of --lr-schedule exponential; default 0.9",
        check=(lambda v, c: 0 < v <= 1, "be a factor per epoch in (0, 1]"), paper=0.9)
    class_weights: str = setting(
        "none", group=SCHEDULE,
        help="none, balanced (N/(K n_c)) or inverse_frequency (N/n_c) weights of the single-label "
             "cross-entropy, counted on the labeled images; default none (cpu) / inverse_frequency"
             " (paper)",
        choices=CLASS_WEIGHTINGS, paper="inverse_frequency")
    ema_decay: float = setting(
        0.99, group=SSL_TERMS,
        help="teacher EMA decay; default 0.99",
        check=(lambda v, c: 0 <= v < 1, "lie in [0, 1)"), paper=0.99)
    teacher_buffers: str = setting(
        "own", group=SSL_TERMS,
        help="the teacher's batch-norm statistics: own (its own train-mode forwards, as the "
             "official SRC-MT code; default), ema (EMA of the student's) or copy (the student's, "
             "as USB's EMA model; the default of methods whose teacher is only evaluated)",
        choices=TEACHER_BUFFERS, paper="own")
    consistency_weight: float = setting(
        1.0, group=SSL_TERMS,
        help="maximum weight lambda of unsupervised terms; default 1",
        check=(lambda v, c: v >= 0, "not be negative"), paper=1.0)
    consistency_class_weights: str = setting(
        "none", group=SSL_TERMS,
        help="none, balanced or inverse_frequency: per-class weights of the probability "
             "consistency (official SRC-MT: inverse_frequency); default none (cpu) / "
             "inverse_frequency (paper)",
        choices=CLASS_WEIGHTINGS, paper="inverse_frequency")
    rampup: float = setting(
        0.3, group=SSL_TERMS,
        help="sigmoid ramp-up length as a fraction of training; default 0.3",
        check=(lambda v, c: 0 <= v <= 1, "be a fraction of training in [0, 1]"), paper=0.3)
    rampup_per_epoch: bool = setting(
        False, group=SSL_TERMS,
        help="evaluate the ramp-up at the start of each epoch, as the official code; default false"
             " (cpu) / true (paper)",
        paper=True)
    unsupervised_start: float = setting(
        0.0, group=SSL_TERMS,
        help="epochs of labeled loss only before unsupervised terms count (official: 21); default "
             "0 (cpu) / 21 (paper)",
        check=(lambda v, c: v >= 0, "be a number of epochs >= 0"), paper=21.0)
    rotation: float = setting(
        10.0, group=AUGMENTATION,
        help="max random rotation in degrees; default 10",
        check=(lambda v, c: v >= 0, "not be negative"), paper=10.0)
    translate: float = setting(
        0.02, group=AUGMENTATION,
        help="max random shift as a fraction of size; default 0.02",
        check=(lambda v, c: v >= 0, "not be negative"), paper=0.02)
    hflip: bool | None = setting(
        None, group=AUGMENTATION,
        help="random horizontal flips (default: the data set's advice)",
        paper=True)
    noise_std: float = setting(
        0.0, group=AUGMENTATION,
        help="Gaussian noise added to normalised views; default 0",
        check=(lambda v, c: v >= 0, "not be negative"))
    selection_metric: str = setting(
        "auc", group=EVALUATION,
        help="validation metric that picks the checkpoint; default auc",
        choices=("auc", "accuracy", "balanced_accuracy", "f1_macro"))
    #: Which checkpoint each model keeps (ssl_bench.training.selection): highest, highest-latest,
    #: highest-mean-3 or a registered rule.
    selection_rule: str = setting(
        "highest", group=EVALUATION,
        help="which checkpoint each model keeps: highest (default; earliest on ties), "
             "highest-latest (latest on ties), highest-mean-3 (the highest mean over the last 3 "
             "evaluations) or a registered rule (ssl-bench list)",
        since_added="highest")
    report_model: str = setting(
        "best", group=EVALUATION,
        help="the model a run reports: best (higher validation metric of student and teacher; "
             "default), student (official SRC-MT; paper preset) or teacher",
        choices=("best", "student", "teacher"), paper="student")
    device: str = setting(
        "auto", group=MACHINE,
        help="auto, cpu, cuda or mps; default auto",
        choices=("auto", "cpu", "cuda", "mps"), role="machine")
    memory_share: float = setting(
        0.0, group=MACHINE,
        help="fraction of the GPU's memory a run may allocate, in (0, 1]; 0 (default): no "
             "limit. A sweep of --jobs N with --device cuda gives each run 1/N",
        check=(lambda v, c: 0 <= v <= 1, "be in [0, 1] (0 = no limit)"), role="machine",
        since_added=0.0)
    amp: bool = setting(
        True, group=MACHINE,
        help="mixed precision on CUDA (bf16 where supported); default true",
        role="machine")
    compile: bool = setting(
        False, group=MACHINE,
        help="torch.compile the student and teacher (slow start)",
        parse="switch", role="machine")
    channels_last: bool = setting(
        True, group=MACHINE,
        help="channels-last memory format (faster convolutions on CPU and CUDA); default true",
        role="machine")
    deterministic: bool = setting(
        True, group=MACHINE,
        help="deterministic algorithms; default true",
        role="machine")
    threads: int = setting(
        0, group=MACHINE,
        help="torch threads of a run (intra- and inter-op); 0 (default): OMP_NUM_THREADS when set,"
             " else the cores this process may use (CPU affinity, cgroup quota), divided by --jobs"
             " in a sweep; 1 is often fastest on a busy machine",
        check=(lambda v, c: v >= 0, "be >= 0 (0 = automatic)"), role="machine", since_added=0)
    preset: str = setting("cpu", choices=PRESET_NAMES, role="machine")
    log: str = setting(
        "", group=TRACKING,
        help="also log to tensorboard (event files in <run>/tb/) and/or mlflow "
             "(MLFLOW_TRACKING_URI, else mlflow.db/mlruns/ here), comma-separated; needs pip "
             "install 'ssl-bench[tensorboard]' / '[mlflow]'; default: the run directory's files "
             "only",
        role="machine", since_added="")
    experiment: str = setting(
        "", group=TRACKING,
        help="the tracker's experiment name; default: the sweep's name, or ssl-bench",
        role="machine", since_added="")
    #: Engine settings this run's method sets for itself in its comparison (a sweep's
    #: ``[method_run.<method>]`` table, e.g. a tuned learning rate): like the method's own
    #: defaults, they are not compared across methods.
    own_settings: list[str] = setting(default_factory=list, role="varied", since_added=[])

    def to_dict(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        record["split_ratios"] = list(self.split_ratios)
        return record


#: Every setting's declaration (:class:`~ssl_bench.config.settings.Setting`), by name.
SETTINGS: dict[str, Setting] = declarations(RunConfig)
#: What a setting is to a comparison, from its declared ``role``; resume, sweep and compare
#: read it. ``VARIED_SETTINGS``: what a sweep varies between runs (a comparison's rows;
#: ``supervised_batch`` only changes labeled-only methods, whose baseline it names:
#: :func:`ssl_bench.config.budget.method_label`; ``own_settings`` lists what a method set
#: alone). ``MACHINE_SETTINGS``: where and how a run executes (may change on ``--resume``,
#: never part of a comparison). Every other setting defines the comparison: runs that
#: differ in one are never averaged together.
VARIED_SETTINGS: frozenset[str] = frozenset(
    n for n, s in SETTINGS.items() if s.role == "varied")
MACHINE_SETTINGS: frozenset[str] = frozenset(
    n for n, s in SETTINGS.items() if s.role == "machine")
#: Settings added after runs were recorded whose value reproduces what older code did: a
#: stored configuration without them counts as having this value. A missing setting
#: without one makes a stored run differ (``teacher_buffers``: older runs copied the
#: student's batch-norm statistics, which the default ``own`` does not).
SINCE_ADDED: dict[str, Any] = {
    n: s.since_added for n, s in SETTINGS.items() if s.since_added is not MISSING}


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
#: reported. Meant for a GPU; ``methods/srcmt.py`` lists every remaining difference. Each
#: value is declared on its setting (``paper=``).
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {},
    "paper": {n: s.paper for n, s in SETTINGS.items() if s.paper is not MISSING},
}
#: The allowed values of every setting that declares them.
CHOICES: dict[str, tuple[Any, ...]] = {
    n: s.choices for n, s in SETTINGS.items() if s.choices is not None}

#: The ways to set a run's length (exactly one is set): optimisation steps, epochs of
#: ``epoch_length`` steps, or labeled epochs (passes over the labeled images at the
#: method's own labeled images per step: equal labeled exposure for every method).
BUDGETS: tuple[str, ...] = ("iterations", "epochs", "labeled_epochs")

FIELD_NAMES = tuple(SETTINGS)
