"""Partial fine-tuning: freeze a pretrained backbone's first layer groups.

A layer group is what timm's own ``group_matcher(coarse=True)`` declares for the
architecture (the stem, then one group per stage, the classifier in the last group):
the unit timm uses for layer-wise learning-rate decay, so the same number means "the
stem and the first stages" for every architecture. Frozen groups get
``requires_grad=False`` and their batch norms become ``FrozenBatchNorm2d`` (timm's
``freeze``), so their statistics stay the pretrained ones in train mode too. Autograd
then stops at the first trainable group: no backward pass, no optimiser state and no
gradient for the frozen layers, which is where the time of a CPU step goes (backward is
52-68% of a ``tf_efficientnet_lite0`` step).
"""

from __future__ import annotations

from timm.models import group_modules
from timm.utils.model import freeze
from torch import nn

from ssl_bench.core.errors import UserError

__all__ = ["freeze_groups", "layer_groups"]


def layer_groups(model: nn.Module, name: str = "backbone") -> list[list[str]]:
    """The model's coarse layer groups, input first: lists of submodule names.

    Raises:
        UserError: the architecture declares no groups (no ``group_matcher``).
    """
    matcher = getattr(model, "group_matcher", None)
    if not callable(matcher):
        raise UserError(f"backbone {name!r} declares no layer groups (timm's group_matcher); "
                        "frozen_groups (--frozen-groups) needs them: use 0 or another backbone")
    groups = group_modules(model, matcher(coarse=True))
    return [list(groups[key]) for key in sorted(groups)]


def freeze_groups(model: nn.Module, count: int, name: str = "backbone") -> None:
    """Freeze the first ``count`` layer groups of ``model`` in place.

    ``count = 0`` leaves the model untouched. The last group (the classifier's) can never
    be frozen: a model with nothing to train is not a training run.

    Raises:
        UserError: ``count`` negative or not below the number of groups.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise UserError(f"frozen_groups (--frozen-groups) must be an integer >= 0, got {count!r}")
    if count == 0:
        return
    groups = layer_groups(model, name)
    if count >= len(groups):
        raise UserError(
            f"frozen_groups (--frozen-groups) must be below {len(groups)}, the number of "
            f"layer groups of {name} (the last holds the classifier), got {count}")
    freeze(model, [module for group in groups[:count] for module in group])
