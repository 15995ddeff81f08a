"""The method contract (v2): a method brings its losses, views, modules and state.

The engine owns data, augmentation, optimisation, the EMA teacher, lambda(t), evaluation
and files. A method subclasses :class:`Method` (a ``torch.nn.Module``) and

* declares its :class:`Option` s and, by name, the **views** it needs
  (``views = {"weak": "weak", "strong": View("strong", rows="unlabeled")}``): each is an
  augmentation from :mod:`ssl_bench.data.augmentations`, drawn per image on the device; a
  view the engine cannot give is an error at start-up, never a silent substitute;
* may wrap the backbone (:meth:`Method.build_model`, e.g. adding a projection head): the
  engine builds the student from it, deep-copies the teacher from the wrapped model,
  optimises every trainable parameter of the student *and* of the method, applies the
  EMA to everything the teacher holds and checkpoints it all;
* may keep state (buffers, or ``get_extra_state``/``set_extra_state``: per-class
  thresholds, memory banks, distribution estimates): ``Method.state_dict()`` goes into
  every checkpoint, so ``--resume`` restores it exactly;
* learns the run's shape in :meth:`Method.setup` (:class:`MethodInfo`: task kind, class
  count, pool sizes, labeled class counts, steps), once the split exists;
* implements :meth:`Method.train_step`: one :class:`Batch` -> named loss terms, or a
  :class:`StepOutput` that adds logs (e.g. a mask ratio) and pseudo-labels, whose
  accuracy the engine measures against the hidden labels for the history only;
* may declare ``defaults`` for engine settings where its paper differs (FixMatch: no
  ramp-up); flags and config files still override them, ``config.json`` records them.

Register it with ``@register_method("name")`` in ``methods/<name>.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from ssl_bench.core.errors import UserError
from ssl_bench.data.tasks import Task
from ssl_bench.method_kit.search_space import Param
from ssl_bench.plugins.options import Option, coerce_options

__all__ = ["Batch", "LossDict", "Method", "MethodInfo", "Option", "StepContext",
           "StepOutput", "View"]

#: Which rows of the batch a view covers.
VIEW_ROWS = ("all", "labeled", "unlabeled")


@dataclass(frozen=True)
class View:
    """A named view: an augmentation (registry name) applied to some rows of the batch."""

    augmentation: str = "weak"
    rows: str = "all"

    def __post_init__(self) -> None:
        if self.rows not in VIEW_ROWS:
            raise ValueError(f"View.rows must be one of {', '.join(VIEW_ROWS)}, "
                             f"got {self.rows!r}")


@dataclass(frozen=True)
class MethodInfo:
    """What a method may size itself by, known once the split exists (``setup``)."""

    kind: str  # "single" or "multi"
    num_classes: int
    num_labeled: int  # images in the labeled pool
    num_unlabeled: int  # images in the unlabeled pool
    labeled_class_counts: tuple[int, ...]  # per class, in the labeled pool
    total_steps: int
    steps_per_epoch: int
    device: torch.device


@dataclass
class Batch:
    """One training batch, labeled rows first.

    ``views`` maps each view the method declared to ``N x C x H x W`` normalised images
    (``N`` = the rows the view covers). ``targets`` holds labels of the first
    ``num_labeled`` rows only (class indices, or 0/1 floats for multi-label).
    ``labeled_index`` / ``unlabeled_index`` are the rows' positions in the labeled and
    unlabeled pools (``0 .. pool size - 1``): per-sample state such as FlexMatch's
    learning status is indexed by them.
    """

    views: dict[str, torch.Tensor]
    targets: torch.Tensor
    num_labeled: int
    labeled_index: torch.Tensor
    unlabeled_index: torch.Tensor

    @property
    def size(self) -> int:
        return self.num_labeled + int(self.unlabeled_index.numel())

    @property
    def student_view(self) -> torch.Tensor:
        """The ``student`` view (the contract-v1 name, kept for existing plug-ins)."""
        return self.views["student"]

    @property
    def teacher_view(self) -> torch.Tensor:
        return self.views["teacher"]


@dataclass
class StepContext:
    """What the engine hands a method at each step besides the batch.

    Models return ``(features, logits)``: pooled post-dropout features and class logits.
    ``consistency_weight`` is the ramped-up weight ``lambda(t)`` of unsupervised terms.
    """

    student: nn.Module
    teacher: nn.Module | None
    task: Task
    consistency_weight: float
    step: int


LossDict = dict[str, torch.Tensor]


@dataclass
class StepOutput:
    """Loss terms (``"total"`` is optimised) plus logs, recorded in the history only.

    ``pseudo_labels`` = ``(labels, mask)`` for the unlabeled rows (class indices, or 0/1
    per class for multi-label; mask: which rows/entries the loss used): the engine
    reports ``pseudo_label_accuracy`` against the hidden labels, never shown to the
    method.
    """

    losses: LossDict
    logs: dict[str, torch.Tensor] = field(default_factory=dict)
    pseudo_labels: tuple[torch.Tensor, torch.Tensor] | None = None


#: ``Method.defaults`` of a method whose EMA teacher is only evaluated (USB's "EMA model",
#: never run in training): its batch-norm statistics are the student's, copied after
#: every step as USB's ``EMAHook`` does (``ema_model.load_state_dict(model.state_dict())``,
#: then the averaged parameters). With ``own`` they would keep their initial values, as
#: such a teacher never runs a train-mode forward (the engine refuses that at step 1).
EMA_MODEL_DEFAULTS: Mapping[str, Any] = {"teacher_buffers": "copy"}


class Method(nn.Module):
    """Base class of every SSL method (see module docstring)."""

    #: Registry name, set by ``@register_method``.
    registry_name: ClassVar[str] = ""
    #: One-line description for ``ssl-bench list``.
    summary: ClassVar[str] = ""
    #: Whether the engine must keep an EMA teacher and pass it as ``ctx.teacher``.
    needs_teacher: ClassVar[bool] = False
    #: Whether batches contain unlabeled images; if not, the whole batch is labeled.
    uses_unlabeled: ClassVar[bool] = False
    #: Named views (augmentation names or :class:`View` s). Contract v1's ``views = 1``
    #: / ``2`` still mean ``student`` / ``student`` + ``teacher`` weak views.
    views: ClassVar[Mapping[str, View | str] | int] = {"student": "weak", "teacher": "weak"}
    #: Engine settings (RunConfig fields) where the method's paper differs.
    defaults: ClassVar[Mapping[str, Any]] = {}
    #: Task kinds the method supports ("single", "multi"); another kind is a user error
    #: at start-up, naming ``unsupported_reason``.
    task_kinds: ClassVar[tuple[str, ...]] = ("single", "multi")
    unsupported_reason: ClassVar[str] = ""
    #: Opt-in property checked by the test suite: with identical views and student ==
    #: teacher, every unsupervised term is zero (consistency methods).
    identical_views_vanish: ClassVar[bool] = False
    #: Options the CLI and config files may set.
    options: ClassVar[tuple[Option, ...]] = ()
    #: What ``ssl-bench tune`` searches besides the shared learning rate and weight decay
    #: (:mod:`ssl_bench.method_kit.search_space`): option names or engine settings -> ranges.
    search_space: ClassVar[Mapping[str, Param]] = {}
    #: How the method runs on several processes (torchrun/DDP, each rank holding a shard
    #: of the batch). ``"global"``: its losses are means (or ``sum / B``) over rows, and
    #: any coupling between rows or state kept from batches goes through
    #: ``ssl_bench.core.distributed`` (``gather_rows``, ``mean_over_ranks``), so every rank
    #: computes the global batch's loss and holds the same state. ``"per-process"``: the
    #: same, except a coupling its docstring defines per process (MixMatch's MixUp
    #: partners). ``None``: refused under torchrun, in one line, before training.
    data_parallel: ClassVar[str | None] = None

    def __init__(self, **options: Any) -> None:
        super().__init__()
        values = coerce_options(self.options, options, f"method {self.registry_name!r}")
        for name, value in values.items():
            setattr(self, name, value)

    @property
    def option_values(self) -> dict[str, Any]:
        return {option.name: getattr(self, option.name) for option in self.options}

    @classmethod
    def view_specs(cls) -> dict[str, View]:
        """The declared views as :class:`View` s (v1 integers translated)."""
        declared = cls.views
        if isinstance(declared, int):
            if declared not in (1, 2):
                raise UserError(f"method {cls.registry_name!r}: views = {declared}; an integer "
                                "means 1 or 2 weak views, name views for more "
                                "(views = {'a': 'weak', 'b': 'weak', 'c': 'weak'})")
            declared = {"student": "weak", "teacher": "weak"} if declared == 2 else {
                "student": "weak"}
        if not declared:
            raise UserError(f"method {cls.registry_name!r} declares no views")
        return {name: View(spec) if isinstance(spec, str) else spec
                for name, spec in declared.items()}

    @classmethod
    def check_task_kind(cls, kind: str, dataset: str) -> None:
        """Refuse a data set of a task kind the method does not support (one line)."""
        if kind not in cls.task_kinds:
            label = {"single": "single-label", "multi": "multi-label"}.get(kind, kind)
            why = f": {cls.unsupported_reason}" if cls.unsupported_reason else ""
            raise UserError(f"method {cls.registry_name!r} does not support {label} data "
                            f"sets such as {dataset!r}{why}")

    def build_model(self, backbone: nn.Module) -> nn.Module:
        """The trained network (student; the teacher is its copy): the backbone itself, or a
        module wrapping it (a projection head...) that still returns ``(features, logits)``
        when called on images."""
        return backbone

    def setup(self, info: MethodInfo) -> None:
        """Size state by the run (pool sizes, class counts); called once before training."""

    def train_step(self, batch: Batch, ctx: StepContext) -> LossDict | StepOutput:
        """Return named loss terms (or a :class:`StepOutput`); ``"total"`` is optimised.

        Convention: ``"supervised"`` is the labeled loss; every other term except
        ``"total"`` is an unsupervised term (reported unweighted).
        """
        raise NotImplementedError
