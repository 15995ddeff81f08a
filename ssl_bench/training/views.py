"""The named views a method declares, drawn per image on the training device.

uint8 images -> float [0, 1] pixels -> each view's augmentation (a registered
:mod:`ssl_bench.data.augmentations` pipeline) -> normalisation (-> Gaussian noise, for the
``weak`` views, as the SRC-MT perturbation). Every image of every view gets its own draw.

The ``weak`` views of a batch are drawn in one call over at least two copies of the
batch, in declaration order. So the first weak view of *every* method is the same draw
at the same step (common random numbers: a supervised run's view is Mean Teacher's
student view), and the built-in methods draw exactly what they drew before views had
names (contract v1 always drew two).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ssl_bench.core.errors import UserError
from ssl_bench.data.perturb import ImagePipeline, Perturbation
from ssl_bench.method_kit.method import View

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _augmentation(name: str, perturbation: Perturbation) -> Augment:
    """The registered augmentation ``name``; ``weak`` and ``strong`` take the run's affine
    settings (``--rotation``, ``--translate``, ``--hflip``)."""
    from ssl_bench.data.augmentations import create_augmentation

    if name in ("weak", "strong"):  # the strong view is a superset of the weak one
        return create_augmentation(name, rotation=perturbation.rotation,
                                   translate=perturbation.translate,
                                   hflip=perturbation.hflip)
    return create_augmentation(name)


class ViewMaker:
    """Makes a method's declared views of one batch (see module docstring)."""

    def __init__(self, views: dict[str, View], pipeline: ImagePipeline, method: str,
                 has_unlabeled: bool) -> None:
        self.views = views
        self.pipeline = pipeline
        self.perturbation = pipeline.perturbation
        self.weak = [name for name, view in views.items() if view.augmentation == "weak"]
        self.augment: dict[str, Augment] = {}
        for name, view in views.items():
            if view.rows == "unlabeled" and not has_unlabeled:
                raise UserError(f"method {method!r} asks for view {name!r} of the unlabeled "
                                "rows, but its batches have none")
            if view.augmentation != "weak":
                self.augment.setdefault(view.augmentation,
                                        _augmentation(view.augmentation, self.perturbation))
        if self.weak:
            self.augment["weak"] = _augmentation("weak", self.perturbation)

    def _rows(self, images: torch.Tensor, rows: str, num_labeled: int) -> torch.Tensor:
        if rows == "labeled":
            return images[:num_labeled]
        if rows == "unlabeled":
            return images[num_labeled:]
        return images

    def __call__(self, images_uint8: torch.Tensor, num_labeled: int,
                 generator: torch.Generator) -> dict[str, torch.Tensor]:
        base = self.pipeline.to_float(images_uint8)
        out: dict[str, torch.Tensor] = {}
        if self.weak:
            copies = max(2, len(self.weak))
            drawn = self.augment["weak"](torch.cat([base] * copies), generator)
            drawn = self.perturbation.noise(self.pipeline.normalise(drawn), generator)
            for name, chunk in zip(self.weak, drawn.chunk(copies), strict=False):
                out[name] = self._rows(chunk, self.views[name].rows, num_labeled)
        for name, view in self.views.items():
            if name in out:
                continue
            pixels = self.augment[view.augmentation](
                self._rows(base, view.rows, num_labeled), generator)
            out[name] = self.pipeline.normalise(pixels)
        fmt = self.pipeline.memory_format
        return {name: out[name].contiguous(memory_format=fmt) for name in self.views}
